import VFCore

/// All the SQL of `stream_zones`: every statement parameterised and prepared once per connection.
public enum ZoneRepository {
    static let columns = """
        id::text, stream_id::text, name, polygon::text, min_vectors, min_mean_speed, direction_deg, \
        direction_tolerance_deg, min_duration_s, quiet_time_s, \
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        """
    static let list = Statement(
        name: "zones_list",
        sql: "SELECT \(columns) FROM stream_zones WHERE stream_id = $1::uuid ORDER BY created_at, id",
        idempotent: true)
    static let get = Statement(
        name: "zones_get",
        sql: "SELECT \(columns) FROM stream_zones WHERE stream_id = $1::uuid AND id = $2::uuid", idempotent: true)
    /// Every zone of the active streams, for the reconciler's desired state: one query per pass.
    static let ofActiveStreams = Statement(
        name: "zones_of_active_streams",
        sql: """
            SELECT \(columns) FROM stream_zones \
            WHERE stream_id IN (SELECT id FROM camera_streams WHERE is_active) ORDER BY stream_id, created_at, id
            """, idempotent: true)
    static let getAny = Statement(
        name: "zones_get_by_id", sql: "SELECT \(columns) FROM stream_zones WHERE id = $1::uuid", idempotent: true)
    /// The id comes from the service (a retry after a lost reply finds the row by it). Inserts
    /// only for a stream that exists and has fewer than `limit` zones; a duplicate name (the
    /// unique constraint) inserts nothing either: the caller tells these apart afterwards.
    static let insert = Statement(
        name: "zones_insert_with_id",
        sql: """
            INSERT INTO stream_zones (id, stream_id, name, polygon, min_vectors, min_mean_speed, direction_deg, \
            direction_tolerance_deg, min_duration_s, quiet_time_s) \
            SELECT $1::uuid, s.id, $3, $4::jsonb, $5::integer, $6::double precision, $7::double precision, \
            $8::double precision, $9::double precision, $10::double precision FROM camera_streams s \
            WHERE s.id = $2::uuid AND (SELECT count(*) FROM stream_zones z WHERE z.stream_id = $2::uuid) < $11::integer \
            ON CONFLICT DO NOTHING RETURNING \(columns)
            """, idempotent: true)
    /// The whole zone to given values (the service merged the partial update): idempotent.
    static let update = Statement(
        name: "zones_update",
        sql: """
            UPDATE stream_zones SET name = $3, polygon = $4::jsonb, min_vectors = $5::integer, \
            min_mean_speed = $6::double precision, direction_deg = $7::double precision, \
            direction_tolerance_deg = $8::double precision, min_duration_s = $9::double precision, \
            quiet_time_s = $10::double precision WHERE stream_id = $2::uuid AND id = $1::uuid RETURNING \(columns)
            """, idempotent: true)
    /// Not retried, like a stream's DELETE (a retry's answer would be a wrong 404).
    static let delete = Statement(
        name: "zones_delete",
        sql: "DELETE FROM stream_zones WHERE stream_id = $1::uuid AND id = $2::uuid RETURNING \(columns)")
    static let count = Statement(
        name: "zones_count", sql: "SELECT count(*) FROM stream_zones WHERE stream_id = $1::uuid", idempotent: true)
    static let nameTaken = Statement(
        name: "zones_name_taken",
        sql: "SELECT id::text FROM stream_zones WHERE stream_id = $1::uuid AND name = $2", idempotent: true)

    public static func list(_ db: Database, streamID: String) throws(DatabaseError) -> [Zone] {
        try db.execute(list, [streamID]).rows.map(zone)
    }

    /// The zones of every active stream, by stream id (in each stream's list order).
    public static func ofActiveStreams(_ db: Database) throws(DatabaseError) -> [String: [Zone]] {
        var out: [String: [Zone]] = [:]
        for row in try db.execute(ofActiveStreams, []).rows {
            let z = zone(row)
            out[z.streamID, default: []].append(z)
        }
        return out
    }

    public static func get(_ db: Database, streamID: String, id: String) throws(DatabaseError) -> Zone? {
        try db.execute(get, [streamID, id]).rows.first.map(zone)
    }

    /// Why an insert stored nothing.
    public enum InsertRefusal: Error, Sendable, Equatable {
        case streamNotFound, tooMany, nameTaken
    }

    /// Stores `z` (a validated zone whose id the caller chose for this request). Idempotent:
    /// called again with the same zone, it returns the stored row and adds none.
    public static func insert(_ db: Database, _ z: Zone, limit: Int) throws(DatabaseError) -> Result<
        Zone, InsertRefusal
    > {
        let rows = try db.execute(insert, [z.id, z.streamID, z.name] + ruleParameters(z) + [String(limit)]).rows
        if let row = rows.first { return try withinLimit(db, zone(row), limit: limit) }
        if let existing = try db.execute(getAny, [z.id]).rows.first.map(zone) {
            // From an attempt whose reply was lost (a random UUID colliding is next to impossible).
            guard existing.streamID == z.streamID, existing.name == z.name else {
                throw .query(sqlState: "23505", message: "zone id \(z.id) is already used by another zone")
            }
            return try withinLimit(db, existing, limit: limit)
        }
        guard try StreamRepository.get(db, id: z.streamID) != nil else { return .failure(.streamNotFound) }
        if try !db.execute(nameTaken, [z.streamID, z.name]).rows.isEmpty { return .failure(.nameTaken) }
        let n = Int(try db.execute(count, [z.streamID]).rows.first?[0] ?? "0") ?? 0
        if n >= limit { return .failure(.tooMany) }
        throw .query(sqlState: "XX000", message: "INSERT of zone \(z.id) stored nothing for no known reason")
    }

    /// The INSERT's own count ran on its statement's snapshot, so concurrent creates can each see
    /// room for one more. Counted again after the commit, a zone that finds its stream over the
    /// limit takes itself back. That keeps the limit whatever the interleaving: the zone kept
    /// whose count ran last saw every other kept zone committed, so at most `limit` are kept. (A
    /// create may be refused while another that took itself back was still counted: a 409 the
    /// client can retry.)
    private static func withinLimit(_ db: Database, _ z: Zone, limit: Int) throws(DatabaseError) -> Result<
        Zone, InsertRefusal
    > {
        let n = Int(try db.execute(count, [z.streamID]).rows.first?[0] ?? "0") ?? 0
        guard n > limit else { return .success(z) }
        _ = try db.execute(delete, [z.streamID, z.id])
        return .failure(.tooMany)
    }

    /// Writes every field of `z` (a validated, merged zone); nil when it is not stored.
    public static func update(_ db: Database, _ z: Zone) throws(DatabaseError) -> Zone? {
        try db.execute(update, [z.id, z.streamID, z.name] + ruleParameters(z)).rows.first.map(zone)
    }

    public static func delete(_ db: Database, streamID: String, id: String) throws(DatabaseError) -> Zone? {
        try db.execute(delete, [streamID, id]).rows.first.map(zone)
    }

    private static func text(_ v: Double?) -> String? { v.map { "\($0)" } }

    /// $4...$10: the polygon and the rule.
    private static func ruleParameters(_ z: Zone) -> [String?] {
        let r = z.rule
        return [
            Zone.polygonJSON(z.polygon), String(r.minVectors), text(r.minMeanSpeed), text(r.directionDeg),
            text(r.directionToleranceDeg), text(r.minDurationS), text(r.quietTimeS),
        ]
    }

    private static func zone(_ r: [String?]) -> Zone {
        let d = ZoneRule()
        let rule = ZoneRule(
            minVectors: r[4].flatMap { Int($0) } ?? d.minVectors, minMeanSpeed: r[5].flatMap { Double($0) },
            directionDeg: r[6].flatMap { Double($0) }, directionToleranceDeg: r[7].flatMap { Double($0) },
            minDurationS: r[8].flatMap { Double($0) } ?? d.minDurationS,
            quietTimeS: r[9].flatMap { Double($0) } ?? d.quietTimeS)
        return Zone(
            id: r[0] ?? "", streamID: r[1] ?? "", name: r[2] ?? "", polygon: r[3].flatMap(Zone.polygon(json:)) ?? [],
            rule: rule, createdAt: r[10] ?? "")
    }
}

import VFCore

/// All the SQL of `camera_streams`, the API's and the reconciler's: every statement
/// parameterised and prepared once per connection. A stream's settings go through their own row
/// codec (StreamSettings.columns / init(row:) / rowParameters).
public enum StreamRepository {
    static let columns = """
        id::text, name, \(StreamSettings.columns), is_active, worker_container_name, \
        to_char(worker_started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), \
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        """

    static let list = Statement(
        name: "streams_list", sql: "SELECT \(columns) FROM camera_streams ORDER BY created_at, id", idempotent: true)
    static let get = Statement(
        name: "streams_get", sql: "SELECT \(columns) FROM camera_streams WHERE id = $1::uuid", idempotent: true)
    /// The id comes from the API, not from the column's default: a retry after a lost reply
    /// (committed, then the connection died) inserts nothing and finds the row by that id.
    static let insert = Statement(
        name: "streams_insert_with_id",
        sql: """
            INSERT INTO camera_streams (id, name, \(StreamSettings.columns), is_active) \
            VALUES ($1::uuid, $2, $3, $4::integer, $5::double precision, $6::boolean) \
            ON CONFLICT (id) DO NOTHING RETURNING \(columns)
            """, idempotent: true)
    /// A partial update in one statement: a NULL parameter keeps the stored value.
    static let update = Statement(
        name: "streams_update",
        sql: """
            UPDATE camera_streams SET name = COALESCE($2, name), rtsp_url = COALESCE($3, rtsp_url), \
            grid_size = COALESCE($4::integer, grid_size), threshold = COALESCE($5::double precision, threshold), \
            is_active = COALESCE($6::boolean, is_active) WHERE id = $1::uuid RETURNING \(columns)
            """, idempotent: true)
    /// Not idempotent in its answer: a retry after a lost reply would find nothing and say 404
    /// for a stream the first attempt deleted. So it is not retried: the client gets 503 and its
    /// own retry gets 204 or 404, as any repeated DELETE may.
    static let delete = Statement(
        name: "streams_delete", sql: "DELETE FROM camera_streams WHERE id = $1::uuid RETURNING \(columns)")
    static let setActive = Statement(
        name: "streams_set_active",
        sql: """
            UPDATE camera_streams SET is_active = $2::boolean WHERE id = $1::uuid RETURNING \(columns)
            """, idempotent: true)
    /// The reconciler's view: every stream that should have a worker.
    static let desired = Statement(
        name: "streams_desired_workers",
        sql: """
            SELECT id::text, name, \(StreamSettings.columns), worker_container_name, \
            EXTRACT(EPOCH FROM worker_started_at)::float8 FROM camera_streams WHERE is_active ORDER BY id
            """, idempotent: true)
    /// The reconciler records the worker it runs (or clears it): the same values again on a retry.
    static let recordWorker = Statement(
        name: "streams_record_worker",
        sql: """
            UPDATE camera_streams SET worker_container_name = $2, \
            worker_started_at = to_timestamp($3::double precision) WHERE id = $1::uuid
            """, idempotent: true)
    static let counts = Statement(
        name: "streams_counts",
        sql: """
            SELECT count(*), count(*) FILTER (WHERE is_active) FROM camera_streams
            """, idempotent: true)

    public static func list(_ db: Database) throws(DatabaseError) -> [CameraStream] {
        try db.execute(list, []).rows.map(stream)
    }

    public static func get(_ db: Database, id: String) throws(DatabaseError) -> CameraStream? {
        try db.execute(get, [id]).rows.first.map(stream)
    }

    /// Stores a new stream under `id` (a fresh lowercase UUID the caller made for this request).
    /// `fields` must be complete (a validated create body). Idempotent: called again with the
    /// same id and fields, it returns the stored row and adds none.
    public static func insert(_ db: Database, id: String, _ f: StreamFields) throws(DatabaseError) -> CameraStream {
        let settings = f.settings(over: StreamSettings(source: ""))
        let rows = try db.execute(
            insert, [id, f.name] + settings.rowParameters + [f.isActive.map { $0 ? "true" : "false" }]
        ).rows
        if let row = rows.first { return stream(row) }
        // Nothing inserted: the row is there already, from an attempt whose reply was lost.
        guard let existing = try get(db, id: id) else {
            throw .query(sqlState: "XX000", message: "INSERT of \(id) returned no row and none is stored")
        }
        // A random v4 UUID colliding with another stream's is next to impossible; if it ever
        // happened, answering with someone else's stream would be wrong, so refuse instead.
        guard existing.name == f.name, existing.settings.source == f.source else {
            throw .query(sqlState: "23505", message: "stream id \(id) is already used by another stream")
        }
        return existing
    }

    public static func update(_ db: Database, id: String, _ f: StreamFields) throws(DatabaseError) -> CameraStream? {
        try db.execute(
            update,
            [
                id, f.name, f.source, f.gridSize.map(String.init), f.threshold.map(StreamSettings.text),
                f.isActive.map { $0 ? "true" : "false" },
            ]
        ).rows.first.map(stream)
    }

    public static func delete(_ db: Database, id: String) throws(DatabaseError) -> CameraStream? {
        try db.execute(delete, [id]).rows.first.map(stream)
    }

    public static func setActive(_ db: Database, id: String, _ active: Bool) throws(DatabaseError) -> CameraStream? {
        try db.execute(setActive, [id, active ? "true" : "false"]).rows.first.map(stream)
    }

    /// The streams that should have a worker (`is_active`), for the reconciler.
    public static func desiredWorkers(_ db: Database) throws(DatabaseError) -> [DesiredWorker] {
        try db.execute(desired, []).rows.map { r in
            DesiredWorker(
                id: r[0] ?? "", name: r[1] ?? "", settings: StreamSettings(row: r[2..<5]), workerContainerName: r[5],
                workerStartedAt: r[6].flatMap(Double.init))
        }
    }

    /// Records the worker running a stream (its container or process name and start time, in
    /// seconds since 1970), or clears both with nil.
    public static func recordWorker(_ db: Database, id: String, name: String?, startedAt: Double?) throws(DatabaseError) {
        _ = try db.execute(recordWorker, [id, name, startedAt.map { String($0) }])
    }

    /// (managed, active) stream counts, for the Prometheus gauges.
    public static func counts(_ db: Database) throws(DatabaseError) -> (managed: Int, active: Int) {
        let row = try db.execute(counts, []).rows.first
        return (Int(row?[0] ?? "0") ?? 0, Int(row?[1] ?? "0") ?? 0)
    }

    private static func stream(_ r: [String?]) -> CameraStream {
        CameraStream(
            id: r[0] ?? "", name: r[1] ?? "", settings: StreamSettings(row: r[2..<5]), isActive: r[5] == "t",
            workerContainerName: r[6], workerStartedAt: r[7], createdAt: r[8] ?? "")
    }
}

/// A stream that should have a worker, as the reconciler reads it.
public struct DesiredWorker: Sendable, Equatable {
    public var id: String
    public var name: String
    public var settings: StreamSettings
    public var workerContainerName: String?
    /// Seconds since 1970.
    public var workerStartedAt: Double?
}

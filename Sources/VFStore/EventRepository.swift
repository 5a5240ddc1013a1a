import Dispatch
import Foundation
import VFCore
import VFText

/// A motion event as the API answers it (REST items, WebSocket and webhook bodies): one shape,
/// written by `write(to:)`. Times are seconds since 1970, written as ISO 8601 UTC strings.
public struct StoredEvent: Sendable, Equatable {
    public var id: String
    public var streamID: String
    public var streamName: String
    public var zoneID: String
    public var zoneName: String
    public var ended: Bool
    public var startedAt: Double
    public var lastMotionAt: Double
    public var endedAt: Double?
    public var peakSpeed: Double
    public var peakAt: Double
    public var meanSpeed: Double
    public var meanDirectionDeg: Double?
    public var vectorCount: Int
    public var peakVectors: Int
    public var frames: Int
    public var seq: Int
    public var hasSnapshot: Bool

    /// The event as one entry of the worker has it.
    public init(_ e: MotionEvent, hasSnapshot: Bool) {
        id = e.id
        streamID = e.streamID
        streamName = e.streamName
        zoneID = e.zoneID
        zoneName = e.zoneName
        ended = e.phase == .end
        startedAt = e.startedAt
        lastMotionAt = e.lastMotionAt
        endedAt = e.endedAt
        peakSpeed = e.peakSpeed
        peakAt = e.peakAt
        meanSpeed = e.meanSpeed
        meanDirectionDeg = e.meanDirectionDeg
        vectorCount = e.vectorCount
        peakVectors = e.peakVectors
        frames = e.frames
        seq = e.seq
        self.hasSnapshot = hasSnapshot
    }

    public var state: String { ended ? "ended" : "active" }
    public var durationS: Double { (endedAt ?? lastMotionAt) - startedAt }

    public func write(to w: inout JSONWriter) {
        func num(_ v: Double) { w.raw(Array(JSONSerializer.number(v).utf8)) }
        func time(_ v: Double) { w.string(Self.iso8601(v)) }
        w.raw("{\"id\":")
        w.string(id)
        w.raw(",\"stream_id\":")
        w.string(streamID)
        w.raw(",\"stream_name\":")
        w.string(streamName)
        w.raw(",\"zone_id\":")
        w.string(zoneID)
        w.raw(",\"zone_name\":")
        w.string(zoneName)
        w.raw(",\"state\":")
        w.string(state)
        w.raw(",\"started_at\":")
        time(startedAt)
        w.raw(",\"last_motion_at\":")
        time(lastMotionAt)
        w.raw(",\"ended_at\":")
        if let endedAt { time(endedAt) } else { w.raw("null") }
        w.raw(",\"duration_s\":")
        num((durationS * 1e6).rounded() / 1e6)
        w.raw(",\"peak_speed\":")
        num(peakSpeed)
        w.raw(",\"peak_at\":")
        time(peakAt)
        w.raw(",\"mean_speed\":")
        num(meanSpeed)
        w.raw(",\"mean_direction_deg\":")
        if let d = meanDirectionDeg { num(d) } else { w.raw("null") }
        w.raw(",\"vector_count\":")
        w.int(vectorCount)
        w.raw(",\"peak_vectors\":")
        w.int(peakVectors)
        w.raw(",\"frames\":")
        w.int(frames)
        w.raw(hasSnapshot ? ",\"has_snapshot\":true,\"snapshot_url\":" : ",\"has_snapshot\":false,\"snapshot_url\":")
        if hasSnapshot { w.string("/events/\(id)/snapshot.jpg") } else { w.raw("null") }
        w.raw("}")
    }

    public var json: [UInt8] {
        var w = JSONWriter(capacity: 640)
        write(to: &w)
        return w.bytes
    }

    /// `2026-12-03T14:05:06.123456Z`: the form the API writes every time in (like the streams'
    /// `created_at`), to the microsecond PostgreSQL keeps.
    public static func iso8601(_ seconds: Double) -> String {
        let micros = Int64((seconds * 1e6).rounded())
        var whole = time_t(micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000)
        let frac = Int(micros - Int64(whole) * 1_000_000)
        var t = tm()
        gmtime_r(&whole, &t)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        let f = String(frac)
        return "\(pad(t.tm_year + 1900, 4))-\(pad(t.tm_mon + 1, 2))-\(pad(t.tm_mday, 2))T\(pad(t.tm_hour, 2)):"
            + "\(pad(t.tm_min, 2)):\(pad(t.tm_sec, 2)).\(String(repeating: "0", count: 6 - f.count))\(f)Z"
    }
}

/// A webhook delivery of an event as GET /events/{id} shows it (the URL masked).
public struct EventDelivery: Sendable, Equatable {
    public var url: String
    public var phase: String
    public var state: String
    public var attempts: Int
    public var lastError: String?
    public var nextAttemptAt: Double?
    public var deliveredAt: Double?

    public func write(to w: inout JSONWriter) {
        w.raw("{\"url\":")
        w.string(Credentials.maskURL(url))
        w.raw(",\"phase\":")
        w.string(phase)
        w.raw(",\"state\":")
        w.string(state)
        w.raw(",\"attempts\":")
        w.int(attempts)
        w.raw(",\"last_error\":")
        if let e = lastError { w.string(Credentials.maskText(e)) } else { w.raw("null") }
        w.raw(",\"next_attempt_at\":")
        if let t = nextAttemptAt { w.string(StoredEvent.iso8601(t)) } else { w.raw("null") }
        w.raw(",\"delivered_at\":")
        if let t = deliveredAt { w.string(StoredEvent.iso8601(t)) } else { w.raw("null") }
        w.raw("}")
    }
}

/// Where a page of GET /events starts: after the event with this `started_at` (PostgreSQL's own
/// text of it, so the comparison is exact) and `id`. Opaque to clients: hex of `<time>|<id>`.
public struct EventCursor: Sendable, Equatable {
    public var startedAt: String
    public var id: String

    public init(startedAt: String, id: String) {
        self.startedAt = startedAt
        self.id = id
    }

    public var token: String { Hex.encode(Array("\(startedAt)|\(id)".utf8)) }

    /// nil for anything but a token this API wrote (the time is checked for its exact shape).
    public init?(token: String) {
        guard token.utf8.count <= 200, token.utf8.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var it = token.utf8.makeIterator()
        while let hi = it.next(), let lo = it.next() {
            guard let h = Hex.value(hi), let l = Hex.value(lo) else { return nil }
            bytes.append(h << 4 | l)
        }
        let parts = String(decoding: bytes, as: UTF8.self).split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 2, let id = UUIDText.canonical(String(parts[1])) else { return nil }
        let t = Array(parts[0].utf8)
        // YYYY-MM-DDTHH:MM:SS.ffffffZ
        guard t.count == 27 else { return nil }
        for (k, c) in t.enumerated() {
            switch k {
            case 4, 7: guard c == UInt8(ascii: "-") else { return nil }
            case 10: guard c == UInt8(ascii: "T") else { return nil }
            case 13, 16: guard c == UInt8(ascii: ":") else { return nil }
            case 19: guard c == UInt8(ascii: ".") else { return nil }
            case 26: guard c == UInt8(ascii: "Z") else { return nil }
            default: guard c >= 0x30 && c <= 0x39 else { return nil }
            }
        }
        startedAt = String(parts[0])
        self.id = id
    }
}

/// The filters of GET /events, validated.
public struct EventQuery: Sendable, Equatable {
    public var streamID: String?
    /// A zone id (canonical) or a zone name.
    public var zone: String?
    public var since: Double?
    public var until: Double?
    public var limit: Int
    public var cursor: EventCursor?

    public init(
        streamID: String? = nil, zone: String? = nil, since: Double? = nil, until: Double? = nil, limit: Int = 50,
        cursor: EventCursor? = nil
    ) {
        self.streamID = streamID
        self.zone = zone
        self.since = since
        self.until = until
        self.limit = limit
        self.cursor = cursor
    }
}

/// All the SQL of `motion_events`, `motion_event_snapshots` and `webhook_deliveries`.
public enum EventRepository {
    /// What applying one entry did.
    public struct Applied: Sendable, Equatable {
        /// The entry was newer than the stored event (false: a replay or a late, older entry).
        public var changed: Bool
        /// Whether the event has a snapshot now.
        public var hasSnapshot: Bool
        /// Webhook deliveries this entry queued (none when they were queued before).
        public var queuedDeliveries: Int
    }

    /// One statement, so one transaction: the event (guarded by seq), its snapshot (guarded by
    /// the seq of the entry that carried it) and its webhook deliveries (start for any entry, end
    /// for the end entry; one row per phase and URL, never two). Idempotent: a retry after a lost
    /// reply, or the same entry read again, changes nothing.
    static let upsert = Statement(
        name: "events_upsert",
        sql: """
            WITH ev AS (INSERT INTO motion_events (id, stream_id, stream_name, zone_id, zone_name, state, started_at, \
            last_motion_at, ended_at, peak_speed, peak_at, mean_speed, mean_direction_deg, vector_count, peak_vectors, \
            frames, seq, updated_at) VALUES ($1::uuid, $2::uuid, $3, $4::uuid, $5, $6, to_timestamp($7::double precision), \
            to_timestamp($8::double precision), to_timestamp($9::double precision), $10::double precision, \
            to_timestamp($11::double precision), $12::double precision, $13::double precision, $14::bigint, \
            $15::integer, $16::integer, $17::integer, NOW()) \
            ON CONFLICT (id) DO UPDATE SET stream_id = EXCLUDED.stream_id, stream_name = EXCLUDED.stream_name, \
            zone_id = EXCLUDED.zone_id, zone_name = EXCLUDED.zone_name, state = EXCLUDED.state, \
            started_at = EXCLUDED.started_at, last_motion_at = EXCLUDED.last_motion_at, ended_at = EXCLUDED.ended_at, \
            peak_speed = EXCLUDED.peak_speed, peak_at = EXCLUDED.peak_at, mean_speed = EXCLUDED.mean_speed, \
            mean_direction_deg = EXCLUDED.mean_direction_deg, vector_count = EXCLUDED.vector_count, \
            peak_vectors = EXCLUDED.peak_vectors, frames = EXCLUDED.frames, seq = EXCLUDED.seq, updated_at = NOW() \
            WHERE motion_events.seq < EXCLUDED.seq RETURNING id), \
            snap AS (INSERT INTO motion_event_snapshots (event_id, seq, jpeg) \
            SELECT $1::uuid, $17::integer, decode($18::text, 'hex') WHERE $18::text IS NOT NULL \
            ON CONFLICT (event_id) DO UPDATE SET seq = EXCLUDED.seq, jpeg = EXCLUDED.jpeg \
            WHERE motion_event_snapshots.seq < EXCLUDED.seq RETURNING event_id), \
            hooks AS (INSERT INTO webhook_deliveries (event_id, phase, url, body) \
            SELECT $1::uuid, p.phase, u.url, $21 FROM unnest($19::text[]) AS u(url), unnest($20::text[]) AS p(phase) \
            ON CONFLICT (event_id, phase, url) DO NOTHING RETURNING id) \
            SELECT (SELECT count(*) FROM ev), \
            ($18::text IS NOT NULL OR EXISTS (SELECT 1 FROM motion_event_snapshots WHERE event_id = $1::uuid)), \
            (SELECT count(*) FROM hooks)
            """, idempotent: true)

    /// A PostgreSQL array literal of text values.
    static func textArray(_ values: [String]) -> String {
        var out = "{"
        for (k, v) in values.enumerated() {
            if k > 0 { out += "," }
            out += "\""
            for c in v {
                if c == "\"" || c == "\\" { out.append("\\") }
                out.append(c)
            }
            out += "\""
        }
        return out + "}"
    }

    /// Applies one entry in one transaction. `webhookURLs`: where its start/end deliveries go.
    public static func apply(_ db: Database, _ e: MotionEvent, webhookURLs: [String] = []) throws(DatabaseError)
        -> Applied
    {
        func text(_ v: Double?) -> String? { v.map { "\($0)" } }
        let phases = e.phase == .end ? ["start", "end"] : ["start"]
        let body = String(decoding: StoredEvent(e, hasSnapshot: e.snapshot != nil).json, as: UTF8.self)
        let params: [String?] = [
            e.id, e.streamID, e.streamName, e.zoneID, e.zoneName, e.phase == .end ? "ended" : "active",
            text(e.startedAt), text(e.lastMotionAt), text(e.endedAt), text(e.peakSpeed), text(e.peakAt),
            text(e.meanSpeed), text(e.meanDirectionDeg), String(e.vectorCount), String(e.peakVectors),
            String(e.frames), String(e.seq), e.snapshot.map { Hex.encode($0) },
            textArray(webhookURLs), textArray(webhookURLs.isEmpty ? [] : phases), body,
        ]
        let row = try db.execute(upsert, params).rows.first ?? []
        return Applied(
            changed: (row.first ?? "0") != "0", hasSnapshot: row.count > 1 && row[1] == "t",
            queuedDeliveries: row.count > 2 ? Int(row[2] ?? "0") ?? 0 : 0)
    }

    static let columns = """
        e.id::text, e.stream_id::text, e.stream_name, e.zone_id::text, e.zone_name, e.state, \
        extract(epoch FROM e.started_at)::text, extract(epoch FROM e.last_motion_at)::text, \
        extract(epoch FROM e.ended_at)::text, e.peak_speed, extract(epoch FROM e.peak_at)::text, e.mean_speed, \
        e.mean_direction_deg, e.vector_count, e.peak_vectors, e.frames, e.seq, \
        EXISTS (SELECT 1 FROM motion_event_snapshots s WHERE s.event_id = e.id), \
        to_char(e.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        """

    static let get = Statement(
        name: "events_get", sql: "SELECT \(columns) FROM motion_events e WHERE e.id = $1::uuid", idempotent: true)

    /// Newest first, with the filters present and only those (one prepared statement per
    /// combination, 32 at most), so each plan can use the index of its filter; the cursor is the
    /// last row of the page before.
    static func listStatement(stream: Bool, zone: Bool, since: Bool, until: Bool, cursor: Bool) -> Statement {
        var conditions: [String] = []
        var n = 1  // $1 is the limit
        func next() -> Int {
            n += 1
            return n
        }
        if stream { conditions.append("e.stream_id = $\(next())::uuid") }
        if zone {
            let k = next()
            // A zone id (the canonical text of a UUID) or a zone name.
            conditions.append("(e.zone_id::text = $\(k)::text OR e.zone_name = $\(k)::text)")
        }
        if since { conditions.append("e.started_at >= to_timestamp($\(next())::double precision)") }
        if until { conditions.append("e.started_at <= to_timestamp($\(next())::double precision)") }
        if cursor {
            let t = next()
            conditions.append("(e.started_at, e.id) < ($\(t)::timestamptz, $\(next())::uuid)")
        }
        let mask = [stream, zone, since, until, cursor].enumerated().reduce(0) {
            $0 | ($1.element ? 1 << $1.offset : 0)
        }
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        return Statement(
            name: "events_list_\(mask)",
            sql:
                "SELECT \(columns) FROM motion_events e\(filter) ORDER BY e.started_at DESC, e.id DESC LIMIT $1::integer",
            idempotent: true)
    }

    static let snapshot = Statement(
        name: "events_snapshot",
        sql: "SELECT encode(jpeg, 'hex') FROM motion_event_snapshots WHERE event_id = $1::uuid",
        idempotent: true)

    static let deliveries = Statement(
        name: "events_deliveries",
        sql: """
            SELECT url, phase, state, attempts, last_error, \
            CASE WHEN state = 'pending' THEN extract(epoch FROM next_attempt_at)::text END, \
            extract(epoch FROM delivered_at)::text FROM webhook_deliveries WHERE event_id = $1::uuid \
            ORDER BY created_at, phase DESC, url
            """, idempotent: true)

    public static func get(_ db: Database, id: String) throws(DatabaseError) -> StoredEvent? {
        try db.execute(get, [id]).rows.first.map { event($0).0 }
    }

    /// A page of events and the cursor of the next one (nil: this was the last page).
    public static func list(_ db: Database, _ q: EventQuery) throws(DatabaseError) -> ([StoredEvent], EventCursor?) {
        let statement = listStatement(
            stream: q.streamID != nil, zone: q.zone != nil, since: q.since != nil, until: q.until != nil,
            cursor: q.cursor != nil)
        var params: [String?] = [String(q.limit + 1)]
        if let v = q.streamID { params.append(v) }
        if let v = q.zone { params.append(v) }
        if let v = q.since { params.append("\(v)") }
        if let v = q.until { params.append("\(v)") }
        if let c = q.cursor { params += [c.startedAt, c.id] }
        let rows = try db.execute(statement, params).rows
        let page = rows.prefix(q.limit).map(event)
        let next = rows.count > q.limit ? page.last.map { EventCursor(startedAt: $0.1, id: $0.0.id) } : nil
        return (page.map(\.0), next)
    }

    public static func snapshot(_ db: Database, id: String) throws(DatabaseError) -> [UInt8]? {
        guard let hex = try db.execute(snapshot, [id]).rows.first?.first ?? nil else { return nil }
        return Hex.decode(hex)
    }

    public static func deliveries(_ db: Database, eventID: String) throws(DatabaseError) -> [EventDelivery] {
        try db.execute(deliveries, [eventID]).rows.map { r in
            EventDelivery(
                url: r[0] ?? "", phase: r[1] ?? "", state: r[2] ?? "", attempts: r[3].flatMap { Int($0) } ?? 0,
                lastError: r[4], nextAttemptAt: r[5].flatMap { Double($0) }, deliveredAt: r[6].flatMap { Double($0) })
        }
    }

    private static func event(_ r: [String?]) -> (StoredEvent, String) {
        func d(_ k: Int) -> Double { r[k].flatMap { Double($0) } ?? 0 }
        func i(_ k: Int) -> Int { r[k].flatMap { Int($0) } ?? 0 }
        let e = MotionEvent(
            id: r[0] ?? "", seq: i(16), phase: r[5] == "ended" ? .end : .update, streamID: r[1] ?? "",
            streamName: r[2] ?? "", zoneID: r[3] ?? "", zoneName: r[4] ?? "", startedAt: d(6), lastMotionAt: d(7),
            endedAt: r[8].flatMap { Double($0) }, peakSpeed: d(9), peakAt: d(10), meanSpeed: d(11),
            meanDirectionDeg: r[12].flatMap { Double($0) }, vectorCount: i(13), peakVectors: i(14), frames: i(15))
        return (StoredEvent(e, hasSnapshot: r[17] == "t"), r[18] ?? "")
    }

    // MARK: Webhook deliveries

    /// A delivery taken by one sender (leased until its attempt is recorded).
    public struct DueDelivery: Sendable, Equatable {
        public var id: String
        public var eventID: String
        public var phase: String
        public var url: String
        public var body: String
        public var attempts: Int
    }

    /// Takes up to $1 due deliveries and leases them for $2 seconds, so that another replica's
    /// sender (or this one's next pass) does not send them at the same time.
    static let takeDue = Statement(
        name: "deliveries_take_due",
        sql: """
            UPDATE webhook_deliveries SET next_attempt_at = NOW() + make_interval(secs => $2::double precision) \
            WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= NOW() \
            ORDER BY next_attempt_at LIMIT $1::integer FOR UPDATE SKIP LOCKED) \
            RETURNING id::text, event_id::text, phase, url, body, attempts
            """)

    static let delivered = Statement(
        name: "deliveries_delivered",
        sql: """
            UPDATE webhook_deliveries SET state = 'delivered', attempts = $2::integer, delivered_at = NOW(), \
            last_error = NULL WHERE id = $1::uuid
            """, idempotent: true)

    static let attemptFailed = Statement(
        name: "deliveries_failed",
        sql: """
            UPDATE webhook_deliveries SET state = $3, attempts = $2::integer, last_error = $4, \
            next_attempt_at = NOW() + make_interval(secs => $5::double precision) WHERE id = $1::uuid
            """, idempotent: true)

    static let nextDue = Statement(
        name: "deliveries_next_due",
        sql:
            "SELECT extract(epoch FROM min(next_attempt_at) - NOW())::text FROM webhook_deliveries WHERE state = 'pending'",
        idempotent: true)

    public static func takeDue(_ db: Database, limit: Int, lease: Double) throws(DatabaseError) -> [DueDelivery] {
        try db.execute(takeDue, [String(limit), "\(lease)"]).rows.map { r in
            DueDelivery(
                id: r[0] ?? "", eventID: r[1] ?? "", phase: r[2] ?? "", url: r[3] ?? "", body: r[4] ?? "",
                attempts: r[5].flatMap { Int($0) } ?? 0)
        }
    }

    public static func markDelivered(_ db: Database, id: String, attempts: Int) throws(DatabaseError) {
        _ = try db.execute(delivered, [id, String(attempts)])
    }

    /// Records a failed attempt: retried after `retryIn` seconds, or `failed` for good.
    public static func markFailed(
        _ db: Database, id: String, attempts: Int, error: String, final: Bool, retryIn: Double
    ) throws(DatabaseError) {
        _ = try db.execute(attemptFailed, [id, String(attempts), final ? "failed" : "pending", error, "\(retryIn)"])
    }

    /// Seconds until the next pending delivery is due (negative: overdue); nil when none is pending.
    public static func secondsToNextDue(_ db: Database) throws(DatabaseError) -> Double? {
        try db.execute(nextDue, []).rows.first?.first?.flatMap { Double($0) }
    }

    // MARK: Retention

    /// Deletes up to $2 events whose last motion is more than $1 seconds old, with their snapshots
    /// and deliveries, in one statement (a bounded batch: no long lock, no huge transaction).
    static let sweep = Statement(
        name: "events_sweep",
        sql: """
            WITH old AS (SELECT id FROM motion_events WHERE COALESCE(ended_at, last_motion_at) < \
            NOW() - make_interval(secs => $1::double precision) LIMIT $2::integer), \
            s AS (DELETE FROM motion_event_snapshots WHERE event_id IN (SELECT id FROM old)), \
            d AS (DELETE FROM webhook_deliveries WHERE event_id IN (SELECT id FROM old)) \
            DELETE FROM motion_events WHERE id IN (SELECT id FROM old)
            """, idempotent: true)

    /// Removes one batch; returns how many events went.
    public static func sweep(_ db: Database, olderThan seconds: Double, batch: Int) throws(DatabaseError) -> Int {
        try db.execute(sweep, ["\(seconds)", String(batch)]).affected
    }
}

extension Hex {
    static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `\x...` or plain hex; nil when not hex.
    static func decode(_ text: String) -> [UInt8]? {
        var u = Array(text.utf8)
        if u.count >= 2 && u[0] == UInt8(ascii: "\\") && u[1] == UInt8(ascii: "x") { u.removeFirst(2) }
        guard u.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(u.count / 2)
        var k = 0
        while k < u.count {
            guard let h = Hex.value(u[k]), let l = Hex.value(u[k + 1]) else { return nil }
            out.append(h << 4 | l)
            k += 2
        }
        return out
    }
}

extension DatabasePool {
    /// Runs `work` on a pool thread and waits for its value: for threads of their own (the event
    /// consumer, the webhook sender, the retention sweep), never for an event loop. nil when the
    /// pool refused the job (full or stopping).
    public func perform<T: Sendable>(_ work: @escaping @Sendable (Database) -> T) -> T? {
        let slot = PerformSlot<T>()
        let done = DispatchSemaphore(value: 0)
        guard
            submit({ db in
                slot.value = work(db)
                done.signal()
            })
        else { return nil }
        done.wait()
        return slot.value
    }
}

/// One value handed from a pool thread to a waiting thread. `@unchecked Sendable`: written once
/// before the semaphore is signalled, read only after the wait.
private final class PerformSlot<T>: @unchecked Sendable {
    var value: T?
}

import Foundation
import VFCore
import VFTestSupport
import VFText
import XCTest

@testable import VFStore

/// The motion events' store against a real PostgreSQL: entries applied in any order, any number
/// of times, leave the row of the newest seq; pages by keyset cover every event once; filters.
final class EventRepositoryTests: XCTestCase {
    /// The entries of one event: start, `updates` updates, end, each with the whole state so far.
    private static func entries(id: String, stream: String, zone: String, zoneName: String, start: Double, updates: Int)
        -> [MotionEvent]
    {
        var out: [MotionEvent] = []
        var e = MotionEvent(
            id: id, seq: 1, phase: .start, streamID: stream, streamName: "Cam", zoneID: zone, zoneName: zoneName,
            startedAt: start, lastMotionAt: start, peakSpeed: 1, peakAt: start, meanSpeed: 1, meanDirectionDeg: 45,
            vectorCount: 10, peakVectors: 10, frames: 1, snapshot: [0xFF, 0xD8, 1])
        out.append(e)
        for k in 0..<updates {
            e.seq += 1
            e.phase = .update
            e.lastMotionAt = start + Double(k + 1)
            e.frames += 5
            e.vectorCount += 50
            e.snapshot = k % 2 == 0 ? [0xFF, 0xD8, UInt8(e.seq)] : nil
            out.append(e)
        }
        e.seq += 1
        e.phase = .end
        e.endedAt = e.lastMotionAt + 1
        e.snapshot = [0xFF, 0xD8, UInt8(e.seq), 0xFF, 0xD9]
        out.append(e)
        return out
    }

    func testApplyIsIdempotentAndGuardedBySeq() throws {
        let pg = try TestPostgres()
        defer { pg.close() }
        let pool = DatabasePool(url: pg.url, size: 1)
        defer { pool.shutdown() }
        let stream = UUID().uuidString.lowercased()
        let zone = UUID().uuidString.lowercased()
        var all: [MotionEvent] = []
        var last: [String: MotionEvent] = [:]
        for k in 0..<6 {
            let id = UUID().uuidString.lowercased()
            let es = Self.entries(
                id: id, stream: stream, zone: zone, zoneName: "Door", start: 1_764_000_000 + Double(k), updates: k % 3)
            all += es
            last[id] = es.last
        }
        var rng = SystemRandomNumberGenerator()
        // Shuffled, twice: the same rows as in order, once.
        let shuffled = all.shuffled(using: &rng) + all.shuffled(using: &rng)
        let urls = ["http://hooks.example/a", "https://user:pw@hooks.example/b"]
        let applied = try XCTUnwrap(
            onPool(pool) { db -> [EventRepository.Applied]? in
                try? shuffled.map { e throws(DatabaseError) in try EventRepository.apply(db, e, webhookURLs: urls) }
            })
        let changes = try XCTUnwrap(applied).filter(\.changed).count
        XCTAssertGreaterThanOrEqual(changes, last.count)
        XCTAssertLessThanOrEqual(changes, all.count, "a replay never counts as a change")
        for (id, end) in last {
            let stored = try XCTUnwrap(onPool(pool) { db in try? EventRepository.get(db, id: id) } ?? nil)
            XCTAssertEqual(stored, StoredEvent(end, hasSnapshot: true))
            XCTAssertEqual(stored.state, "ended")
            let snap = onPool(pool) { db in try? EventRepository.snapshot(db, id: id) } ?? nil
            XCTAssertEqual(snap, end.snapshot, "the newest entry's snapshot wins")
            let deliveries = try XCTUnwrap(
                onPool(pool) { db in try? EventRepository.deliveries(db, eventID: id) } ?? nil)
            XCTAssertEqual(deliveries.count, 4, "start and end, once per URL")
            XCTAssertEqual(Set(deliveries.map(\.phase)), ["start", "end"])
            XCTAssertTrue(deliveries.allSatisfy { $0.state == "pending" && $0.attempts == 0 })
            var w = JSONWriter()
            for d in deliveries { d.write(to: &w) }
            XCTAssertFalse(String(decoding: w.bytes, as: UTF8.self).contains("pw@"), "URLs are masked")
        }
        // Applying everything once more changes nothing and queues nothing.
        let inOrder = all
        let again = try XCTUnwrap(
            onPool(pool) { db -> [EventRepository.Applied]? in
                try? inOrder.map { e throws(DatabaseError) in try EventRepository.apply(db, e, webhookURLs: urls) }
            } ?? nil)
        XCTAssertTrue(again.allSatisfy { !$0.changed && $0.queuedDeliveries == 0 })
    }

    func testListFiltersAndPages() throws {
        let pg = try TestPostgres()
        defer { pg.close() }
        let pool = DatabasePool(url: pg.url, size: 1)
        defer { pool.shutdown() }
        let streams = [UUID().uuidString.lowercased(), UUID().uuidString.lowercased()]
        let zones = [UUID().uuidString.lowercased(), UUID().uuidString.lowercased()]
        var ids: [String: (stream: String, zone: String, start: Double)] = [:]
        for k in 0..<17 {
            let id = UUID().uuidString.lowercased()
            // Three events share a start time: the id orders them.
            let start = k < 3 ? 1_764_000_500.5 : 1_764_000_000 + Double(k) * 10
            ids[id] = (streams[k % 2], zones[k % 2], start)
            let es = Self.entries(
                id: id, stream: streams[k % 2], zone: zones[k % 2], zoneName: "Zone \(k % 2)", start: start, updates: 0)
            XCTAssertNotNil(
                onPool(pool) { db in try? es.map { e throws(DatabaseError) in try EventRepository.apply(db, e) } }
                    ?? nil)
        }
        func page(_ q: EventQuery) throws -> ([StoredEvent], EventCursor?) {
            try XCTUnwrap(onPool(pool) { db in try? EventRepository.list(db, q) } ?? nil)
        }
        var seen: [StoredEvent] = []
        var q = EventQuery(limit: 4)
        var inserted = false
        while true {
            let (events, next) = try page(q)
            seen += events
            if !inserted {
                // Newer events arriving between pages neither repeat nor hide the others.
                inserted = true
                for k in 0..<3 {
                    let es = Self.entries(
                        id: UUID().uuidString.lowercased(), stream: streams[0], zone: zones[0], zoneName: "Zone 0",
                        start: 1_764_100_000 + Double(k), updates: 0)
                    XCTAssertNotNil(
                        onPool(pool) { db in try? es.map { e throws(DatabaseError) in try EventRepository.apply(db, e) }
                        } ?? nil)
                }
            }
            guard let next else { break }
            // The token goes out and comes back as the client would send it.
            q.cursor = try XCTUnwrap(EventCursor(token: next.token))
        }
        XCTAssertEqual(seen.count, ids.count)
        XCTAssertEqual(Set(seen.map(\.id)), Set(ids.keys))
        for (a, b) in zip(seen, seen.dropFirst()) {
            let newerFirst = a.startedAt > b.startedAt || (a.startedAt == b.startedAt && a.id > b.id)
            XCTAssertTrue(newerFirst, "\(a.id) before \(b.id)")
        }
        let byStream = try page(EventQuery(streamID: streams[1], limit: 500)).0
        XCTAssertEqual(Set(byStream.map(\.id)), Set(ids.filter { $0.value.stream == streams[1] }.keys))
        XCTAssertEqual(
            try page(EventQuery(zone: zones[1], until: 1_764_099_999, limit: 500)).0.count,
            ids.values.filter { $0.zone == zones[1] }.count)
        XCTAssertEqual(
            try page(EventQuery(zone: "Zone 1", until: 1_764_099_999, limit: 500)).0.count,
            ids.values.filter { $0.zone == zones[1] }.count)
        let since = 1_764_000_100.0
        XCTAssertEqual(
            Set(try page(EventQuery(since: since, until: 1_764_099_999, limit: 500)).0.map(\.id)),
            Set(ids.filter { $0.value.start >= since }.keys))
        XCTAssertEqual(
            Set(try page(EventQuery(until: since, limit: 500)).0.map(\.id)),
            Set(ids.filter { $0.value.start <= since }.keys))
        XCTAssertNil(EventCursor(token: "garbage"))
        XCTAssertNil(EventCursor(token: EventCursor(startedAt: "yesterday", id: UUID().uuidString).token))
    }

    func testRetentionSweepRemovesOldEventsInBatches() throws {
        let pg = try TestPostgres()
        defer { pg.close() }
        let pool = DatabasePool(url: pg.url, size: 1)
        defer { pool.shutdown() }
        let now = Date().timeIntervalSince1970
        var old: [String] = []
        for k in 0..<5 {
            let id = UUID().uuidString.lowercased()
            let start = k < 3 ? now - 7200 : now - 10
            if k < 3 { old.append(id) }
            let es = Self.entries(
                id: id, stream: UUID().uuidString.lowercased(), zone: UUID().uuidString.lowercased(), zoneName: "Z",
                start: start, updates: 1)
            XCTAssertNotNil(
                onPool(pool) { db in
                    try? es.map { e throws(DatabaseError) in
                        try EventRepository.apply(db, e, webhookURLs: ["http://h/x"])
                    }
                } ?? nil)
        }
        XCTAssertEqual(onPool(pool) { db in try? EventRepository.sweep(db, olderThan: 3600, batch: 2) }, 2)
        XCTAssertEqual(onPool(pool) { db in try? EventRepository.sweep(db, olderThan: 3600, batch: 2) }, 1)
        XCTAssertEqual(onPool(pool) { db in try? EventRepository.sweep(db, olderThan: 3600, batch: 2) }, 0)
        for id in old {
            XCTAssertEqual(onPool(pool) { db in try? EventRepository.get(db, id: id) } ?? nil, nil)
        }
        XCTAssertEqual(
            try pg.psql("SELECT count(*) FROM motion_event_snapshots", db: "vectorflow").trimmingCharacters(
                in: .whitespacesAndNewlines), "2")
        XCTAssertEqual(
            try pg.psql("SELECT count(*) FROM webhook_deliveries", db: "vectorflow").trimmingCharacters(
                in: .whitespacesAndNewlines), "4")
    }
}

import Foundation
import VFControl
import VFCore
import VFTestSupport
import XCTest

@testable import VFStore

/// Every database call is bounded, against a real PostgreSQL that is frozen (SIGSTOP), slow, or
/// whose connection is killed mid-statement; retries never apply a statement twice.
final class DatabaseTimeoutTests: XCTestCase {
    /// What a call came to ("ok", a StreamError's name, or "state:" and the pool's state) and
    /// how long it took from submission (queueing included).
    struct Timed: Sendable {
        var outcome: String
        var seconds: Double
    }

    static func outcome<T>(_ r: Result<T, StreamError>) -> String {
        switch r {
        case .success: return "ok"
        case .failure(let e): return "\(e)"
        }
    }

    /// Results written by pool threads, read after the group is done.
    private final class Collector: @unchecked Sendable {  // every access under `lock`
        private let lock = NSLock()
        private var items: [Timed] = []
        func add(_ t: Timed) { lock.withLock { items.append(t) } }
        var all: [Timed] { lock.withLock { items } }
    }

    /// Submits every job at once (more than the pool has threads, so some queue) and times each.
    private func concurrently(
        _ pool: DatabasePool, _ jobs: [@Sendable (Database) -> String]
    ) -> [Timed] {
        let out = Collector()
        let group = DispatchGroup()
        for job in jobs {
            let t0 = monotonicNow()
            group.enter()
            let queued = pool.submit { db in
                out.add(Timed(outcome: job(db), seconds: monotonicNow() - t0))
                group.leave()
            }
            XCTAssertTrue(queued)
            if !queued { group.leave() }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success, "calls must end while the server is frozen")
        return out.all
    }

    private func count(_ pg: TestPostgres, _ sql: String) throws -> Int {
        Int(try pg.psql(sql, db: "vectorflow").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    func testFrozenServerAnswers503WithinTheBound() throws {
        let pg = try TestPostgres()
        defer { pg.close() }
        let pool = DatabasePool(url: pg.url, size: 3)
        defer { pool.shutdown() }
        let service = StreamService()
        let list: @Sendable (Database) -> String = { Self.outcome(service.list($0)) }
        let create: @Sendable (String) -> @Sendable (Database) -> String = { name in
            { db in
                Self.outcome(
                    service.create(StreamFields(name: name, source: "rtsp://cam/\(name)", gridSize: 16, threshold: 1.2, isActive: false), db))
            }
        }
        for k in 0..<2 { XCTAssertEqual(onPool(pool, create("before\(k)")), "ok") }
        XCTAssertEqual(onPool(pool) { $0.state() }, .ok)

        let frozen = pg.freeze()
        defer { pg.thaw(frozen) }  // runs before pool.shutdown and pg.close: nothing stays stopped
        XCTAssertGreaterThan(frozen.count, 1, "the postmaster and its children")

        // First wave: three threads stuck on a silent server, nine more jobs queued behind them.
        var jobs: [@Sendable (Database) -> String] = []
        for k in 0..<12 {
            switch k % 3 {
            case 0: jobs.append(list)
            case 1: jobs.append(create("frozen\(k)"))
            default: jobs.append { db in "state:\(db.state().rawValue)" }
            }
        }
        let first = concurrently(pool, jobs)
        XCTAssertEqual(first.count, 12)
        let times = first.map(\.seconds).sorted()
        print(
            String(
                format: "frozen server, 12 calls on 3 threads: median %.3f s, max %.3f s", times[times.count / 2],
                times.last ?? 0))
        for t in first {
            XCTAssertNotEqual(t.outcome, "ok")
            XCTAssertNotEqual(t.outcome, "state:ok")
            XCTAssertLessThan(t.seconds, 3, "answered within the bound, queueing included")
        }
        XCTAssertTrue(first.contains { $0.outcome == "databaseTimeout" }, "\(first)")
        XCTAssertFalse(first.contains { $0.outcome == "state:down" }, "a frozen server is a timeout, not down")
        XCTAssertTrue(first.contains { $0.outcome == "state:timeout" })

        // Second wave: the pool knows the server is silent; all but the one probe fail at once.
        let second = concurrently(pool, (0..<8).map { _ in list })
        XCTAssertFalse(second.contains { $0.outcome == "ok" }, "\(second)")
        XCTAssertLessThanOrEqual(second.filter { $0.seconds > 0.5 }.count, 1, "\(second.map(\.seconds))")
        XCTAssertTrue(second.allSatisfy { $0.seconds < 3 })

        pg.thaw(frozen)
        XCTAssertTrue(waitUntil(20) { self.onPool(pool, list) == "ok" }, "recovers")
        // Every thread recovers, not only the one that probed.
        let after = concurrently(pool, (0..<6).map { _ in list })
        XCTAssertEqual(after.map(\.outcome), Array(repeating: "ok", count: 6))
        XCTAssertEqual(onPool(pool, create("after")), "ok")
        // Nothing before lost; a create answered 503 may have been stored (the frozen backend ran it
        // after SIGCONT), but never twice.
        XCTAssertEqual(try count(pg, "SELECT count(*) FROM camera_streams WHERE name LIKE 'before%'"), 2)
        XCTAssertEqual(try count(pg, "SELECT count(*) FROM camera_streams WHERE name = 'after'"), 1)
        XCTAssertEqual(
            try count(pg, "SELECT count(*) FROM (SELECT name FROM camera_streams GROUP BY name HAVING count(*) > 1) d"),
            0)
    }

    /// Connecting is bounded too: a frozen postmaster accepts the TCP connection (the kernel does)
    /// but never answers the startup message.
    func testConnectingToAFrozenServerIsBounded() throws {
        let pg = try TestPostgres()
        defer { pg.close() }
        let frozen = pg.freeze()
        defer { pg.thaw(frozen) }
        XCTAssertFalse(frozen.isEmpty)
        let pool = DatabasePool(url: pg.url, size: 2)
        defer { pool.shutdown() }
        let t0 = monotonicNow()
        XCTAssertEqual(onPool(pool) { $0.state() }, .timeout)
        let took = monotonicNow() - t0
        XCTAssertGreaterThan(took, 1.5)
        XCTAssertLessThan(took, 3)
        // The next calls fail fast but for one probe at a time (which may start once the backoff
        // has passed, on a slow machine).
        let next = concurrently(
            pool,
            (0..<4).map { _ in
                { db in "state:\(db.state().rawValue)" }
            })
        XCTAssertEqual(next.map(\.outcome).sorted(), Array(repeating: "state:timeout", count: 4))
        XCTAssertLessThanOrEqual(next.filter { $0.seconds > 0.5 }.count, 1, "\(next.map(\.seconds))")
        XCTAssertTrue(next.allSatisfy { $0.seconds < 3 })
        pg.thaw(frozen)
        XCTAssertTrue(waitUntil(20) { self.onPool(pool) { $0.state() } == .ok })
    }

    func testSlowStatementIsCancelledByTheServerAndTheConnectionKept() throws {
        let pg = try TestPostgres()
        defer { pg.close() }
        let pool = DatabasePool(url: pg.url, size: 1)
        defer { pool.shutdown() }
        let show = Statement(name: "t_show", sql: "SHOW statement_timeout", idempotent: true)
        XCTAssertEqual(onPool(pool) { try? $0.execute(show, []).rows.first?.first ?? nil }, "1500ms")

        let slow = Statement(name: "t_slow", sql: "SELECT pg_sleep(10)", idempotent: true)
        let t0 = monotonicNow()
        let outcome = onPool(pool) { db -> String in
            do {
                _ = try db.execute(slow, [])
                return "answered"
            } catch {
                if case .timeout? = error as? DatabaseError { return "timeout" }
                return "\(error)"
            }
        }
        let took = monotonicNow() - t0
        XCTAssertEqual(outcome, "timeout")
        XCTAssertGreaterThan(took, 1.2)
        XCTAssertLessThan(took, 2.5)
        // statement_timeout is the live server's own answer: the gate stays open, the next call works.
        let t1 = monotonicNow()
        XCTAssertEqual(onPool(pool) { $0.state() }, .ok)
        XCTAssertLessThan(monotonicNow() - t1, 1)

        // A setting in the URL overrides the default (libpq: later settings win, the URL is last).
        let custom = DatabasePool(url: pg.url + "?options=-c%20statement_timeout%3D3000", size: 1)
        defer { custom.shutdown() }
        XCTAssertEqual(onPool(custom) { try? $0.execute(show, []).rows.first?.first ?? nil }, "3s")
    }

    /// A connection killed while its statement runs: an idempotent statement is retried once on a
    /// new connection; any other is not (its outcome would be unknown) and answers unavailable.
    func testOnlyIdempotentStatementsAreRetriedAfterTheConnectionDies() throws {
        let pg = try TestPostgres()
        defer { pg.close() }
        let timeouts = DatabaseTimeouts(call: 10, statement: 8)
        let pool = DatabasePool(url: pg.url, size: 1, timeouts: timeouts)
        defer { pool.shutdown() }
        XCTAssertEqual(onPool(pool) { $0.state() }, .ok)
        try pg.psql("CREATE TABLE hits (n integer); GRANT ALL ON hits TO vectorflow", db: "vectorflow")
        let sql = "INSERT INTO hits SELECT 1 FROM pg_sleep(1.5)"

        for idempotent in [false, true] {
            try pg.psql("TRUNCATE hits", db: "vectorflow")
            let statement = Statement(name: "t_hit_\(idempotent)", sql: sql, idempotent: idempotent)
            let outcome = PoolSlot<String>()
            let done = DispatchSemaphore(value: 0)
            XCTAssertTrue(
                pool.submit { db in
                    do {
                        outcome.value = "ok \(try db.execute(statement, []).affected)"
                    } catch {
                        if case .unavailable? = error as? DatabaseError {
                            outcome.value = "unavailable"
                        } else {
                            outcome.value = "\(error)"
                        }
                    }
                    done.signal()
                })
            // Kill the backend while it sleeps, before its INSERT runs.
            let killed = waitUntil(5) {
                (try? self.count(
                    pg,
                    """
                    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                    WHERE application_name = 'vectorflow-api' AND state = 'active' AND query LIKE 'INSERT INTO hits%'
                    """)) == 1
            }
            XCTAssertTrue(killed)
            XCTAssertEqual(done.wait(timeout: .now() + 15), .success)
            XCTAssertEqual(outcome.value, idempotent ? "ok 1" : "unavailable")
            XCTAssertEqual(try count(pg, "SELECT count(*) FROM hits"), idempotent ? 1 : 0)
        }
    }

    /// The retry of a create whose reply was lost runs the same INSERT with the same id: it adds
    /// no row and returns the stored one.
    func testCreateWithTheSameIDAddsNoSecondRow() throws {
        let pg = try TestPostgres()
        defer { pg.close() }
        let pool = DatabasePool(url: pg.url, size: 1)
        defer { pool.shutdown() }
        let id = UUID().uuidString.lowercased()
        var fields = StreamFields()
        fields.name = "Gate"
        fields.source = "rtsp://gate/live"
        fields.gridSize = 16
        fields.threshold = 1.2
        fields.isActive = false
        let f = fields
        let first = onPool(pool) { try? StreamRepository.insert($0, id: id, f) }
        let again = onPool(pool) { try? StreamRepository.insert($0, id: id, f) }
        XCTAssertEqual(first??.id, id)
        XCTAssertEqual(again??.id, id)
        XCTAssertEqual(again??.createdAt, first??.createdAt)
        XCTAssertEqual(try count(pg, "SELECT count(*) FROM camera_streams"), 1)

        // Another stream under the same id (a UUID collision) is refused, not answered as ours.
        var other = f
        other.name = "Other"
        let o = other
        let clash = onPool(pool) { db -> String in
            do {
                return try StreamRepository.insert(db, id: id, o).name
            } catch {
                if case .query(let state, _)? = error as? DatabaseError { return state }
                return "\(error)"
            }
        }
        XCTAssertEqual(clash, "23505")
        XCTAssertEqual(try count(pg, "SELECT count(*) FROM camera_streams"), 1)
        // The column's default still serves other writers (psql, init scripts).
        try pg.psql("INSERT INTO camera_streams (name, rtsp_url) VALUES ('by hand', 'rtsp://h')", db: "vectorflow")
        XCTAssertEqual(try count(pg, "SELECT count(*) FROM camera_streams"), 2)
    }

    /// The connection dies after the server committed but before its reply arrived (a proxy drops
    /// the reply): the create's retry finds its row by id and answers 201 with one row stored; a
    /// statement that is not idempotent is not retried, so its committed row is there once; a
    /// DELETE whose reply is lost answers 503, and asking again says 404.
    func testAReplyLostAfterCommitNeverDoublesARow() throws {
        let pg = try TestPostgres()
        defer { pg.close() }
        let proxy = try TestProxy(upstreamPort: pg.port)
        defer { proxy.stop() }
        let pool = DatabasePool(url: "postgresql://vectorflow:vectorflow@127.0.0.1:\(proxy.port)/vectorflow", size: 1)
        defer { pool.shutdown() }  // first: no connection is left when the proxy stops
        let service = StreamService()
        XCTAssertEqual(onPool(pool) { $0.state() }, .ok)

        proxy.dropReply(containing: "INSERT 0 1")
        let created = onPool(pool) {
            service.create(
                StreamFields(name: "Gate", source: "rtsp://gate/live", gridSize: 16, threshold: 1.2, isActive: false), $0)
        }
        XCTAssertEqual(proxy.dropped, 1, "the reply was lost")
        let id = try XCTUnwrap(created).get().id
        XCTAssertEqual(try count(pg, "SELECT count(*) FROM camera_streams WHERE name = 'Gate'"), 1)
        XCTAssertEqual(try count(pg, "SELECT count(*) FROM camera_streams WHERE id = '\(id)'"), 1)

        let plain = Statement(
            name: "t_plain_insert", sql: "INSERT INTO camera_streams (name, rtsp_url) VALUES ('plain', 'rtsp://p')")
        proxy.dropReply(containing: "INSERT 0 1")
        let outcome = onPool(pool) { db -> String in
            do {
                return "ok \(try db.execute(plain, []).affected)"
            } catch {
                if case .unavailable? = error as? DatabaseError { return "unavailable" }
                return "\(error)"
            }
        }
        XCTAssertEqual(proxy.dropped, 2)
        XCTAssertEqual(outcome, "unavailable")
        XCTAssertEqual(try count(pg, "SELECT count(*) FROM camera_streams WHERE name = 'plain'"), 1, "committed once")

        proxy.dropReply(containing: "DELETE 1")
        let deleted = onPool(pool) { service.delete(id: id, $0) }
        XCTAssertEqual(proxy.dropped, 3)
        XCTAssertEqual(deleted.map(Self.outcome), "databaseUnavailable")
        XCTAssertEqual(try count(pg, "SELECT count(*) FROM camera_streams WHERE id = '\(id)'"), 0)
        XCTAssertEqual(onPool(pool) { Self.outcome(service.delete(id: id, $0)) }, "notFound")
    }
}

import CLibPQ
import Foundation
import Logging
import VFCore

/// A database failure, split by what the caller can do about it.
public enum DatabaseError: Error, Sendable, CustomStringConvertible {
    /// No usable connection (server down, restarting, unreachable): answer 503, retry later.
    case unavailable(String)
    /// The server did not answer in time (frozen, partitioned, overloaded) or the statement ran
    /// past `statement_timeout`: answer 503. Whether a write applied is unknown.
    case timeout(String)
    /// The server rejected the statement; `sqlState` is PostgreSQL's five-character code.
    case query(sqlState: String, message: String)

    public var description: String {
        switch self {
        case .unavailable(let m): return "database unavailable: \(m)"
        case .timeout(let m): return "database timeout: \(m)"
        case .query(let s, let m): return "database error \(s): \(m)"
        }
    }
}

/// The bounds on every database call. A frozen server (SIGSTOP, a partition) never answers, so
/// server-side limits cannot fire there: the client keeps its own deadline on every wait.
public struct DatabaseTimeouts: Sendable {
    /// One `Database.execute` end to end (connect, schema, statement, its one retry), in seconds.
    public var call: Double
    /// PostgreSQL's `statement_timeout`, in seconds: below `call`, so that a slow but live
    /// server cancels the statement itself and answers, rather than the client hanging up on it.
    public var statement: Double
    /// TCP keepalives (seconds): an idle connection through a dead network is found dead.
    public var keepalivesIdle: Int
    public var keepalivesInterval: Int
    public var keepalivesCount: Int
    /// Linux's TCP_USER_TIMEOUT (seconds): unacknowledged data for this long closes the socket.
    public var tcpUserTimeout: Double

    public init(
        call: Double = 2, statement: Double = 1.5, keepalivesIdle: Int = 10, keepalivesInterval: Int = 2,
        keepalivesCount: Int = 3, tcpUserTimeout: Double = 5
    ) {
        self.call = call
        self.statement = statement
        self.keepalivesIdle = keepalivesIdle
        self.keepalivesInterval = keepalivesInterval
        self.keepalivesCount = keepalivesCount
        self.tcpUserTimeout = tcpUserTimeout
    }

    public static let standard = DatabaseTimeouts()
}

/// Rows of a result, every value in PostgreSQL's text format (nil for SQL NULL).
public struct QueryResult: Sendable {
    public let rows: [[String?]]
    /// Rows touched by INSERT/UPDATE/DELETE.
    public let affected: Int
}

/// One libpq connection. This file is the only place that touches libpq.
/// Not Sendable: a `PGconn` is used by one thread at a time, and each instance belongs to
/// exactly one `DatabasePool` thread for its whole life.
///
/// Everything goes through libpq's asynchronous API in non-blocking mode, each wait a `poll` on
/// the socket bounded by the caller's deadline: the blocking calls (`PQconnectdb`, `PQexec`)
/// would wait forever on a server that accepts bytes but never answers. A connection that missed
/// its deadline is closed at once (`PQfinish`): its protocol state is unknown, and a cancel
/// request to a frozen server would itself hang.
final class PostgresConnection {
    private var conn: OpaquePointer?
    private var prepared: Set<String> = []

    /// Opens a connection by `deadline` (a `monotonicNow()` time).
    init(url: String, timeouts: DatabaseTimeouts, deadline: Double) throws(DatabaseError) {
        // Defaults first, the URL after: libpq lets later settings win, so a URL that sets any of
        // these (`?connect_timeout=`, `?options=`) overrides ours.
        let pairs: [(String, String)] = [
            // Unused by the asynchronous connect below (our deadline bounds it), kept as a fallback.
            ("connect_timeout", String(max(2, Int(timeouts.call.rounded(.up))))),
            ("keepalives", "1"),
            ("keepalives_idle", String(timeouts.keepalivesIdle)),
            ("keepalives_interval", String(timeouts.keepalivesInterval)),
            ("keepalives_count", String(timeouts.keepalivesCount)),
            ("tcp_user_timeout", String(Int(timeouts.tcpUserTimeout * 1000))),
            ("options", "-c statement_timeout=\(Int(timeouts.statement * 1000))"),
            ("application_name", "vectorflow-api"),
            ("dbname", url),
        ]
        var ck = pairs.map { strdup($0.0) }
        var cv = pairs.map { strdup($0.1) }
        ck.append(nil)
        cv.append(nil)
        defer { (ck + cv).forEach { free($0) } }
        // Note: a host *name* is resolved inside PQconnectStartParams (getaddrinfo, blocking);
        // the deadline covers everything after that. Use addresses for hosts that may not resolve.
        let started = ck.map { UnsafePointer($0) }.withUnsafeBufferPointer { kp in
            cv.map { UnsafePointer($0) }.withUnsafeBufferPointer { vp in
                PQconnectStartParams(kp.baseAddress, vp.baseAddress, 1)  // 1: expand the URL in dbname
            }
        }
        guard let c = started else { throw .unavailable("out of memory") }
        // The server's NOTICEs ("relation already exists, skipping") go to the log, not raw stderr.
        _ = PQsetNoticeProcessor(
            c,
            { _, message in
                guard let message else { return }
                postgresNoticeLog.debug("\(String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines))")
            }, nil)
        if PQstatus(c) == CONNECTION_BAD {
            let msg = Self.message(c)
            PQfinish(c)
            throw .unavailable(msg)
        }
        // libpq's protocol: act as if PQconnectPoll last said "writing", then poll for what it asks.
        var state = PGRES_POLLING_WRITING
        while state != PGRES_POLLING_OK {
            if state == PGRES_POLLING_FAILED {
                let msg = Self.message(c)
                PQfinish(c)
                throw .unavailable(msg)
            }
            let events = state == PGRES_POLLING_READING ? Int16(POLLIN) : Int16(POLLOUT)
            if Self.wait(PQsocket(c), events, until: deadline, abort: { false }) != .ready {
                PQfinish(c)
                throw .timeout("no connection within \(timeouts.call) s")
            }
            state = PQconnectPoll(c)
        }
        // Non-blocking: sending never waits on a full socket buffer either (PQflush does, bounded).
        if PQsetnonblocking(c, 1) != 0 {
            let msg = Self.message(c)
            PQfinish(c)
            throw .unavailable(msg)
        }
        conn = c
    }

    deinit { close() }

    var isBroken: Bool { conn == nil || PQstatus(conn) != CONNECTION_OK }

    /// Whether an idle connection is fit to send on. An idle connection has nothing to read: a
    /// readable socket means the server closed it (a restart's FATAL message, then EOF) or said
    /// something unexpected. Either way it is replaced *before* a statement is sent, so a failure
    /// after sending really means "the outcome is unknown" (see `Database.execute`).
    var looksAlive: Bool {
        guard let conn, PQstatus(conn) == CONNECTION_OK, PQtransactionStatus(conn) == PQTRANS_IDLE else {
            return false
        }
        var p = pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) == 0
    }

    /// Closes the connection (idempotent). After a missed deadline the server may still hold the
    /// statement; it is left to run out (statement_timeout) or to see the closed socket.
    func close() {
        if let conn { PQfinish(conn) }
        conn = nil
        prepared = []
    }

    private static func message(_ c: OpaquePointer?) -> String {
        guard let c, let m = PQerrorMessage(c) else { return "unknown error" }
        return String(cString: m).trimmingCharacters(in: .whitespacesAndNewlines)
            .split(separator: "\n").first.map(String.init) ?? "unknown error"
    }

    /// Runs a script without parameters (the schema): several statements are allowed here.
    func script(_ sql: String, deadline: Double) throws(DatabaseError) {
        try send { PQsendQuery($0, sql) }
        PQclear(try collect(deadline: deadline, abort: { false }))
    }

    /// Runs one parameterised statement, prepared once per connection under `name`.
    /// Parameters travel as text, separately from the SQL: nothing a client sends is ever SQL.
    /// `abort` is asked every few tens of milliseconds while waiting; true gives up at once
    /// (another thread saw the server stop answering) with `.timeout`.
    func execute(name: String, sql: String, params: [String?], deadline: Double, abort: () -> Bool)
        throws(DatabaseError) -> QueryResult
    {
        if !prepared.contains(name) {
            try send { PQsendPrepare($0, name, sql, Int32(params.count), nil) }
            PQclear(try collect(deadline: deadline, abort: abort))
            prepared.insert(name)
        }
        var cparams: [UnsafeMutablePointer<CChar>?] = params.map { $0.map { strdup($0) } ?? nil }
        defer { cparams.forEach { free($0) } }
        let count = Int32(params.count)
        try send { c in
            cparams.withUnsafeMutableBufferPointer { buf -> Int32 in
                guard let base = buf.baseAddress else {
                    return PQsendQueryPrepared(c, name, 0, nil, nil, nil, 0)
                }
                return base.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) { p in
                    PQsendQueryPrepared(c, name, count, p, nil, nil, 0)
                }
            }
        }
        let res = try collect(deadline: deadline, abort: abort)
        defer { PQclear(res) }
        let n = Int(PQntuples(res))
        let f = Int(PQnfields(res))
        var rows: [[String?]] = []
        rows.reserveCapacity(n)
        for r in 0..<n {
            var row: [String?] = []
            row.reserveCapacity(f)
            for c in 0..<f {
                if PQgetisnull(res, Int32(r), Int32(c)) != 0 {
                    row.append(nil)
                } else {
                    row.append(String(cString: PQgetvalue(res, Int32(r), Int32(c))))
                }
            }
            rows.append(row)
        }
        let affected = PQcmdTuples(res).map { Int(String(cString: $0)) ?? 0 } ?? 0
        return QueryResult(rows: rows, affected: affected)
    }

    // MARK: The asynchronous protocol, every wait bounded

    /// Queues a command (non-blocking mode: it only fills libpq's output buffer).
    private func send(_ queue: (OpaquePointer) -> Int32) throws(DatabaseError) {
        guard let c = conn else { throw .unavailable("connection closed") }
        if queue(c) == 0 { throw brokenError() }
    }

    /// Flushes the queued command and gathers its results by `deadline`; the last result, or the
    /// first error as a thrown `DatabaseError`. The caller clears the returned result.
    private func collect(deadline: Double, abort: () -> Bool) throws(DatabaseError) -> OpaquePointer? {
        guard let c = conn else { throw .unavailable("connection closed") }
        // PQflush's contract: 1 = bytes left; wait for writable (send more) or readable (the
        // server may be waiting for us to read before it reads more).
        while true {
            let left = PQflush(c)
            if left == 0 { break }
            if left < 0 { throw brokenError() }
            try waitOrGiveUp(Int16(POLLIN) | Int16(POLLOUT), deadline, abort)
            if PQconsumeInput(c) == 0 { throw brokenError() }
        }
        var last: OpaquePointer?
        var failed: OpaquePointer?
        // Every result must be read, up to the terminating NULL, before the next command.
        while true {
            while PQisBusy(c) != 0 {
                do {
                    try waitOrGiveUp(Int16(POLLIN), deadline, abort)
                } catch {
                    PQclear(last)
                    PQclear(failed)
                    throw error
                }
                if PQconsumeInput(c) == 0 {
                    PQclear(last)
                    PQclear(failed)
                    throw brokenError()
                }
            }
            guard let res = PQgetResult(c) else { break }
            let st = PQresultStatus(res)
            if st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK {
                PQclear(last)
                last = res
            } else if failed == nil {
                failed = res
            } else {
                PQclear(res)
            }
        }
        if let failed {
            PQclear(last)
            defer { PQclear(failed) }
            throw error(of: failed)
        }
        guard let last else { throw brokenError() }
        return last
    }

    /// Waits for `events` on the socket; on a missed deadline or an abort, closes the connection
    /// and throws `.timeout`.
    private func waitOrGiveUp(_ events: Int16, _ deadline: Double, _ abort: () -> Bool) throws(DatabaseError) {
        switch Self.wait(PQsocket(conn), events, until: deadline, abort: abort) {
        case .ready: return
        case .timedOut:
            close()
            throw .timeout("no answer from the server in time")
        case .aborted:
            close()
            throw .timeout("another call found the server not answering")
        }
    }

    enum WaitResult { case ready, timedOut, aborted }

    /// poll(2) until `fd` is ready, `deadline` passes, or `abort` says stop (asked every 50 ms).
    static func wait(_ fd: Int32, _ events: Int16, until deadline: Double, abort: () -> Bool) -> WaitResult {
        // No socket: let libpq's next call report why.
        if fd < 0 { return .ready }
        while true {
            if abort() { return .aborted }
            let left = deadline - monotonicNow()
            if left <= 0 { return .timedOut }
            let slice = min(left, 0.05)
            var p = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&p, 1, Int32(max(1, (slice * 1000).rounded(.up))))
            // Errors and hang-ups count as ready: libpq's next read reports them properly.
            if rc > 0 || (rc < 0 && errno != EINTR) { return .ready }
        }
    }

    private func brokenError() -> DatabaseError {
        let msg = Self.message(conn)
        close()
        return .unavailable(msg)
    }

    private func error(of res: OpaquePointer) -> DatabaseError {
        if isBroken { return brokenError() }
        var code = "XX000"
        var msg = Self.message(conn)
        if let s = PQresultErrorField(res, Int32(UInt8(ascii: "C"))) { code = String(cString: s) }
        if let m = PQresultErrorField(res, Int32(UInt8(ascii: "M"))) { msg = String(cString: m) }
        // Class 08 (connection exception) and 57P0x (server shutting down) mean "try elsewhere".
        if code.hasPrefix("08") || code.hasPrefix("57P") {
            close()
            return .unavailable(msg)
        }
        // statement_timeout fired: the server is alive and the connection still in sync.
        if code == "57014" { return .timeout(msg) }
        return .query(sqlState: code, message: msg)
    }
}

/// PostgreSQL's NOTICE messages, at debug (they are informational: `CREATE ... IF NOT EXISTS`).
private let postgresNoticeLog = Logger(label: "vectorflow-api.postgres")

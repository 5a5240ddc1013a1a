import Foundation
import VFCore

/// A pool thread's database handle: one connection, reopened on demand after the server went away.
/// Jobs receive it as an argument and must not keep it: it belongs to the pool thread.
public final class Database {
    private let url: String
    private let connectTimeout: Int
    private let schema: SchemaState
    private let gate: ReconnectGate
    private var connection: PostgresConnection?

    fileprivate init(url: String, connectTimeout: Int, schema: SchemaState, gate: ReconnectGate) {
        self.url = url
        self.connectTimeout = connectTimeout
        self.schema = schema
        self.gate = gate
    }

    /// Runs a prepared statement. A connection found dead is replaced and the statement retried
    /// once: after a server restart every idle connection is dead, and PostgreSQL closed them
    /// before they sent anything, so the retry cannot apply a statement twice.
    public func execute(_ statement: Statement, _ params: [String?]) throws(DatabaseError) -> QueryResult {
        var retried = false
        while true {
            do {
                let c = try open()
                return try c.execute(name: statement.name, sql: statement.sql, params: params)
            } catch let e {
                switch e {
                case .unavailable where !retried && connection != nil:
                    connection = nil
                    retried = true
                case .query(sqlState: "42P01", _) where !retried:
                    // The table vanished (a database re-created under us): apply the schema again.
                    schema.markMissing()
                    connection = nil
                    retried = true
                default:
                    if case .unavailable = e { connection = nil }
                    throw e
                }
            }
        }
    }

    /// Whether the server answers right now (opens a connection if needed).
    public func ping() -> Bool {
        (try? execute(Statement(name: "ping", sql: "SELECT 1"), [])) != nil
    }

    private func open() throws(DatabaseError) -> PostgresConnection {
        if let c = connection, !c.isBroken { return c }
        connection = nil
        // While the server is down, fail fast between attempts instead of stalling every request.
        if !gate.mayAttempt() { throw .unavailable("reconnecting") }
        do {
            let c = try PostgresConnection(url: url, connectTimeout: connectTimeout)
            try schema.apply(on: c)
            gate.succeeded()
            connection = c
            return c
        } catch {
            if case .unavailable = error { gate.failed() }
            throw error
        }
    }
}

/// The pool's shared view of "is the server reachable": after a failed connect, no thread tries
/// again before the backoff delay (one probe per window, not one per thread); the first success
/// reopens the gate for every thread at once, so recovery is immediate pool-wide.
private final class ReconnectGate: @unchecked Sendable {  // all state under `lock`
    private let lock = NSLock()
    private var backoff = Backoff(initial: 0.25, maximum: 2)
    private var nextAttempt: Double = 0

    func mayAttempt() -> Bool {
        lock.withLock { ProcessInfo.processInfo.systemUptime >= nextAttempt }
    }

    func failed() {
        lock.withLock { nextAttempt = ProcessInfo.processInfo.systemUptime + backoff.nextDelay() }
    }

    func succeeded() {
        lock.withLock {
            backoff.reset()
            nextAttempt = 0
        }
    }
}

/// A named SQL statement, prepared once per connection.
public struct Statement: Sendable {
    public let name: String
    public let sql: String
    public init(name: String, sql: String) {
        self.name = name
        self.sql = sql
    }
}

/// Whether this process has applied `Schema.sql` since the last time the table went missing.
/// Shared by the pool's threads; the lock guards one flag.
private final class SchemaState: @unchecked Sendable {
    private let lock = NSLock()
    private var applied = false

    func apply(on c: PostgresConnection) throws(DatabaseError) {
        lock.lock()
        let done = applied
        lock.unlock()
        if done { return }
        // The advisory lock makes concurrent appliers (other API processes) take turns, since
        // CREATE TABLE IF NOT EXISTS alone can still race on the catalog.
        try c.script("BEGIN; SELECT pg_advisory_xact_lock(\(Schema.advisoryLockKey)); \(Schema.sql); COMMIT;")
        lock.lock()
        applied = true
        lock.unlock()
    }

    func markMissing() {
        lock.lock()
        applied = false
        lock.unlock()
    }
}

/// A small pool of threads, each owning one `Database` connection: the only place database
/// calls run, so no event-loop thread ever waits on PostgreSQL. Jobs queue in FIFO order; the
/// queue is bounded so that a stalled database turns into fast 503s rather than unbounded memory.
///
/// `@unchecked Sendable`: all mutable state (the job queue, the stop flag) is guarded by `cond`;
/// each `Database` is touched only by the thread that created it.
public final class DatabasePool: @unchecked Sendable {
    public typealias Job = @Sendable (Database) -> Void
    private let cond = NSCondition()
    private var jobs: [Job] = []
    private var head = 0
    private var stopping = false
    private var running = 0
    public let maxQueued: Int

    public init(url: String, size: Int = 4, connectTimeout: Int = 2, maxQueued: Int = 4096) {
        self.maxQueued = maxQueued
        let schema = SchemaState()
        let gate = ReconnectGate()
        for k in 0..<max(1, size) {
            let t = Thread { [self] in
                let db = Database(url: url, connectTimeout: connectTimeout, schema: schema, gate: gate)
                self.loop(db)
            }
            t.name = "db-\(k)"
            running += 1
            t.start()
        }
    }

    /// Queues a job; false when the queue is full or the pool is stopping (answer 503).
    @discardableResult
    public func submit(_ job: @escaping Job) -> Bool {
        cond.lock()
        defer { cond.unlock() }
        if stopping || jobs.count - head >= maxQueued { return false }
        jobs.append(job)
        cond.signal()
        return true
    }

    /// Finishes queued jobs, then stops the threads and closes the connections.
    public func shutdown() {
        cond.lock()
        stopping = true
        cond.broadcast()
        while running > 0 { cond.wait() }
        cond.unlock()
    }

    private func loop(_ db: Database) {
        while true {
            cond.lock()
            while head == jobs.count && !stopping { cond.wait() }
            if head == jobs.count {
                running -= 1
                cond.broadcast()
                cond.unlock()
                return
            }
            let job = jobs[head]
            head += 1
            // Compact now and then instead of paying removeFirst's O(n) per job.
            if head > 1024 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            cond.unlock()
            job(db)
        }
    }
}

import Foundation
import VFCore
import VFSync

/// What `/health` reports about the database.
public enum DatabaseState: String, Sendable {
    /// Answered a statement just now.
    case ok
    /// Refused or closed the connection (stopped, restarting, unreachable at once).
    case down
    /// Did not answer within the call's bound (frozen, partitioned, overloaded).
    case timeout
}

/// A pool thread's database handle: one connection, reopened on demand after the server went away.
/// Jobs receive it as an argument and must not keep it: it belongs to the pool thread.
public final class Database {
    private let url: String
    private let timeouts: DatabaseTimeouts
    private let schema: SchemaState
    private let gate: ReconnectGate
    private var connection: PostgresConnection?
    /// The gate's epoch when `connection` was opened: a timeout anywhere in the pool starts a new
    /// epoch, and connections from an older one are suspect (the same server stopped answering).
    private var connectionEpoch = 0

    fileprivate init(url: String, timeouts: DatabaseTimeouts, schema: SchemaState, gate: ReconnectGate) {
        self.url = url
        self.timeouts = timeouts
        self.schema = schema
        self.gate = gate
    }

    /// Runs a prepared statement within `timeouts.call` seconds, whatever the server does.
    ///
    /// Retries: an idle connection is checked before anything is sent (`looksAlive`), so the
    /// usual dead connection (after a server restart) is replaced without a retry. A connection
    /// that dies *after* the statement was sent leaves its outcome unknown: it may have committed
    /// and lost only the reply. Such a statement is retried once only when it is `idempotent`
    /// (applying it twice equals applying it once); any other answers `.unavailable`. A timeout is
    /// never retried: the server is not answering, and the call's time is spent.
    public func execute(_ statement: Statement, _ params: [String?]) throws(DatabaseError) -> QueryResult {
        let deadline = monotonicNow() + timeouts.call
        var retried = false
        while true {
            let (c, epoch) = try open(deadline)
            do {
                let gate = self.gate
                return try c.execute(
                    name: statement.name, sql: statement.sql, params: params, deadline: deadline,
                    abort: { gate.epoch != epoch })
            } catch let e {
                if c.isBroken { connection = nil }
                switch e {
                case .timeout:
                    // Client-side (the connection was closed): the server stopped answering; tell the
                    // other threads. Server-side (statement_timeout): it answers; nothing to tell.
                    if c.isBroken { gate.failed(.timeout, epoch: epoch, probe: false) }
                    throw e
                case .unavailable where !retried && statement.idempotent:
                    retried = true
                case .query(sqlState: "42P01", _) where !retried:
                    // The table vanished (a database re-created under us): apply the schema again.
                    // The server refused the statement, so it did not apply: safe to run again.
                    schema.markMissing()
                    connection = nil
                    retried = true
                default:
                    throw e
                }
            }
        }
    }

    /// Whether the server answers right now (opens a connection if needed).
    public func ping() -> Bool { state() == .ok }

    /// The database's state for `/health`: one `SELECT 1`, bounded like every call.
    public func state() -> DatabaseState {
        do {
            _ = try execute(Self.pingStatement, [])
            return .ok
        } catch {
            if case .timeout = error { return .timeout }
            return .down
        }
    }

    private static let pingStatement = Statement(name: "ping", sql: "SELECT 1", idempotent: true)

    private func open(_ deadline: Double) throws(DatabaseError) -> (PostgresConnection, Int) {
        if let c = connection {
            if connectionEpoch == gate.epoch && c.looksAlive { return (c, connectionEpoch) }
            c.close()
            connection = nil
        }
        // While the server is down or frozen, fail fast between probes instead of stalling every request.
        let ticket = try gate.admit()
        do {
            let c = try PostgresConnection(url: url, timeouts: timeouts, deadline: deadline)
            try schema.apply(on: c, deadline: deadline)
            gate.succeeded(probe: ticket.probe)
            connection = c
            connectionEpoch = ticket.epoch
            return (c, ticket.epoch)
        } catch {
            switch error {
            case .unavailable: gate.failed(.down, epoch: ticket.epoch, probe: ticket.probe)
            case .timeout: gate.failed(.timeout, epoch: ticket.epoch, probe: ticket.probe)
            case .query: gate.release(probe: ticket.probe)
            }
            throw error
        }
    }
}

/// The pool's shared view of "is the server reachable". After a failure, no thread connects again
/// before the backoff delay, and then only one at a time (a probe): the others fail fast with the
/// same kind of error, so a frozen server costs one bounded wait, not one per queued request. The
/// first success reopens the gate for every thread at once, so recovery is immediate pool-wide.
///
/// A timeout also starts a new epoch: calls in flight on connections of the old epoch give up at
/// once (they are waiting on the same silent server), and idle ones are reopened before use.
private final class ReconnectGate: @unchecked Sendable {  // all state under `lock`
    private let lock = Lock()
    private var backoff = Backoff(initial: 0.25, maximum: 2)
    private var nextAttempt: Double = 0
    private var failure: DatabaseState?
    private var probing = false
    private var currentEpoch = 0

    struct Ticket {
        let epoch: Int
        /// This connect is the one probe allowed while the gate is closed.
        let probe: Bool
    }

    var epoch: Int { lock.withLock { currentEpoch } }

    /// May this thread connect now? Throws the last failure's kind when it must fail fast.
    func admit() throws(DatabaseError) -> Ticket {
        lock.lock()
        defer { lock.unlock() }
        guard let failure else { return Ticket(epoch: currentEpoch, probe: false) }
        if probing || monotonicNow() < nextAttempt {
            if failure == .timeout { throw .timeout("the database is not answering; waiting for the next probe") }
            throw .unavailable("reconnecting")
        }
        probing = true
        return Ticket(epoch: currentEpoch, probe: true)
    }

    func failed(_ kind: DatabaseState, epoch: Int, probe: Bool) {
        lock.withLock {
            if probe { probing = false }
            // Only the first timeout of an epoch starts a new one and a backoff step: the calls it
            // aborts report timeouts too, and must not stretch the backoff.
            if kind == .timeout {
                if epoch != currentEpoch { return }
                currentEpoch += 1
            }
            failure = kind
            nextAttempt = monotonicNow() + backoff.nextDelay()
        }
    }

    func succeeded(probe: Bool) {
        lock.withLock {
            if probe { probing = false }
            failure = nil
            backoff.reset()
            nextAttempt = 0
        }
    }

    /// A connect that reached the server but failed on a statement: no news about reachability.
    func release(probe: Bool) {
        lock.withLock { if probe { probing = false } }
    }
}

/// A named SQL statement, prepared once per connection.
public struct Statement: Sendable {
    public let name: String
    public let sql: String
    /// Applying it twice is the same as applying it once (a SELECT, an UPDATE to given values, an
    /// INSERT of a given id with ON CONFLICT DO NOTHING): only such a statement is retried after
    /// its connection died with the outcome unknown. The default is the safe answer, no.
    public let idempotent: Bool
    public init(name: String, sql: String, idempotent: Bool = false) {
        self.name = name
        self.sql = sql
        self.idempotent = idempotent
    }
}

/// Whether this process has applied `Schema.sql` since the last time the table went missing.
/// Shared by the pool's threads; the lock guards one flag.
private final class SchemaState: @unchecked Sendable {
    private let lock = Lock()
    private var applied = false

    func apply(on c: PostgresConnection, deadline: Double) throws(DatabaseError) {
        lock.lock()
        let done = applied
        lock.unlock()
        if done { return }
        // The advisory lock makes concurrent appliers (other API processes) take turns, since
        // CREATE TABLE IF NOT EXISTS alone can still race on the catalog.
        try c.script(
            "BEGIN; SELECT pg_advisory_xact_lock(\(Schema.advisoryLockKey)); \(Schema.sql); COMMIT;", deadline: deadline
        )
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
    /// The bounds every call of this pool keeps (`timeouts.call` bounds one `execute`).
    public let timeouts: DatabaseTimeouts

    public init(url: String, size: Int = 4, timeouts: DatabaseTimeouts = .standard, maxQueued: Int = 4096) {
        self.maxQueued = maxQueued
        self.timeouts = timeouts
        let schema = SchemaState()
        let gate = ReconnectGate()
        for k in 0..<max(1, size) {
            let t = Thread { [self] in
                let db = Database(url: url, timeouts: timeouts, schema: schema, gate: gate)
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

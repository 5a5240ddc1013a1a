import Foundation
import VFCore
import VFSync

/// Leadership among API replicas that share one PostgreSQL: the holder of a session-level
/// advisory lock (`pg_try_advisory_lock`) on a connection of its own is the leader. PostgreSQL
/// frees the lock when that session ends, so a leader that dies (even `kill -9`: the kernel
/// closes its socket) hands over at the next try of a standby. Leadership is held only while it
/// is confirmed: every `interval` seconds the connection is checked with the pool's deadline, and
/// a check that fails (or one that has not succeeded for `interval` plus that deadline) means
/// "not leader" at once, before any reconnect: a replica that lost its connection must assume
/// another one now holds the lock.
public final class LeaderLock: @unchecked Sendable {
    // @unchecked: `leader`, `confirmedAt`, `running` are guarded by `lock`; `connection` is used
    // only by the lock's own thread.
    /// The advisory lock key: one per database, shared by every replica of this platform.
    public static let defaultKey: Int64 = 0x7666_5f72_6563  // "vf_rec"

    public let url: String
    public let key: Int64
    public let interval: Double
    public let timeouts: DatabaseTimeouts
    private let log: @Sendable (String) -> Void
    private let lock = Lock()
    private let wake = NSCondition()
    private var leader = false
    private var confirmedAt = -Double.infinity
    private var running = false
    private var connection: PostgresConnection?
    private var onChange: (@Sendable (Bool) -> Void)?

    public init(
        url: String, key: Int64 = LeaderLock.defaultKey, interval: Double = 2, timeouts: DatabaseTimeouts = .standard,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.url = url
        self.key = key
        self.interval = interval
        self.timeouts = timeouts
        self.log = log
    }

    /// Whether this instance leads now: it holds the lock and confirmed it recently enough.
    public var isLeader: Bool {
        lock.lock()
        defer { lock.unlock() }
        return leader && monotonicNow() - confirmedAt < interval + timeouts.call + 0.5
    }

    /// Makes a first try on the calling thread (bounded by the call timeout), then starts the
    /// lock's thread, which tries again every `interval` seconds. So a replica that starts alone
    /// leads before it answers its first request: its first activation is acted on, not skipped
    /// as a standby's. `onChange` hears every change of role (the first one on the caller).
    public func start(onChange: (@Sendable (Bool) -> Void)? = nil) {
        lock.lock()
        guard !running else {
            lock.unlock()
            return
        }
        running = true
        self.onChange = onChange
        lock.unlock()
        // The connection is the loop's from here on: the thread starts after this call returns.
        checkOnce()
        let t = Thread { [self] in loop() }
        t.name = "vf-leader-lock"
        t.start()
    }

    /// Stops trying; the thread closes its connection, which frees the lock for another replica.
    public func stop() {
        lock.lock()
        running = false
        lock.unlock()
        wake.lock()
        wake.broadcast()
        wake.unlock()
    }

    /// One check on the calling thread (the loop's body; tests call it directly).
    @discardableResult
    func checkOnce() -> Bool {
        let deadline = monotonicNow() + timeouts.call
        do {
            if connection == nil || connection?.isBroken == true {
                connection?.close()
                connection = try PostgresConnection(url: url, timeouts: timeouts, deadline: deadline)
            }
            guard let c = connection else { return false }
            let wasLeader = isLeaderFlag
            let held: Bool
            if wasLeader {
                // Same session, so the lock is still ours as long as the session answers.
                _ = try c.execute(name: "vf_leader_ping", sql: "SELECT 1", params: [], deadline: deadline) { false }
                held = true
            } else {
                let r = try c.execute(
                    name: "vf_leader_try", sql: "SELECT pg_try_advisory_lock($1::bigint)", params: [String(key)],
                    deadline: deadline
                ) { false }
                held = r.rows.first?.first.flatMap { $0 } == "t"
            }
            set(leader: held, confirmed: held)
            return held
        } catch {
            // Lost connection = lost leadership: the server frees the lock when it sees the session go.
            connection?.close()
            connection = nil
            if isLeaderFlag { log("leader lock lost: \(error)") }
            set(leader: false, confirmed: false)
            return false
        }
    }

    private var isLeaderFlag: Bool {
        lock.lock()
        defer { lock.unlock() }
        return leader
    }

    private func set(leader now: Bool, confirmed: Bool) {
        lock.lock()
        let before = leader
        leader = now
        if confirmed { confirmedAt = monotonicNow() }
        let callback = onChange
        lock.unlock()
        if before != now {
            log(now ? "leader: this instance reconciles" : "standby: another instance reconciles")
            callback?(now)
        }
    }

    private var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return running
    }

    private func loop() {
        while isRunning {
            wake.lock()
            if isRunning { _ = wake.wait(until: Date(timeIntervalSinceNow: interval)) }
            wake.unlock()
            if isRunning { checkOnce() }
        }
        connection?.close()
        connection = nil
        set(leader: false, confirmed: false)
    }
}

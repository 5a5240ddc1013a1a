import Glibc
import VFCore
import VFSync

/// Reconnecting Redis client, thread-safe (one hiredis context behind a lock): connects lazily;
/// on an I/O error drops the context and retries later (with `Backoff`), never blocking a call
/// longer than its timeout (default 1 s) per attempt.
public final class RedisClient: Sendable {
    public let url: RedisURL
    private let timeout: Double

    private struct State: ~Copyable {
        var connection: RedisConnection?
        var backoff = Backoff(initial: 0.2, maximum: 5)
        /// Monotonic time before which no new connection is tried: calls fail fast while Redis is down.
        var retryAt = 0.0
        var lastError = ""
    }

    private let state: Locked<State>

    public init(url: String, timeout: Double = 1) throws(RedisError) {
        self.url = try RedisURL(url)
        self.timeout = timeout
        state = Locked(State())
    }

    public func command(_ args: [String]) throws(RedisError) -> RedisReply {
        try command(bytes: args.map { Array($0.utf8) })
    }

    public func command(bytes args: [[UInt8]]) throws(RedisError) -> RedisReply {
        let result: Result<RedisReply, RedisError> = state.withLock { s in
            // A connection that died while idle (e.g. Redis restarted) fails on first use with EOF or
            // a reset: the command never reached a live server, so one retry on a fresh one is safe.
            for attempt in 0..<2 {
                let conn: RedisConnection
                if let c = s.connection {
                    conn = c
                } else {
                    let now = monotonicNow()
                    if now < s.retryAt {
                        return .failure(RedisError("Redis unavailable (\(s.lastError))"))
                    }
                    do throws(RedisError) {
                        conn = try RedisConnection(url: url, timeout: timeout)
                        s.connection = conn
                        s.backoff.reset()
                    } catch {
                        s.lastError = error.description
                        s.retryAt = now + s.backoff.nextDelay()
                        return .failure(error)
                    }
                }
                do throws(RedisError) {
                    return .success(try conn.command(args))
                } catch {
                    let retry = attempt == 0 && conn.lostPeer
                    s.connection = nil
                    s.lastError = error.description
                    if !retry {
                        s.retryAt = monotonicNow() + s.backoff.nextDelay()
                        return .failure(error)
                    }
                }
            }
            return .failure(RedisError("unreachable"))
        }
        return try result.get()
    }

    /// PUBLISH; false when Redis is down or answered with an error. Never throws.
    @discardableResult
    public func publish(channel: String, payload: [UInt8]) -> Bool {
        guard let reply = try? command(bytes: [Array("PUBLISH".utf8), Array(channel.utf8), payload]) else {
            return false
        }
        if case .integer = reply { return true }
        return false
    }

    public func ping() -> Bool {
        (try? command(["PING"])) == .status("PONG")
    }
}


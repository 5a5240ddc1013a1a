import CHiredis
import Dispatch
import Foundation
import Synchronization
import VFCore

/// A dedicated thread running PSUBSCRIBE on its own connection, reconnecting with `Backoff`;
/// calls `onMessage(channel, payload)` on that thread, in order.
public final class RedisSubscriber: Sendable {
    private let url: String
    private let patterns: [String]
    private let onMessage: @Sendable (String, [UInt8]) -> Void
    private let stopped = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    /// The number of (re)subscriptions so far: lets tests and callers see a reconnect happen.
    private let subscriptions = Atomic<Int>(0)

    public init(url: String, patterns: [String], onMessage: @escaping @Sendable (String, [UInt8]) -> Void) {
        self.url = url
        self.patterns = patterns
        self.onMessage = onMessage
    }

    /// How many times the subscription has been established (1 after the first connect).
    public var subscriptionCount: Int { subscriptions.load(ordering: .relaxed) }

    public func start() {
        guard !started.exchange(true, ordering: .acquiring) else { return }
        let thread = Thread { [self] in
            self.runLoop()
            self.finished.signal()
        }
        thread.name = "redis-subscriber"
        thread.start()
    }

    /// Stops the thread and waits for it (at most ~1 s: it checks the flag every 200 ms).
    public func stop() {
        guard started.load(ordering: .acquiring), !stopped.exchange(true, ordering: .acquiring) else { return }
        _ = finished.wait(timeout: .now() + 2)
    }

    private var isStopped: Bool { stopped.load(ordering: .relaxed) }

    private func runLoop() {
        var backoff = Backoff(initial: 0.2, maximum: 5)
        guard let parsed = try? RedisURL(url) else { return }
        while !isStopped {
            do throws(RedisError) {
                let conn = try RedisConnection(url: parsed, timeout: 1)
                let reply = try conn.command([Array("PSUBSCRIBE".utf8)] + patterns.map { Array($0.utf8) })
                if case .error(let e) = reply { throw RedisError(e) }
                subscriptions.add(1, ordering: .relaxed)
                backoff.reset()
                try pump(conn)
            } catch {
                // Connection lost or refused: wait, then subscribe again.
            }
            let deadline = monotonicNow() + backoff.nextDelay()
            while !isStopped && monotonicNow() < deadline { usleep(50_000) }
        }
    }

    /// Reads messages until the connection fails or `stop()` is called.
    private func pump(_ conn: RedisConnection) throws(RedisError) {
        let ctx = conn.context
        while !isStopped {
            // Drain what hiredis already buffered before waiting on the socket again.
            while true {
                var raw: UnsafeMutableRawPointer?
                if redisGetReplyFromReader(ctx, &raw) != REDIS_OK { throw RedisError("protocol error") }
                guard let raw else { break }
                let reply = RedisConnection.convert(raw.assumingMemoryBound(to: redisReply.self))
                freeReplyObject(raw)
                deliver(reply)
            }
            var pfd = pollfd(fd: ctx.pointee.fd, events: Int16(POLLIN), revents: 0)
            let n = poll(&pfd, 1, 200)
            if n < 0 && errno != EINTR { throw RedisError("poll failed") }
            if n > 0 && redisBufferRead(ctx) != REDIS_OK {
                throw RedisError("Redis connection lost: \(RedisConnection.errorText(ctx))")
            }
        }
    }

    private func deliver(_ reply: RedisReply) {
        guard case .array(let items) = reply, items.count >= 3, let kind = items[0].text else { return }
        if kind == "pmessage", items.count == 4, let channel = items[2].text, case .string(let payload) = items[3] {
            onMessage(channel, payload)
        } else if kind == "message", let channel = items[1].text, case .string(let payload) = items[2] {
            onMessage(channel, payload)
        }
    }
}

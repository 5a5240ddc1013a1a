import Foundation
import Logging
import Synchronization
import VFBus
import VFCore
import VFSync

/// Appends motion-event entries to `RedisKeys.events` from its own thread, so a slow or absent
/// Redis never holds up the analysis loop. Unlike frames, entries are not latest-wins: they wait
/// in a bounded queue, in order, and are retried with backoff until Redis takes them; when the
/// queue is full a new entry is dropped and counted (`vector_flow_event_entries_dropped_total`).
/// Each entry appended is logged (`motion event <phase>`, with `event_id`, `zone` and `seq`).
final class EventPublisher: Sendable {
    private let client: RedisClient
    private let maxLen: String
    private let capacity: Int
    private let metrics: WorkerMetrics
    private let log: Logger
    private let queue = Locked<[MotionEvent]>([])
    private let signal = DispatchSemaphore(value: 0)
    /// Set by `stop`: the monotonic time by which the queue must be flushed.
    private let deadline = Locked<Double?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(client: RedisClient, maxLen: Int, capacity: Int, metrics: WorkerMetrics, log: Logger) {
        self.client = client
        self.maxLen = String(maxLen)
        self.capacity = capacity
        self.metrics = metrics
        self.log = log
    }

    func start() {
        let t = Thread { [self] in
            self.run()
            self.done.signal()
        }
        t.name = "events"
        t.start()
    }

    /// Queues an entry; false (and counted) when the queue is full.
    @discardableResult
    func offer(_ event: MotionEvent) -> Bool {
        let queued = queue.withLock { q -> Bool in
            guard q.count < capacity else { return false }
            q.append(event)
            return true
        }
        if queued {
            signal.signal()
        } else {
            metrics.eventEntriesDropped.increment()
            log.warning(
                "motion event entry dropped: \(capacity) entries are waiting for Redis",
                metadata: ["event_id": "\(event.id)", "zone": "\(event.zoneName)", "seq": "\(event.seq)"])
        }
        return queued
    }

    var pending: Int { queue.withLock { $0.count } }

    private func run() {
        var backoff = Backoff(initial: 0.1, maximum: 5)
        while true {
            let stopBy = deadline.withLock { $0 }
            guard let next = queue.withLock({ $0.first }) else {
                if stopBy != nil { return }
                signal.wait()
                continue
            }
            if let stopBy, monotonicNow() >= stopBy { return }
            let args: [[UInt8]] =
                [
                    Array("XADD".utf8), Array(RedisKeys.events.utf8), Array("MAXLEN".utf8), Array("~".utf8),
                    Array(maxLen.utf8), Array("*".utf8),
                ] + next.streamFields
            let appended: Bool
            if case .string? = try? client.command(bytes: args) { appended = true } else { appended = false }
            if appended {
                queue.withLock { q in if !q.isEmpty { q.removeFirst() } }
                backoff.reset()
                metrics.eventEntries.increment()
                log.info(
                    "motion event \(next.phase.rawValue)",
                    metadata: [
                        "event_id": "\(next.id)", "zone": "\(next.zoneName)", "zone_id": "\(next.zoneID)",
                        "seq": "\(next.seq)",
                    ])
                continue
            }
            // Redis is down or refused the entry: try again later, in order; a stop cuts the wait.
            var delay = backoff.nextDelay()
            if let stopBy { delay = min(delay, max(0, stopBy - monotonicNow())) }
            _ = signal.wait(timeout: .now() + delay)
        }
    }

    /// Flushes what is queued (within `flushWithin` seconds) and stops the thread.
    func stop(flushWithin: Double) {
        deadline.withLock { $0 = monotonicNow() + flushWithin }
        signal.signal()
        _ = done.wait(timeout: .now() + flushWithin + 0.2)
    }
}

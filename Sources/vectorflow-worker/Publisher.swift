import Foundation
import Synchronization
import VFBus
import VFSync

/// Sends live-frame messages to Redis from its own thread, so a slow or absent Redis never holds
/// up the analysis loop. Latest wins: a message not yet sent is replaced by a newer one (a live
/// preview has no use for stale frames).
final class FramePublisher: Sendable {
    private let client: RedisClient
    private let channel: String
    private let slot = Locked<[UInt8]?>(nil)
    private let signal = DispatchSemaphore(value: 0)
    private let stopped = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    /// Messages replaced before they could be sent, or refused because Redis was down.
    let dropped = Atomic<Int>(0)
    let published = Atomic<Int>(0)

    private let metrics: WorkerMetrics

    init(client: RedisClient, channel: String, metrics: WorkerMetrics) {
        self.client = client
        self.metrics = metrics
        self.channel = channel
    }

    func start() {
        let t = Thread { [self] in
            while true {
                self.signal.wait()
                if self.stopped.load(ordering: .acquiring) { break }
                guard
                    let message = self.slot.withLock({ s -> [UInt8]? in
                        let m = s
                        s = nil
                        return m
                    })
                else { continue }
                if self.client.publish(channel: self.channel, payload: message) {
                    self.published.add(1, ordering: .relaxed)
                    self.metrics.previewsPublished.increment()
                } else {
                    self.dropped.add(1, ordering: .relaxed)
                }
            }
            self.done.signal()
        }
        t.name = "publisher"
        t.start()
    }

    func offer(_ message: [UInt8]) {
        let replaced = slot.withLock { s -> Bool in
            let had = s != nil
            s = message
            return had
        }
        if replaced { dropped.add(1, ordering: .relaxed) } else { signal.signal() }
    }

    func stop() {
        stopped.store(true, ordering: .releasing)
        signal.signal()
        _ = done.wait(timeout: .now() + 0.3)
    }
}

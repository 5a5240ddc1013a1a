import Foundation
import Logging
import VFStore
import VFSync

/// Removes motion events (with their snapshots and webhook deliveries) whose last motion is older
/// than VF_EVENT_RETENTION_HOURS, every VF_EVENT_SWEEP_INTERVAL seconds, in bounded batches. Only
/// the leader replica sweeps (`isLeader`); the statement is safe on several at once anyway.
public final class EventRetention: Sendable {
    private let settings: EventSettings
    private let pool: DatabasePool
    private let metrics: EventMetrics
    private let isLeader: @Sendable () -> Bool
    private let running = Locked(false)
    private let log = Logger(label: "vectorflow-api.events")
    /// Events deleted per statement.
    static let batch = 1000

    public init(
        settings: EventSettings, pool: DatabasePool, metrics: EventMetrics, isLeader: @escaping @Sendable () -> Bool
    ) {
        self.settings = settings
        self.pool = pool
        self.metrics = metrics
        self.isLeader = isLeader
    }

    public func start() {
        guard
            running.withLock({ r -> Bool in
                if r { return false }
                r = true
                return true
            })
        else { return }
        let t = Thread { [self] in
            while running.withLock({ $0 }) {
                if isLeader() { sweep() }
                Thread.sleep(forTimeInterval: settings.sweepInterval)
            }
        }
        t.name = "vf-event-retention"
        t.start()
    }

    public func stop() { running.withLock { $0 = false } }

    /// One sweep: batches until one comes back short; the total removed.
    @discardableResult
    public func sweep() -> Int {
        var total = 0
        while true {
            let retention = settings.retention
            guard
                let n = pool.perform({ db in try? EventRepository.sweep(db, olderThan: retention, batch: Self.batch) })
                    ?? nil
            else { break }
            total += n
            if n < Self.batch { break }
        }
        if total > 0 {
            metrics.swept.increment(by: Int64(total))
            log.info("retention: removed \(total) motion events older than \(settings.retention / 3600) h")
        }
        return total
    }
}

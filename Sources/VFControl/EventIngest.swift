import Foundation
import Logging
import VFBus
import VFCore
import VFStore
import VFSync

/// An entry applied to the database, for the WebSocket clients (told after the commit).
public struct AppliedEvent: Sendable, Equatable {
    public var phase: MotionEvent.Phase
    public var event: StoredEvent
}

/// The API's consumer of `vectorflow:events` (group `vectorflow-api`): on a thread and a Redis
/// connection of its own, never an event loop. Each entry is applied in one transaction (an
/// upsert keyed by the event id, guarded by seq); only after the commit is it acknowledged and
/// deleted (XACK + XDEL), and then the WebSocket hub and the webhook sender are told. So a crash
/// anywhere leaves the entry pending, read again at the next start (this consumer's own pending
/// entries first), and applying it again changes nothing: every entry counts exactly once.
///
/// Database down: nothing is acknowledged, the batch is read again after a backoff. Redis down:
/// reconnect with backoff. An undecodable entry can never apply: logged, acknowledged, deleted.
public final class EventIngest: Sendable {
    private let settings: EventSettings
    private let redisURL: String
    private let pool: DatabasePool
    private let metrics: EventMetrics
    private let onApplied: @Sendable ([AppliedEvent]) -> Void
    private let onDeliveriesQueued: @Sendable () -> Void
    private let running = Locked(false)
    /// Set while the database fails, so an outage is logged once, and its end once.
    private let databaseDown = Locked(false)
    private let log = Logger(label: "vectorflow-api.events")

    public init(
        settings: EventSettings, redisURL: String, pool: DatabasePool, metrics: EventMetrics,
        onApplied: @escaping @Sendable ([AppliedEvent]) -> Void,
        onDeliveriesQueued: @escaping @Sendable () -> Void = {}
    ) {
        self.settings = settings
        self.redisURL = redisURL
        self.pool = pool
        self.metrics = metrics
        self.onApplied = onApplied
        self.onDeliveriesQueued = onDeliveriesQueued
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
            // The reader (a hiredis connection) is made on, and belongs to, this thread.
            do throws(RedisError) {
                run(
                    try RedisStreamReader(
                        url: redisURL, stream: RedisKeys.events, group: RedisKeys.eventsGroup,
                        consumer: settings.consumer))
            } catch {
                log.error("motion events not consumed: \(error)")
            }
        }
        t.name = "vf-event-ingest"
        t.start()
    }

    /// Stops after the current read (at most the BLOCK time, 1 s).
    public func stop() { running.withLock { $0 = false } }

    /// Milliseconds one XREADGROUP waits for new entries (under the connection's 5 s timeout).
    static let blockMs = 1000

    private func run(_ reader: RedisStreamReader) {
        var redisBackoff = Backoff(initial: 0.2, maximum: 5)
        var dbBackoff = Backoff(initial: 0.2, maximum: 5)
        var needGroup = true
        // After a start (or any failure), this consumer's own pending entries come first.
        var ownPending = true
        var lastClaim = 0.0
        var redisDown = false
        while running.withLock({ $0 }) {
            do throws(RedisError) {
                if needGroup {
                    try reader.createGroup()
                    needGroup = false
                }
                if redisDown {
                    log.notice("motion events: Redis reachable again")
                    redisDown = false
                }
                let entries: [StreamEntry]
                let now = monotonicNow()
                if ownPending {
                    entries = try reader.read(from: "0", count: settings.batch, blockMs: nil)
                    if entries.isEmpty {
                        ownPending = false
                        continue
                    }
                } else if now - lastClaim >= min(settings.claimIdle / 2, 30) {
                    lastClaim = now
                    (entries, _) = try reader.claim(
                        minIdleMs: Int(settings.claimIdle * 1000), start: "0-0", count: settings.batch)
                    if !entries.isEmpty {
                        log.notice("motion events: claimed \(entries.count) entries of a stopped consumer")
                    }
                } else {
                    entries = try reader.read(from: ">", count: settings.batch, blockMs: Self.blockMs)
                }
                redisBackoff.reset()
                if entries.isEmpty { continue }
                let complete = try process(entries, reader)
                if complete {
                    dbBackoff.reset()
                } else {
                    // The database failed: what is left stays pending and is read again.
                    ownPending = true
                    Thread.sleep(forTimeInterval: dbBackoff.nextDelay())
                }
            } catch {
                metrics.redisErrors.increment()
                if !redisDown { log.warning("motion events: Redis failed (\(error)); reconnecting") }
                redisDown = true
                reader.disconnect()
                needGroup = true
                ownPending = true
                Thread.sleep(forTimeInterval: redisBackoff.nextDelay())
            }
        }
    }

    /// What applying a batch did: the entries to acknowledge (applied), the events
    /// to tell, and whether every entry was handled (false: the database failed at some entry).
    private struct BatchResult: Sendable {
        var ack: [String] = []
        var applied: [AppliedEvent] = []
        var queued = false
        /// Entries applied (acknowledged and decodable).
        var appliedCount = 0
        var complete = true
        var error: String?
    }

    /// Applies the entries in order, each in one transaction, on a pool thread; then, after the
    /// commits, acknowledges them and tells the listeners.
    private func process(_ entries: [StreamEntry], _ reader: RedisStreamReader) throws(RedisError) -> Bool {
        var work: [(String, MotionEvent)] = []
        work.reserveCapacity(entries.count)
        // Undecodable entries can never apply: acknowledged (and deleted) whatever the database does.
        var dropped: [String] = []
        for entry in entries {
            switch MotionEvent.decode(fields: entry.fields) {
            case .success(let e): work.append((entry.id, e))
            case .failure(let why):
                metrics.decodeErrors.increment()
                log.error("motion events: dropping entry \(entry.id): \(why)")
                dropped.append(entry.id)
            }
        }
        let urls = settings.webhookURLs
        let batch = work
        let result =
            pool.perform { db -> BatchResult in
                var r = BatchResult()
                for (id, event) in batch {
                    do throws(DatabaseError) {
                        let applied = try EventRepository.apply(db, event, webhookURLs: urls)
                        r.ack.append(id)
                        r.appliedCount += 1
                        if applied.queuedDeliveries > 0 { r.queued = true }
                        if applied.changed {
                            r.applied.append(
                                AppliedEvent(
                                    phase: event.phase, event: StoredEvent(event, hasSnapshot: applied.hasSnapshot)))
                        }
                    } catch {
                        r.complete = false
                        r.error = error.description
                        break
                    }
                }
                return r
            } ?? BatchResult(complete: false, error: "the database pool is stopping")
        if let e = result.error {
            metrics.databaseErrors.increment()
            if !databaseDown.withLock({ d in
                defer { d = true }
                return d
            }) {
                log.warning("motion events: database failed (\(e)); entries stay pending, retried with backoff")
            }
        } else if databaseDown.withLock({ d in
            defer { d = false }
            return d
        }) {
            log.notice("motion events: database reachable again")
        }
        try reader.acknowledge(dropped + result.ack)
        metrics.ingested.increment(by: Int64(result.appliedCount))
        if !result.applied.isEmpty { onApplied(result.applied) }
        if result.queued { onDeliveriesQueued() }
        return result.complete
    }
}

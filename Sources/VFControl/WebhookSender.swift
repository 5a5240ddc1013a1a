import Crypto
import Foundation
import Logging
import VFCore
import VFRuntime
import VFStore
import VFSync

/// Sends the queued webhook deliveries (`webhook_deliveries`, queued by the event ingest in the
/// same transaction as the event) on a thread of its own: one POST at a time with libcurl
/// (bounded by VF_WEBHOOK_TIMEOUT), signed with HMAC-SHA256, retried with `Backoff` up to
/// VF_WEBHOOK_MAX_ATTEMPTS. The state lives in the database, so a restarted API resumes the
/// pending deliveries, and several replicas share the work (each takes due rows under a lease
/// with SKIP LOCKED).
public final class WebhookSender: Sendable {
    private let settings: EventSettings
    private let pool: DatabasePool
    private let metrics: EventMetrics
    private let wake = NSCondition()
    /// Under `wake`'s lock: a wake-up that comes while sending is not lost.
    private let state = Locked(State())
    private let log = Logger(label: "vectorflow-api.webhooks")

    private struct State {
        var running = false
        var woken = false
    }

    /// Deliveries taken per pass.
    static let batch = 16

    public init(settings: EventSettings, pool: DatabasePool, metrics: EventMetrics) {
        self.settings = settings
        self.pool = pool
        self.metrics = metrics
    }

    /// Starts the sender; without a configured URL it still finishes deliveries queued earlier.
    public func start() {
        guard settings.webhookSecret != nil else { return }  // nothing can be signed: nothing is sent
        guard
            state.withLock({ s -> Bool in
                if s.running { return false }
                s.running = true
                return true
            })
        else { return }
        let t = Thread { [self] in run() }
        t.name = "vf-webhooks"
        t.start()
    }

    public func stop() {
        state.withLock { $0.running = false }
        wakeUp()
    }

    /// New deliveries are queued: look now rather than at the next timer.
    public func wakeUp() {
        wake.lock()
        state.withLock { $0.woken = true }
        wake.signal()
        wake.unlock()
    }

    /// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
    public static func signature(secret: [UInt8], timestamp: Int, body: [UInt8]) -> String {
        var message = Array("\(timestamp).".utf8)
        message.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret))
        let hex = mac.map { b -> String in
            let s = String(b, radix: 16)
            return b < 16 ? "0" + s : s
        }.joined()
        return "t=\(timestamp),v1=\(hex)"
    }

    /// The delay before attempt `attempts + 1`, from the project's one backoff policy.
    func retryDelay(afterAttempts attempts: Int) -> Double {
        var b = Backoff(initial: settings.webhookRetryInitial, maximum: settings.webhookRetryMax)
        for _ in 1..<max(1, attempts) { _ = b.nextDelay() }
        return b.nextDelay()
    }

    private func run() {
        guard let secret = settings.webhookSecret else { return }
        var idle = Backoff(initial: 0.5, maximum: 5)
        while state.withLock({ $0.running }) {
            let lease = settings.webhookTimeout * 2 + 5
            let due =
                pool.perform { db in try? EventRepository.takeDue(db, limit: Self.batch, lease: lease) } ?? nil
            guard let due else {
                // The database is down: try again later.
                sleep(idle.nextDelay())
                continue
            }
            idle.reset()
            for d in due {
                send(d, secret: secret)
            }
            if due.count == Self.batch { continue }
            let next = pool.perform { db in (try? EventRepository.secondsToNextDue(db)) ?? nil } ?? nil
            sleep(min(5, max(0.02, next ?? 5)))
        }
    }

    /// Waits up to `seconds`, or until woken.
    private func sleep(_ seconds: Double) {
        wake.lock()
        if !state.withLock({ $0.woken }) {
            _ = wake.wait(until: Date(timeIntervalSinceNow: seconds))
        }
        state.withLock { $0.woken = false }
        wake.unlock()
    }

    private func send(_ d: EventRepository.DueDelivery, secret: [UInt8]) {
        let body = Array(d.body.utf8)
        let t = Int(Date().timeIntervalSince1970)
        let headers = [
            "Content-Type: application/json", "User-Agent: vectorflow-api", "X-VectorFlow-Event: \(d.phase)",
            "X-VectorFlow-Delivery: \(d.id)",
            "X-VectorFlow-Signature: \(Self.signature(secret: secret, timestamp: t, body: body))",
        ]
        let attempts = d.attempts + 1
        let error: String?
        switch WebhookPost.send(url: d.url, body: body, headers: headers, timeout: settings.webhookTimeout) {
        case .success(let status) where (200..<300).contains(status): error = nil
        case .success(let status): error = "HTTP \(status)"
        case .failure(let e): error = Credentials.maskText(e.message)
        }
        let masked = Credentials.maskURL(d.url)
        if let error {
            let final = attempts >= settings.webhookMaxAttempts
            let delay = retryDelay(afterAttempts: attempts)
            metrics.delivery(final ? "failed" : "retry")
            if final {
                log.warning(
                    "webhook \(d.phase) of event \(d.eventID) to \(masked) failed \(attempts) times: \(error); giving up"
                )
            } else {
                log.info(
                    "webhook \(d.phase) of event \(d.eventID) to \(masked): \(error); retry in \(Int(delay.rounded(.up))) s"
                )
            }
            _ = pool.perform { db in
                try? EventRepository.markFailed(
                    db, id: d.id, attempts: attempts, error: error, final: final, retryIn: delay)
            }
        } else {
            metrics.delivery("delivered")
            _ = pool.perform { db in try? EventRepository.markDelivered(db, id: d.id, attempts: attempts) }
        }
    }
}

import Foundation
import Logging
import Synchronization
import VFBus
import VFCore
import VFSync

/// The worker's lifecycle as the API reads it from `vectorflow:status:<stream_id>`.
/// Every case is a value of `vector_flow_worker_state`'s `state` label (a closed set).
enum WorkerState: String, Sendable, CaseIterable {
    case connecting, running, reconnecting, ended, failed
}

/// What the capture loop reports and the housekeeping thread writes to Redis.
struct StatusSnapshot: Sendable, Equatable {
    var state: WorkerState = .connecting
    var fps: Double = 0
    var lastError: String = ""
}

/// Keeps `vectorflow:status:<id>` fresh (every 2 s, TTL 15 s, at once on a state change) and polls
/// `vectorflow:viewers:<id>` about once a second, on its own thread so Redis never stalls the loop.
final class Housekeeper: Sendable {
    static let statusTTL = 15
    static let statusInterval = 2.0
    static let viewerInterval = 1.0

    private let client: RedisClient
    private let statusKey: String
    private let viewersKey: String
    private let previewAlways: Bool
    /// `vector_flow_worker_state`, kept in step with `snapshot.state` (set under its lock).
    private let stateGauge: StateGauge?
    private let snapshot = Locked(StatusSnapshot())
    private let changed = DispatchSemaphore(value: 0)
    private let stopped = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    /// True while a dashboard watches the stream (or PREVIEW_ALWAYS): only then are JPEGs made.
    let viewers: Atomic<Bool>

    /// Where state changes are logged (carries `stream_id`).
    private let log: Logger

    init(client: RedisClient, streamID: String, previewAlways: Bool, log: Logger, stateGauge: StateGauge? = nil) {
        self.log = log
        self.client = client
        self.stateGauge = stateGauge
        statusKey = RedisKeys.status(streamID)
        viewersKey = RedisKeys.viewers(streamID)
        self.previewAlways = previewAlways
        viewers = Atomic(previewAlways)
    }

    var current: StatusSnapshot { snapshot.withLock { $0 } }

    /// Records a new state (written to Redis at once) or just new figures (written on the next tick).
    func update(state: WorkerState? = nil, fps: Double? = nil, lastError: String? = nil) {
        let (old, new) = snapshot.withLock { s -> (StatusSnapshot, StatusSnapshot) in
            let old = s
            if let state {
                s.state = state
                stateGauge?.set(state.rawValue)
            }
            if let fps { s.fps = fps }
            // FFmpeg's and the policy's messages quote the URL: the status never holds its secret.
            if let lastError { s.lastError = Credentials.maskText(lastError) }
            return (old, s)
        }
        guard new.state != old.state else { return }
        changed.signal()
        let level: Logger.Level = new.state == .failed ? .error : (new.state == .reconnecting ? .warning : .info)
        var metadata: Logger.Metadata = ["state": "\(new.state.rawValue)", "previous_state": "\(old.state.rawValue)"]
        if !new.lastError.isEmpty { metadata["last_error"] = "\(Credentials.maskText(new.lastError))" }
        log.log(level: level, "state \(old.state.rawValue) -> \(new.state.rawValue)", metadata: metadata)
    }

    func start() {
        let t = Thread { [self] in
            var nextStatus = 0.0
            var nextViewers = 0.0
            while !self.stopped.load(ordering: .acquiring) {
                let now = monotonicNow()
                if now >= nextViewers {
                    nextViewers = now + Self.viewerInterval
                    if !self.previewAlways {
                        let present = (try? self.client.command(["EXISTS", self.viewersKey])) == .integer(1)
                        self.viewers.store(present, ordering: .relaxed)
                    }
                }
                if now >= nextStatus {
                    nextStatus = now + Self.statusInterval
                    self.writeStatus()
                }
                let wait = max(0.01, min(nextStatus, nextViewers) - monotonicNow())
                if self.changed.wait(timeout: .now() + wait) == .success { nextStatus = 0 }
            }
            self.done.signal()
        }
        t.name = "housekeeper"
        t.start()
    }

    @discardableResult
    func writeStatus() -> Bool {
        let s = current
        let fields = [
            "HSET", statusKey, "state", s.state.rawValue, "fps", String(format: "%.2f", s.fps),
            "last_error", s.lastError, "updated_at", String(format: "%.3f", unixNow()),
        ]
        guard let r = try? client.command(fields) else { return false }
        if case .error = r { return false }
        return (try? client.command(["EXPIRE", statusKey, String(Self.statusTTL)])) != nil
    }

    /// Stops the thread, then writes the status once more (e.g. `ended`) or removes the key (stopped
    /// by a signal: the stream is no longer running, and a stale hash must not say it is).
    func stop(removeStatus: Bool) {
        stopped.store(true, ordering: .releasing)
        changed.signal()
        _ = done.wait(timeout: .now() + 0.3)
        if removeStatus {
            _ = try? client.command(["DEL", statusKey])
        } else {
            writeStatus()
        }
    }
}

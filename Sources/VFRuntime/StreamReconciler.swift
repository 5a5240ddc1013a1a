import Foundation
import VFCore
import VFSync

/// The desired state, as the API's database holds it. Implemented by the API over PostgreSQL.
/// Called from the reconciler's own thread only; may block.
public protocol DesiredStateStore: Sendable {
    /// One spec per stream that should have a worker (`is_active`).
    func desiredWorkers() throws -> [WorkerSpec]
    /// Records the running worker of a stream (`worker_container_name`, `worker_started_at`),
    /// or clears both (nil, nil) when it stops.
    func recordWorker(streamID: String, containerName: String?, startedAt: Double?) throws
}

/// What one reconciliation did; the API waits for one after a change to answer with errors.
public struct ReconcileReport: Sendable {
    public var started: [String] = []
    public var stopped: [String] = []
    /// Per stream id: the runtime error that kept its worker from running.
    public var errors: [String: RuntimeError] = [:]
    /// The subset of `errors` of streams that should run but whose worker could not be started
    /// (the runtime not ready, or the start refused): what their status must show, since a worker
    /// that never ran cannot report anything itself.
    public var startFailures: [String: RuntimeError] = [:]
    /// Set when the desired state or the runtime's list could not be read (nothing was changed).
    public var failure: RuntimeError?
    public var fileSDChanged = false
    /// Per stream id: where a cluster runtime placed its worker (node, task state, engine error).
    public var placements: [String: WorkerPlacement] = [:]
    /// True when this instance is not the leader and the pass did nothing.
    public var skipped = false
    public init() {}
}

/// Makes the runtime's workers match the database: starts missing workers, stops orphans (workers
/// of deleted or inactive streams), replaces exited ones, restarts a worker whose URL, grid or
/// threshold changed (config hash), records container name and start time, and keeps the
/// Prometheus file_sd file in step. Runs on its own thread, never on an event loop; runs are
/// serialized, and kicks arriving during a run are coalesced into one more run.
public final class StreamReconciler: @unchecked Sendable {
    // @unchecked: `pending`, `running`, `waiters`, `lastReport` are guarded by `condition`;
    // `runLock` serializes reconciliations between the thread and direct `reconcileNow()` calls.
    public let store: DesiredStateStore
    public let runtime: WorkerRuntime
    public let fileSD: FileSDWriter?
    public let interval: Double
    public let stopTimeout: Double
    /// Maps a worker to its file_sd target; nil uses the runtime's `metricsTarget`.
    public let targetFor: @Sendable (WorkerInfo) -> String?
    private let log: RuntimeLog
    /// Called on the reconciler's thread with every report of its own passes.
    private let onReport: (@Sendable (ReconcileReport) -> Void)?
    private let condition = NSCondition()
    private let runLock = Lock()
    private var pending = false
    private var running = false
    private var waiters: [@Sendable (ReconcileReport) -> Void] = []
    private var lastReportStorage = ReconcileReport()
    private var thread: Thread?
    private var forcedRun = false
    // Touched only under `runLock`: when the last failed prepare (image build, engine) may be retried.
    private var prepareFailure: (at: Double, error: RuntimeError)?
    private var prepareBackoff = Backoff(initial: 2, maximum: 60)
    // Touched only under `runLock`: set by `stopAllWorkers()`, after which no run changes anything.
    private var halted = false
    /// Whether this API instance may act (the leader among replicas); a pass is skipped otherwise.
    public let isLeader: @Sendable () -> Bool

    public init(
        store: DesiredStateStore, runtime: WorkerRuntime, fileSD: FileSDWriter?, interval: Double = 5,
        stopTimeout: Double = 5, targetFor: @escaping @Sendable (WorkerInfo) -> String? = { $0.metricsTarget },
        log: @escaping RuntimeLog = stderrRuntimeLog, onReport: (@Sendable (ReconcileReport) -> Void)? = nil,
        isLeader: @escaping @Sendable () -> Bool = { true }
    ) {
        self.isLeader = isLeader
        self.onReport = onReport
        self.store = store
        self.runtime = runtime
        self.fileSD = fileSD
        self.interval = interval
        self.stopTimeout = stopTimeout
        self.targetFor = targetFor
        self.log = log
    }

    /// Starts the reconciler thread; it reconciles at once, on every `kick()`, and every `interval` s.
    public func start() {
        condition.lock()
        defer { condition.unlock() }
        guard thread == nil else { return }
        running = true
        pending = true
        forcedRun = true
        let t = Thread { [self] in loop() }
        t.name = "vf-reconciler"
        thread = t
        t.start()
    }

    /// Stops the thread after the current run (workers are left as they are).
    public func stop() {
        condition.lock()
        running = false
        condition.broadcast()
        condition.unlock()
    }

    /// Stops the reconciler for good, then every worker the runtime manages, all at once (each
    /// with `stopTimeout`, so the whole takes about one timeout, not one per worker), clears their
    /// records and empties the file_sd targets. For an API whose workers must not outlive it
    /// (`docker compose down`); the desired state is left as it is, so the next start brings the
    /// workers back. Waits for a run in progress; later runs do nothing. Blocks: call it from a
    /// thread of its own. Returns the errors of the workers that could not be stopped.
    public func stopAllWorkers() -> [String: RuntimeError] {
        stop()
        runLock.lock()
        defer { runLock.unlock() }
        halted = true
        let workers: [WorkerInfo]
        do {
            workers = try runtime.list()
        } catch {
            log("cannot list workers to stop them: \(error)")
            return ["*": error]
        }
        // One thread per worker: the engine calls block for up to `stopTimeout` each.
        final class Results: @unchecked Sendable {
            // @unchecked: `errors` is only touched under `lock`.
            let lock = Lock()
            var errors: [String: RuntimeError] = [:]
        }
        let results = Results()
        let group = DispatchGroup()
        let runtime = self.runtime
        let timeout = stopTimeout
        for worker in workers {
            group.enter()
            Thread {
                do throws(RuntimeError) {
                    try runtime.stop(streamID: worker.streamID, timeout: timeout)
                } catch {
                    results.lock.lock()
                    results.errors[worker.streamID] = error
                    results.lock.unlock()
                }
                group.leave()
            }.start()
        }
        group.wait()
        for worker in workers {
            if let error = results.errors[worker.streamID] {
                log("cannot stop \(worker.name): \(error)")
            } else {
                log("stopped \(worker.name) (the API is stopping)")
                // The store is only ever called from one thread at a time: here, after the stops.
                try? store.recordWorker(streamID: worker.streamID, containerName: nil, startedAt: nil)
            }
        }
        if let fileSD {
            do {
                _ = try fileSD.write([])
            } catch {
                log("cannot update file_sd: \(error)")
            }
        }
        return results.errors
    }

    /// Asks for a reconciliation soon (after a stream was created, changed, (de)activated or
    /// deleted). Never blocks: safe on an event loop. `completion` (on the reconciler thread)
    /// gets the report of the run that started after this kick.
    public func kick(completion: (@Sendable (ReconcileReport) -> Void)? = nil) {
        condition.lock()
        pending = true
        forcedRun = true
        if let completion { waiters.append(completion) }
        condition.signal()
        condition.unlock()
    }

    /// The report of the latest run.
    public var lastReport: ReconcileReport {
        condition.lock()
        defer { condition.unlock() }
        return lastReportStorage
    }

    private func loop() {
        condition.lock()
        while running {
            if !pending {
                _ = condition.wait(until: Date(timeIntervalSinceNow: interval))
                if !running { break }
            }
            pending = false
            let forced = forcedRun
            forcedRun = false
            let toNotify = waiters
            waiters = []
            condition.unlock()
            let report = reconcileNow(forced: forced)
            onReport?(report)
            for w in toNotify { w(report) }
            condition.lock()
            lastReportStorage = report
        }
        condition.unlock()
    }

    /// Whether the database's record of a running worker is out of date (adopted after a restart
    /// with a cleared row, or restarted by the runtime itself since).
    static func recordIsStale(_ spec: WorkerSpec, _ current: WorkerInfo) -> Bool {
        if spec.recordedContainerName != current.name { return true }
        if let recorded = spec.recordedStartedAt, let started = current.startedAt, abs(recorded - started) > 0.01 {
            return true
        }
        return false
    }

    /// One reconciliation, on the calling thread (tests and tools; the API uses `kick`).
    /// `forced` (every run but the periodic ones) ignores the delay after a failed `prepare`, so a
    /// person's action retries at once while a broken engine is not hammered every few seconds.
    @discardableResult
    public func reconcileNow(forced: Bool = true) -> ReconcileReport {
        runLock.lock()
        defer { runLock.unlock() }
        var report = ReconcileReport()
        // After stopAllWorkers(): a kick or a direct call arriving during shutdown must not start
        // the workers again.
        if halted { return report }
        guard isLeader() else {
            report.skipped = true
            return report
        }
        guard let desired = readDesired(&report), prepareRuntime(for: desired, forced: forced, &report) else {
            return report
        }
        let actual: [WorkerInfo]
        do {
            actual = try runtime.list()
        } catch {
            report.failure = error
            log("cannot list workers: \(error)")
            return report
        }
        let wanted = Dictionary(desired.map { ($0.streamID, $0) }, uniquingKeysWith: { a, _ in a })
        let present = Dictionary(actual.map { ($0.streamID, $0) }, uniquingKeysWith: { a, _ in a })
        // Where each wanted worker runs, as listed before this pass acted; the file_sd step below
        // lists again after the changes and replaces these.
        for w in actual where wanted[w.streamID] != nil {
            if let p = w.placement { report.placements[w.streamID] = p }
        }
        for worker in actual where wanted[worker.streamID] == nil { stopOrphan(worker, &report) }
        for spec in desired.sorted(by: { $0.streamID < $1.streamID }) {
            converge(spec, current: present[spec.streamID], &report)
        }
        if let fileSD { publishTargets(to: fileSD, wanted: wanted, &report) }
        return report
    }

    /// The desired state, or nil (with the failure in `report`): never act on an unreadable
    /// desired state, that would stop every worker.
    private func readDesired(_ report: inout ReconcileReport) -> [WorkerSpec]? {
        do {
            return try store.desiredWorkers()
        } catch {
            let failure = RuntimeError(.local, "desired state unavailable: \(error)")
            report.failure = failure
            log(failure.message)
            return nil
        }
    }

    /// Readies the runtime (an image to build or pull) when some worker is wanted; false (every
    /// wanted stream failing with its error) when it cannot be, or when an unforced pass comes
    /// within the delay after the last failure.
    private func prepareRuntime(for desired: [WorkerSpec], forced: Bool, _ report: inout ReconcileReport) -> Bool {
        guard !desired.isEmpty else { return true }
        func failAll(_ error: RuntimeError) {
            report.failure = error
            for spec in desired { report.errors[spec.streamID] = error }
            report.startFailures = report.errors
        }
        if !forced, let (at, error) = prepareFailure, monotonicNow() < at {
            failAll(error)
            return false
        }
        do {
            try runtime.prepare()
            prepareFailure = nil
            prepareBackoff.reset()
            return true
        } catch {
            prepareFailure = (monotonicNow() + prepareBackoff.nextDelay(), error)
            failAll(error)
            log("runtime not ready: \(error)")
            return false
        }
    }

    /// A worker no active stream wants: stopped, its record cleared.
    private func stopOrphan(_ worker: WorkerInfo, _ report: inout ReconcileReport) {
        do {
            try runtime.stop(streamID: worker.streamID, timeout: stopTimeout)
            report.stopped.append(worker.streamID)
            log("stopped orphan worker \(worker.name)")
            try? store.recordWorker(streamID: worker.streamID, containerName: nil, startedAt: nil)
        } catch {
            report.errors[worker.streamID] = error
            log("cannot stop \(worker.name): \(error)")
        }
    }

    /// Why `spec`'s worker must be (re)started, or nil when `current` already runs it.
    private static func restartReason(_ spec: WorkerSpec, _ current: WorkerInfo?) -> String? {
        guard let current else { return "missing" }
        if current.configHash != spec.configHash { return "configuration changed" }
        if current.state == .exited { return "worker exited" }
        return nil
    }

    /// Makes one wanted stream's worker run its settings, and records it.
    private func converge(_ spec: WorkerSpec, current: WorkerInfo?, _ report: inout ReconcileReport) {
        guard let reason = Self.restartReason(spec, current) else {
            if let current, current.state == .running, Self.recordIsStale(spec, current) {
                try? store.recordWorker(streamID: spec.streamID, containerName: current.name, startedAt: current.startedAt)
            }
            return
        }
        do {
            if current != nil && !runtime.updatesInPlace {
                try runtime.stop(streamID: spec.streamID, timeout: stopTimeout)
            }
            let info = try runtime.start(spec)
            report.started.append(spec.streamID)
            log("started \(info.name) (\(reason))")
            do {
                try store.recordWorker(streamID: spec.streamID, containerName: info.name, startedAt: info.startedAt)
            } catch {
                log("cannot record worker of \(spec.streamID): \(error)")
            }
        } catch {
            report.errors[spec.streamID] = error
            report.startFailures[spec.streamID] = error
            log("cannot start worker of \(spec.streamID): \(error)")
            if spec.recordedContainerName != nil {
                try? store.recordWorker(streamID: spec.streamID, containerName: nil, startedAt: nil)
            }
        }
    }

    /// Lists the workers after this pass's changes: their placements, and the Prometheus targets.
    private func publishTargets(to fileSD: FileSDWriter, wanted: [String: WorkerSpec], _ report: inout ReconcileReport) {
        do {
            let workers = try runtime.list()
            for w in workers where wanted[w.streamID] != nil {
                report.placements[w.streamID] = w.placement
            }
            let targets = workers.filter { wanted[$0.streamID] != nil && $0.state != .exited }.compactMap { w in
                targetFor(w).map {
                    FileSDTarget(
                        target: $0, streamID: w.streamID, streamName: wanted[w.streamID]?.streamName ?? w.streamName,
                        extraLabels: w.placement.map { ["node": $0.nodeID] } ?? [:])
                }
            }
            report.fileSDChanged = try fileSD.write(targets)
            if report.fileSDChanged { log("file_sd updated: \(targets.count) target(s)") }
        } catch {
            log("cannot update file_sd: \(error)")
        }
    }
}

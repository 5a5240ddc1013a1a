import Foundation
import Glibc
import VFCore

/// Settings of the process runtime (the embedded default: no container engine).
public struct ProcessRuntimeConfiguration: Sendable {
    /// Absolute path of the worker binary (`VF_WORKER_BIN`).
    public var workerBinary: String
    /// Arguments after argv[0] (the worker's default subcommand is `run`, so none are needed).
    public var arguments: [String]
    /// Where pid + config hash records live so a restarted API adopts its workers (`VF_STATE_DIR`).
    /// Always absolute (a relative path is resolved against the working folder once, here), so
    /// an API started from another folder still finds its workers.
    public var stateDirectory: String
    /// One `<worker name>.log` per worker (stdout and stderr); defaults to `<state dir>/logs`.
    public var logDirectory: String
    public var redisURL: String
    /// Added to every worker's environment (PATH, RUST_LOG-like knobs...); the stream's own
    /// variables win over these.
    public var extraEnvironment: [String: String]
    /// Seconds between SIGTERM and SIGKILL when stopping.
    public var stopGrace: Double
    /// Restart delays of a worker that died on its own.
    public var restartBackoff: Backoff
    /// A worker that ran this long before dying restarts from the initial delay again.
    public var stableAfter: Double
    /// How often the supervisor thread looks for dead workers.
    public var monitorInterval: Double

    public init(
        workerBinary: String, arguments: [String] = [], stateDirectory: String = ProcessRuntimeConfiguration.defaultStateDirectory,
        logDirectory: String? = nil, redisURL: String = "redis://localhost:6379/0",
        extraEnvironment: [String: String] = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"],
        stopGrace: Double = 5, restartBackoff: Backoff = Backoff(initial: 0.5, maximum: 30),
        stableAfter: Double = 30, monitorInterval: Double = 0.2
    ) {
        self.workerBinary = workerBinary
        self.arguments = arguments
        let state = URL(fileURLWithPath: stateDirectory).standardizedFileURL.path
        self.stateDirectory = state
        self.logDirectory = URL(
            fileURLWithPath: logDirectory ?? (state as NSString).appendingPathComponent("logs")
        ).standardizedFileURL.path
        self.redisURL = redisURL
        self.extraEnvironment = extraEnvironment
        self.stopGrace = stopGrace
        self.restartBackoff = restartBackoff
        self.stableAfter = stableAfter
        self.monitorInterval = monitorInterval
    }

    /// `/var/lib/vectorflow/workers` for root, else `$XDG_STATE_HOME/vectorflow/workers`
    /// (`~/.local/state/vectorflow/workers`): one absolute place per user, whatever the working folder.
    public static var defaultStateDirectory: String {
        if getuid() == 0 { return "/var/lib/vectorflow/workers" }
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_STATE_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil }
            ?? ((env["HOME"] ?? NSHomeDirectory()) as NSString).appendingPathComponent(".local/state")
        return (base as NSString).appendingPathComponent("vectorflow/workers")
    }
}

/// Runs each worker as a child process: own process group, environment from the spec, output to
/// a log file; restarts it with `Backoff` when it dies; SIGTERM then SIGKILL to stop; reaps every
/// child. A record per worker (pid, config hash, port) in the state folder lets a new API instance
/// adopt live workers instead of starting duplicates.
///
/// Crash safety: a record is written *before* each spawn (pid 0 until the spawn returns), and
/// every worker carries `VF_WORKER_OWNER=<state folder>` in its environment. A new instance
/// scans /proc for that mark, so a worker whose record never got its pid (the API died between
/// spawn and write) is adopted through its intent record, and one with no record at all, or a
/// second one for the same stream, is stopped: at most one worker per stream, and none unknown.
/// The state folder is locked (`flock`) for the instance's lifetime, so two APIs never share it.
public final class ProcessRuntime: WorkerRuntime, @unchecked Sendable {
    // @unchecked: every mutable field (`workers`, `running`, `lockFD`) is guarded by `lock`; the
    // supervisor thread and callers only meet there.
    public let kind = "process"
    public let configuration: ProcessRuntimeConfiguration
    /// The environment variable that marks a worker as spawned by the runtime of one state folder.
    static let ownerVariable = "VF_WORKER_OWNER"
    private let log: RuntimeLog
    private let lock = NSCondition()
    private var workers: [String: Worker] = [:]
    private var running = true
    private var supervisor: Thread?
    private var lockFD: Int32

    /// One managed worker, as recorded on disk. `pid` 0: the spawn was about to happen.
    struct Record: Codable {
        var spec: WorkerSpec
        var pid: Int32
        var configHash: String
        var metricsPort: Int
        var startedAt: Double
        var binary: String
    }

    private struct Worker {
        var record: Record
        var state: WorkerState
        var backoff: Backoff
        var restartAt: Double?
        var startedMonotonic: Double
        var stopping = false
    }

    /// Locks the state folder (failing when another live API holds it), adopts the workers still
    /// alive, stops the unknown ones, and starts the supervisor thread.
    public init(configuration: ProcessRuntimeConfiguration, log: @escaping RuntimeLog = stderrRuntimeLog)
        throws(RuntimeError)
    {
        self.configuration = configuration
        self.log = log
        for dir in [configuration.stateDirectory, configuration.logDirectory] {
            do {
                try FileManager.default.createDirectory(
                    atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw RuntimeError(.local, "cannot create \(dir): \(error.localizedDescription)")
            }
        }
        lockFD = try ProcessSupport.lockExclusively(
            (configuration.stateDirectory as NSString).appendingPathComponent(".lock"))
        adoptWorkers()
        let thread = Thread { [weak self] in self?.supervise() }
        thread.name = "vf-process-runtime"
        supervisor = thread
        thread.start()
    }

    deinit { if lockFD >= 0 { close(lockFD) } }

    public func prepare() throws(RuntimeError) {
        guard access(configuration.workerBinary, X_OK) == 0 else {
            throw RuntimeError(.local, "worker binary \(configuration.workerBinary) is missing or not executable")
        }
    }

    public func list() throws(RuntimeError) -> [WorkerInfo] {
        lock.lock()
        defer { lock.unlock() }
        return workers.values.map(info).sorted { $0.streamID < $1.streamID }
    }

    public func start(_ spec: WorkerSpec) throws(RuntimeError) -> WorkerInfo {
        try stop(streamID: spec.streamID, timeout: configuration.stopGrace)
        lock.lock()
        defer { lock.unlock() }
        let taken = Set(workers.values.map(\.record.metricsPort))
        guard let port = ProcessSupport.freeLoopbackPort(excluding: taken) else {
            throw RuntimeError(.local, "no free loopback port for the worker's metrics")
        }
        var record = Record(
            spec: spec, pid: 0, configHash: spec.configHash, metricsPort: port,
            startedAt: Date().timeIntervalSince1970, binary: configuration.workerBinary)
        // The intent first: if this process dies right after the spawn, the next instance finds
        // the worker in /proc and this record tells it which settings and port the worker has.
        try persist(record)
        do {
            record.pid = try spawn(record)
        } catch {
            unlink(recordPath(spec.streamID))
            throw error
        }
        try persist(record)
        workers[spec.streamID] = Worker(
            record: record, state: .running, backoff: configuration.restartBackoff,
            restartAt: nil, startedMonotonic: monotonicNow())
        log("started \(spec.workerName) pid \(record.pid) metrics 127.0.0.1:\(port)")
        return info(workers[spec.streamID]!)
    }

    public func stop(streamID: String, timeout: Double) throws(RuntimeError) {
        lock.lock()
        guard var worker = workers[streamID], !worker.stopping else {
            lock.unlock()
            return
        }
        worker.stopping = true
        workers[streamID] = worker
        lock.unlock()
        // Outside the lock: waiting for the exit must not hold up list() or other streams.
        if worker.state == .running {
            ProcessSupport.terminate(
                pid: worker.record.pid, grace: timeout, binary: worker.record.binary, streamID: streamID)
        }
        lock.lock()
        workers[streamID] = nil
        lock.unlock()
        unlink(recordPath(streamID))
        log("stopped \(worker.record.spec.workerName) pid \(worker.record.pid)")
    }

    /// Ends the supervisor. With `stopWorkers` false (an API restart), workers keep running and
    /// the next instance adopts them from the state folder.
    public func shutdown(stopWorkers: Bool) {
        if stopWorkers {
            lock.lock()
            let ids = Array(workers.keys)
            lock.unlock()
            for id in ids { try? stop(streamID: id, timeout: configuration.stopGrace) }
        }
        lock.lock()
        running = false
        lock.broadcast()
        // The next instance (an API restart in the same process, as the tests do) may lock now.
        if lockFD >= 0 {
            close(lockFD)
            lockFD = -1
        }
        lock.unlock()
    }

    /// The log file of a stream's worker.
    public func logPath(streamID: String) -> String {
        (configuration.logDirectory as NSString).appendingPathComponent(
            "\(WorkerSpec.workerName(streamID: streamID)).log")
    }

    // MARK: - internals (called with `lock` held unless noted)

    private func info(_ w: Worker) -> WorkerInfo {
        WorkerInfo(
            streamID: w.record.spec.streamID, streamName: w.record.spec.streamName,
            name: w.record.spec.workerName, configHash: w.record.configHash, state: w.state,
            startedAt: w.record.startedAt, metricsTarget: "127.0.0.1:\(w.record.metricsPort)",
            identifier: String(w.record.pid))
    }

    private func spawn(_ record: Record) throws(RuntimeError) -> pid_t {
        var env = configuration.extraEnvironment
        for (k, v) in record.spec.environment(
            redisURL: configuration.redisURL, metricsHost: "127.0.0.1",
            metricsPort: record.metricsPort)
        {
            env[k] = v
        }
        env[Self.ownerVariable] = configuration.stateDirectory
        let path = logPath(streamID: record.spec.streamID)
        rotateIfLarge(path)
        return try ProcessSupport.spawn(
            path: record.binary, arguments: configuration.arguments, environment: env, logPath: path)
    }

    private func rotateIfLarge(_ path: String) {
        var st = stat()
        if stat(path, &st) == 0, st.st_size > 10 * 1024 * 1024 {
            rename(path, path + ".1")
        }
    }

    private func recordPath(_ streamID: String) -> String {
        (configuration.stateDirectory as NSString).appendingPathComponent("\(streamID).json")
    }

    private func persist(_ record: Record) throws(RuntimeError) {
        let data: Data
        do { data = try JSONEncoder().encode(record) } catch { throw RuntimeError(.local, "encode state: \(error)") }
        // 0600: a record holds the stream's URL, credentials included.
        try FileSDWriter.atomicWrite(Array(data), to: recordPath(record.spec.streamID), mode: 0o600)
    }

    /// Called from init only (no other thread yet). Records first, then /proc: a record whose
    /// process still runs is adopted; a worker found in /proc with this folder's mark is adopted
    /// through the record of its stream when that record's own process is gone (the API died
    /// between spawn and record, or during a restart); every other marked worker is stopped.
    private func adoptWorkers() {
        let dir = configuration.stateDirectory
        var records: [String: (path: String, record: Record)] = [:]
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        for name in names where name.hasSuffix(".json") && !name.hasPrefix(".") {
            let path = (dir as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path),
                let record = try? JSONDecoder().decode(Record.self, from: data)
            else {
                log("ignoring unreadable state record \(path)")
                continue
            }
            records[record.spec.streamID] = (path, record)
        }
        var found: [String: [ProcessSupport.FoundWorker]] = [:]
        for w in ProcessSupport.findWorkers(ownerVariable: Self.ownerVariable, owner: dir) {
            found[w.streamID, default: []].append(w)
        }
        for (streamID, (path, var record)) in records {
            var candidates = found.removeValue(forKey: streamID) ?? []
            // liveness first: it reaps the record's process if it is a dead child of ours.
            let recordAlive =
                record.pid > 0
                && ProcessSupport.liveness(pid: record.pid, binary: record.binary, streamID: streamID) == .alive
                && ProcessSupport.matches(pid: record.pid, binary: record.binary, streamID: streamID)
            if recordAlive {
                candidates.removeAll { $0.pid == record.pid }
            } else if let newest = candidates.popLast() {
                log("found \(record.spec.workerName) pid \(newest.pid) running without its record; adopting it")
                record.pid = newest.pid
                record.binary = newest.binary
                if (try? persist(record)) == nil { log("cannot update the state record \(path)") }
            } else {
                unlink(path)  // dead: the reconciler starts a fresh one if the stream is still active
                log("dropped the record of dead worker \(record.spec.workerName) pid \(record.pid)")
                continue
            }
            for extra in candidates { stopUnknown(extra, why: "a second worker of the same stream") }
            workers[streamID] = Worker(
                record: record, state: .running, backoff: configuration.restartBackoff,
                restartAt: nil, startedMonotonic: monotonicNow())
            log("adopted \(record.spec.workerName) pid \(record.pid)")
        }
        for extra in found.values.joined() { stopUnknown(extra, why: "no state record") }
    }

    /// Stops a marked worker the state folder does not account for (its settings are unknown,
    /// so it cannot be adopted; the reconciler starts a fresh one if its stream is active).
    private func stopUnknown(_ w: ProcessSupport.FoundWorker, why: String) {
        log("stopping worker pid \(w.pid) of stream \(w.streamID): \(why)")
        ProcessSupport.terminate(pid: w.pid, grace: configuration.stopGrace, binary: w.binary, streamID: w.streamID)
    }

    /// The supervisor thread: finds dead workers (reaping them) and restarts them after a backoff.
    private func supervise() {
        lock.lock()
        defer { lock.unlock() }
        while running {
            let now = monotonicNow()
            for (id, var w) in workers where !w.stopping {
                switch w.state {
                case .running:
                    let liveness = ProcessSupport.liveness(pid: w.record.pid, binary: w.record.binary, streamID: id)
                    guard case .dead(let how) = liveness else { continue }
                    if now - w.startedMonotonic >= configuration.stableAfter { w.backoff.reset() }
                    let delay = w.backoff.nextDelay()
                    w.state = .restarting
                    w.restartAt = now + delay
                    log(
                        "\(w.record.spec.workerName) pid \(w.record.pid) \(how ?? "died"); restarting in \(String(format: "%.2f", delay)) s"
                    )
                case .restarting:
                    guard let at = w.restartAt, now >= at else { continue }
                    do {
                        w.record.pid = try spawn(w.record)
                        w.record.startedAt = Date().timeIntervalSince1970
                        try persist(w.record)
                        w.state = .running
                        w.restartAt = nil
                        w.startedMonotonic = now
                        log("restarted \(w.record.spec.workerName) pid \(w.record.pid)")
                    } catch {
                        w.restartAt = now + w.backoff.nextDelay()
                        log("restart of \(w.record.spec.workerName) failed: \(error)")
                    }
                case .exited:
                    continue
                }
                workers[id] = w
            }
            _ = lock.wait(until: Date(timeIntervalSinceNow: configuration.monitorInterval))
        }
    }
}

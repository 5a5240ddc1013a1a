import Foundation
import Glibc
import VFCore
import VFTestSupport
import XCTest

@testable import VFRuntime

/// Lifecycle of real child processes. `/usr/bin/sleep` stands in for the worker: the runtime's
/// semantics (spawn, environment, reaping, restart, SIGTERM/SIGKILL, adoption) do not depend on
/// what the worker computes.
final class ProcessRuntimeTests: XCTestCase {
    func makeRuntime(
        _ state: String, binary: String = "/usr/bin/sleep", arguments: [String] = ["300"],
        grace: Double = 2, log: LogCollector = LogCollector()
    ) throws -> ProcessRuntime {
        try ProcessRuntime(
            configuration: ProcessRuntimeConfiguration(
                workerBinary: binary, arguments: arguments, stateDirectory: state, redisURL: "redis://127.0.0.1:1/0",
                stopGrace: grace, restartBackoff: Backoff(initial: 0.2, maximum: 1), monitorInterval: 0.05),
            log: log.sink)
    }

    func testStartListStopReapsAndCleansUp() throws {
        let dir = makeTestFolder("proc-lifecycle")
        let runtime = try makeRuntime(dir)
        defer { runtime.shutdown(stopWorkers: true) }
        // A descriptor without O_CLOEXEC, as an API's listening socket might be: must not leak.
        let leaky = open("/dev/null", O_RDONLY)
        defer { close(leaky) }
        let info = try runtime.start(spec(IDs.a, threshold: 2.5))
        let pid = try pidOf(info)
        // Right after the exec the dynamic loader has the libraries it maps open for a moment (fd
        // 3 and up); a leaked descriptor stays. So: only 0, 1 and 2 once loading is over.
        func fds() -> Set<String> { Set((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []) }
        XCTAssertTrue(waitUntil(5) { fds() == ["0", "1", "2"] }, "descriptors of the worker: \(fds().sorted())")
        XCTAssertTrue(processExists(pid))
        XCTAssertEqual(info.state, .running)
        XCTAssertEqual(info.name, "vector-worker-\(IDs.a)")

        let env = environmentOf(pid)
        XCTAssertEqual(env["STREAM_ID"], IDs.a)
        XCTAssertEqual(env["THRESHOLD"], "2.5")
        XCTAssertEqual(env["METRICS_HOST"], "127.0.0.1")
        XCTAssertEqual(env["REDIS_URL"], "redis://127.0.0.1:1/0")
        XCTAssertEqual(info.metricsTarget, "127.0.0.1:\(env["METRICS_PORT"] ?? "none")")
        XCTAssertEqual(env[ProcessRuntime.ownerVariable], dir, "the mark a new instance finds it by")
        // Own process group, so a stop reaches the worker's children too.
        XCTAssertEqual(getpgid(pid), pid)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/\(IDs.a).json"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: runtime.logPath(streamID: IDs.a)))

        let listed = try runtime.list()
        XCTAssertEqual(listed.map(\.streamID), [IDs.a])
        XCTAssertEqual(listed.first?.configHash, spec(IDs.a, threshold: 2.5).configHash)

        let t0 = monotonicNow()
        try runtime.stop(streamID: IDs.a, timeout: 2)
        XCTAssertLessThan(monotonicNow() - t0, 1.0, "sleep dies on SIGTERM: no need to wait for the grace period")
        XCTAssertFalse(processExists(pid))
        XCTAssertFalse(isZombie(pid), "the stopped child must be reaped")
        XCTAssertEqual(try runtime.list().count, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/\(IDs.a).json"))
        // Stopping what is not there is fine.
        try runtime.stop(streamID: IDs.a, timeout: 1)
    }

    func testKilledWorkerIsReapedAndRestartedWithBackoff() throws {
        let dir = makeTestFolder("proc-restart")
        let log = LogCollector()
        let runtime = try makeRuntime(dir, log: log)
        defer { runtime.shutdown(stopWorkers: true) }
        let first = try pidOf(try runtime.start(spec(IDs.a)))
        let port = try runtime.list().first?.metricsTarget
        kill(first, SIGKILL)
        var replaced: WorkerInfo?
        XCTAssertTrue(
            waitUntil(5) {
                replaced = try? runtime.list().first
                return replaced?.state == .running && replaced?.identifier != String(first)
            }, "log: \(log.all)")
        let second = try pidOf(replaced)
        XCTAssertTrue(processExists(second))
        XCTAssertFalse(isZombie(first), "the killed child must be reaped")
        XCTAssertFalse(processExists(first))
        XCTAssertEqual(replaced?.metricsTarget, port, "a restart keeps the scrape target")
        XCTAssertTrue(log.all.contains { $0.contains("pid \(first) killed by signal 9; restarting in") }, "\(log.all)")
    }

    func testStopEscalatesToSIGKILLAfterGrace() throws {
        let dir = makeTestFolder("proc-sigkill")
        // A worker that ignores SIGTERM (and whose children inherit that).
        let runtime = try makeRuntime(
            dir, binary: "/bin/sh", arguments: ["-c", "trap '' TERM; while :; do sleep 0.05; done"], grace: 0.6)
        defer { runtime.shutdown(stopWorkers: true) }
        let pid = try pidOf(try runtime.start(spec(IDs.b)))
        // Wait until the shell has installed its trap (SIGTERM, bit 15, in SigIgn).
        XCTAssertTrue(
            waitUntil(5) {
                guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                    let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigIgn:") }),
                    let mask = UInt64(line.dropFirst("SigIgn:".count).trimmingCharacters(in: .whitespaces), radix: 16)
                else { return false }
                return mask & (1 << (UInt64(SIGTERM) - 1)) != 0
            })
        let t0 = monotonicNow()
        try runtime.stop(streamID: IDs.b, timeout: 0.6)
        let took = monotonicNow() - t0
        XCTAssertGreaterThanOrEqual(took, 0.55, "SIGTERM was ignored, so the grace period must elapse")
        XCTAssertLessThan(took, 2.5)
        XCTAssertFalse(processExists(pid))
        XCTAssertFalse(isZombie(pid))
        // No survivor in its process group either.
        XCTAssertTrue(waitUntil(2) { kill(-pid, 0) == -1 }, "a member of the worker's process group survived")
    }

    func testNewInstanceAdoptsLiveWorkersWithoutDuplicatesOrOrphans() throws {
        let dir = makeTestFolder("proc-adopt")
        let first = try makeRuntime(dir)
        let a = try pidOf(try first.start(spec(IDs.a)))
        let b = try pidOf(try first.start(spec(IDs.b)))
        // A stale record of a worker that died while no API ran: must be dropped, not adopted.
        let c = try pidOf(try first.start(spec(IDs.c)))
        first.shutdown(stopWorkers: false)  // the API goes away; workers keep running
        kill(c, SIGKILL)
        XCTAssertTrue(waitUntil(2) { !processExists(c) })

        let store = JSONFileStore(path: "\(dir)/streams.json", rows: [JSONFileStore.row(IDs.a)])  // b was deleted meanwhile
        let second = try makeRuntime(dir)
        defer { second.shutdown(stopWorkers: true) }
        let adopted = try second.list()
        XCTAssertEqual(Set(adopted.map(\.identifier)), [String(a), String(b)])
        XCTAssertFalse(isZombie(c), "the new instance reaps a dead child it finds")

        let reconciler = StreamReconciler(store: store, runtime: second, fileSD: nil, stopTimeout: 2)
        let report = reconciler.reconcileNow()
        XCTAssertEqual(report.started, [], "a live adopted worker must not be started again")
        XCTAssertEqual(report.stopped, [IDs.b], "the worker of a deleted stream is an orphan")
        XCTAssertEqual(try second.list().map(\.identifier), [String(a)])
        XCTAssertTrue(processExists(a))
        XCTAssertFalse(processExists(b))
        XCTAssertEqual(store.row(IDs.a)?.worker_container_name, "vector-worker-\(IDs.a)")
    }

    /// After a real API restart the workers are no longer our children (they were reparented):
    /// adoption, liveness and stop must work through /proc and plain signals.
    func testAdoptsAWorkerThatIsNotItsChild() throws {
        let dir = makeTestFolder("proc-adopt-nonchild")
        // The shell starts the worker in the background and exits: the worker is re-parented away from us.
        let started = runCommand(["/bin/sh", "-c", "STREAM_ID=\(IDs.a) /usr/bin/sleep 300 >/dev/null 2>&1 & echo $!"])
        let pid = try XCTUnwrap(Int32(started.output.trimmingCharacters(in: .whitespacesAndNewlines)))
        // The pid exists from the fork on, but it is the worker only once the shell's child has
        // exec'd sleep with its STREAM_ID: wait for that, as the runtime's own check sees it.
        XCTAssertTrue(
            waitUntil(5) { ProcessSupport.matches(pid: pid, binary: "/usr/bin/sleep", streamID: IDs.a) },
            "the background sleep never exec'd")
        XCTAssertNotEqual(getppid(), pid)
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, WNOHANG), -1, "not our child")
        let record = ProcessRuntime.Record(
            spec: spec(IDs.a), pid: pid, configHash: spec(IDs.a).configHash,
            metricsPort: 1, startedAt: 0, binary: "/usr/bin/sleep")
        try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: "\(dir)/\(IDs.a).json"))

        let runtime = try makeRuntime(dir)
        defer { runtime.shutdown(stopWorkers: true) }
        XCTAssertEqual(try runtime.list().map(\.identifier), [String(pid)])
        XCTAssertEqual(try runtime.list().first?.state, .running)

        // Killed while adopted: seen dead through /proc and replaced by a child of ours.
        kill(pid, SIGKILL)
        var replaced: WorkerInfo?
        XCTAssertTrue(
            waitUntil(5) {
                replaced = try? runtime.list().first
                return replaced?.state == .running && replaced?.identifier != String(pid)
            })
        let child = try pidOf(replaced)
        XCTAssertEqual(getpgid(child), child)
        try runtime.stop(streamID: IDs.a, timeout: 2)
        XCTAssertFalse(processExists(child))
        XCTAssertFalse(isZombie(child))
    }

    func testRecycledPidIsNotAdopted() throws {
        let dir = makeTestFolder("proc-recycled")
        // A record pointing at a live process that is not a worker (this test process).
        let record = ProcessRuntime.Record(
            spec: spec(IDs.a), pid: getpid(), configHash: spec(IDs.a).configHash,
            metricsPort: 1, startedAt: 0, binary: "/usr/bin/sleep")
        try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: "\(dir)/\(IDs.a).json"))
        let runtime = try makeRuntime(dir)
        defer { runtime.shutdown(stopWorkers: true) }
        XCTAssertEqual(try runtime.list().count, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/\(IDs.a).json"))
    }

    /// Starts `sleep 300` in the background the way a worker of `dir`'s runtime runs (the owner
    /// mark and a STREAM_ID in its environment), but behind the runtime's back; waits for its exec.
    func startMarkedSleep(_ dir: String, stream: String) throws -> Int32 {
        let started = runCommand([
            "/bin/sh", "-c",
            "\(ProcessRuntime.ownerVariable)=\(dir) STREAM_ID=\(stream) /usr/bin/sleep 300 >/dev/null 2>&1 & echo $!",
        ])
        let pid = try XCTUnwrap(Int32(started.output.trimmingCharacters(in: .whitespacesAndNewlines)))
        XCTAssertTrue(
            waitUntil(5) { environmentOf(pid)[ProcessRuntime.ownerVariable] == dir && environmentOf(pid)["STREAM_ID"] == stream },
            "the background sleep never exec'd")
        return pid
    }

    /// The API died between spawning a worker and recording its pid: the intent record (pid 0)
    /// and the worker's mark are enough for the next instance to adopt it, not start a second.
    func testAWorkerWhosePidWasNeverRecordedIsAdopted() throws {
        let dir = makeTestFolder("proc-intent")
        let first = try makeRuntime(dir)
        let pid = try pidOf(try first.start(spec(IDs.a, threshold: 2.5)))
        first.shutdown(stopWorkers: false)
        // Roll the record back to what start() writes before its spawn.
        let path = "\(dir)/\(IDs.a).json"
        var record = try JSONDecoder().decode(ProcessRuntime.Record.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        record.pid = 0
        try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: path))

        let log = LogCollector()
        let second = try makeRuntime(dir, log: log)
        defer { second.shutdown(stopWorkers: true) }
        XCTAssertEqual(try second.list().map(\.identifier), [String(pid)], "\(log.all)")
        XCTAssertEqual(try second.list().first?.configHash, spec(IDs.a, threshold: 2.5).configHash)
        let saved = try JSONDecoder().decode(ProcessRuntime.Record.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(saved.pid, pid, "the adopted pid is recorded")
        XCTAssertTrue(processExists(pid))
        // A stop still reaches it (it is no longer our child).
        try second.stop(streamID: IDs.a, timeout: 2)
        XCTAssertFalse(processExists(pid))
    }

    /// Marked workers the state folder does not account for are stopped: one with no record,
    /// and a second one for a stream whose recorded worker runs.
    func testUnknownAndDuplicateWorkersAreStopped() throws {
        let dir = makeTestFolder("proc-unknown")
        let first = try makeRuntime(dir)
        let recorded = try pidOf(try first.start(spec(IDs.a)))
        first.shutdown(stopWorkers: false)
        let duplicate = try startMarkedSleep(dir, stream: IDs.a)
        let unknown = try startMarkedSleep(dir, stream: IDs.b)
        // Another folder's worker is none of this instance's business.
        let foreign = try startMarkedSleep("\(dir)-other", stream: IDs.c)
        defer { kill(foreign, SIGKILL) }

        let log = LogCollector()
        let second = try makeRuntime(dir, log: log)
        defer { second.shutdown(stopWorkers: true) }
        XCTAssertEqual(try second.list().map(\.identifier), [String(recorded)], "\(log.all)")
        XCTAssertTrue(waitUntil(5) { !processExists(duplicate) && !processExists(unknown) }, "\(log.all)")
        XCTAssertTrue(processExists(recorded))
        XCTAssertTrue(processExists(foreign))
        XCTAssertTrue(log.all.contains { $0.contains("pid \(duplicate)") && $0.contains("second worker") }, "\(log.all)")
        XCTAssertTrue(log.all.contains { $0.contains("pid \(unknown)") && $0.contains("no state record") }, "\(log.all)")
    }

    /// A state folder that a live runtime holds is refused, by this process or by another one.
    func testALockedStateFolderIsRefused() throws {
        let dir = makeTestFolder("proc-lock")
        let first = try makeRuntime(dir)
        XCTAssertThrowsError(try makeRuntime(dir)) { error in
            XCTAssertTrue("\(error)".contains("in use by another vectorflow-api (pid \(getpid()))"), "\(error)")
        }
        first.shutdown(stopWorkers: true)
        try makeRuntime(dir).shutdown(stopWorkers: true)

        // Another process holding the lock (flock(1), the same kernel lock).
        let holder = runCommand([
            "/bin/sh", "-c", "flock \(dir)/.lock sleep 300 >/dev/null 2>&1 & echo $!",
        ])
        let pid = try XCTUnwrap(Int32(holder.output.trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(pid, SIGKILL) }
        // flock(1) takes the lock a moment after it starts: until then an instance may open.
        var refusal = ""
        XCTAssertTrue(
            waitUntil(5) {
                do {
                    try makeRuntime(dir).shutdown(stopWorkers: true)
                    return false
                } catch {
                    refusal = "\(error)"
                    return true
                }
            })
        XCTAssertTrue(refusal.contains("in use by another vectorflow-api"), refusal)
    }

    func testTheStateFolderIsAbsoluteAndPrivate() throws {
        let relative = ProcessRuntimeConfiguration(workerBinary: "/usr/bin/sleep", stateDirectory: "some/state")
        XCTAssertEqual(relative.stateDirectory, FileManager.default.currentDirectoryPath + "/some/state")
        XCTAssertTrue(relative.logDirectory.hasPrefix("/"))
        XCTAssertTrue(ProcessRuntimeConfiguration.defaultStateDirectory.hasPrefix("/"))
        let dir = makeTestFolder("proc-private")
        let runtime = try makeRuntime(dir)
        defer { runtime.shutdown(stopWorkers: true) }
        _ = try runtime.start(spec(IDs.a, url: "rtsp://admin:secret@127.0.0.1/cam"))
        let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: "\(dir)/\(IDs.a).json")[.posixPermissions] as? Int)
        XCTAssertEqual(mode & 0o077, 0, "the record holds the stream URL: owner only")
        let logMode = try XCTUnwrap(
            FileManager.default.attributesOfItem(atPath: runtime.logPath(streamID: IDs.a))[.posixPermissions] as? Int)
        XCTAssertEqual(logMode & 0o077, 0)
    }

    func testMissingBinaryIsAClearError() throws {
        let runtime = try makeRuntime(makeTestFolder("proc-missing"), binary: "/nonexistent/vectorflow-worker")
        defer { runtime.shutdown(stopWorkers: true) }
        XCTAssertThrowsError(try runtime.prepare()) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/vectorflow-worker"))
        }
        XCTAssertThrowsError(try runtime.start(spec(IDs.a))) { error in
            XCTAssertTrue("\(error)".contains("No such file"), "\(error)")
        }
    }
}

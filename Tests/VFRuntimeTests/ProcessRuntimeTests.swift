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
    ) -> ProcessRuntime {
        ProcessRuntime(
            configuration: ProcessRuntimeConfiguration(
                workerBinary: binary, arguments: arguments, stateDirectory: state, redisURL: "redis://127.0.0.1:1/0",
                stopGrace: grace, restartBackoff: Backoff(initial: 0.2, maximum: 1), monitorInterval: 0.05),
            log: log.sink)
    }

    func testStartListStopReapsAndCleansUp() throws {
        let dir = makeTestFolder("proc-lifecycle")
        let runtime = makeRuntime(dir)
        defer { runtime.shutdown(stopWorkers: true) }
        // A descriptor without O_CLOEXEC, as an API's listening socket might be: must not leak.
        let leaky = open("/dev/null", O_RDONLY)
        defer { close(leaky) }
        let info = try runtime.start(spec(IDs.a, threshold: 2.5))
        let pid = Int32(info.identifier)!
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")), ["0", "1", "2"])
        XCTAssertTrue(processExists(pid))
        XCTAssertEqual(info.state, .running)
        XCTAssertEqual(info.name, "vector-worker-\(IDs.a)")

        let env = environmentOf(pid)
        XCTAssertEqual(env["STREAM_ID"], IDs.a)
        XCTAssertEqual(env["THRESHOLD"], "2.5")
        XCTAssertEqual(env["METRICS_HOST"], "127.0.0.1")
        XCTAssertEqual(env["REDIS_URL"], "redis://127.0.0.1:1/0")
        XCTAssertEqual(info.metricsTarget, "127.0.0.1:\(env["METRICS_PORT"]!)")
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
        let runtime = makeRuntime(dir, log: log)
        defer { runtime.shutdown(stopWorkers: true) }
        let first = Int32(try runtime.start(spec(IDs.a)).identifier)!
        let port = try runtime.list()[0].metricsTarget
        kill(first, SIGKILL)
        var replaced: WorkerInfo?
        XCTAssertTrue(
            waitUntil(5) {
                replaced = try? runtime.list().first
                return replaced?.state == .running && replaced?.identifier != String(first)
            }, "log: \(log.all)")
        let second = Int32(replaced!.identifier)!
        XCTAssertTrue(processExists(second))
        XCTAssertFalse(isZombie(first), "the killed child must be reaped")
        XCTAssertFalse(processExists(first))
        XCTAssertEqual(replaced?.metricsTarget, port, "a restart keeps the scrape target")
        XCTAssertTrue(log.all.contains { $0.contains("pid \(first) killed by signal 9; restarting in") }, "\(log.all)")
    }

    func testStopEscalatesToSIGKILLAfterGrace() throws {
        let dir = makeTestFolder("proc-sigkill")
        // A worker that ignores SIGTERM (and whose children inherit that).
        let runtime = makeRuntime(
            dir, binary: "/bin/sh", arguments: ["-c", "trap '' TERM; while :; do sleep 0.05; done"], grace: 0.6)
        defer { runtime.shutdown(stopWorkers: true) }
        let pid = Int32(try runtime.start(spec(IDs.b)).identifier)!
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
        let first = makeRuntime(dir)
        let a = Int32(try first.start(spec(IDs.a)).identifier)!
        let b = Int32(try first.start(spec(IDs.b)).identifier)!
        // A stale record of a worker that died while no API ran: must be dropped, not adopted.
        let c = Int32(try first.start(spec(IDs.c)).identifier)!
        first.shutdown(stopWorkers: false)  // the API goes away; workers keep running
        kill(c, SIGKILL)
        XCTAssertTrue(waitUntil(2) { !processExists(c) })

        let store = JSONFileStore(path: "\(dir)/streams.json", rows: [JSONFileStore.row(IDs.a)])  // b was deleted meanwhile
        let second = makeRuntime(dir)
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
        XCTAssertTrue(waitUntil(2) { processExists(pid) })
        XCTAssertNotEqual(getppid(), pid)
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, WNOHANG), -1, "not our child")
        let record = ProcessRuntime.Record(
            spec: spec(IDs.a), pid: pid, configHash: spec(IDs.a).configHash,
            metricsPort: 1, startedAt: 0, binary: "/usr/bin/sleep")
        try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: "\(dir)/\(IDs.a).json"))

        let runtime = makeRuntime(dir)
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
        let child = Int32(replaced!.identifier)!
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
        let runtime = makeRuntime(dir)
        defer { runtime.shutdown(stopWorkers: true) }
        XCTAssertEqual(try runtime.list().count, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/\(IDs.a).json"))
    }

    func testMissingBinaryIsAClearError() {
        let runtime = makeRuntime(makeTestFolder("proc-missing"), binary: "/nonexistent/vectorflow-worker")
        defer { runtime.shutdown(stopWorkers: true) }
        XCTAssertThrowsError(try runtime.prepare()) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/vectorflow-worker"))
        }
        XCTAssertThrowsError(try runtime.start(spec(IDs.a))) { error in
            XCTAssertTrue("\(error)".contains("No such file"), "\(error)")
        }
    }
}

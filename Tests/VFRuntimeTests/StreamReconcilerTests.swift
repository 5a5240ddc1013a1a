import Foundation
import Glibc
import VFCore
import VFTestSupport
import XCTest

@testable import VFRuntime

/// The reconciler against a real desired-state file and real processes.
final class StreamReconcilerTests: XCTestCase {
    func makeRuntime(_ dir: String) throws -> ProcessRuntime {
        try ProcessRuntime(
            configuration: ProcessRuntimeConfiguration(
                workerBinary: "/usr/bin/sleep", arguments: ["300"], stateDirectory: "\(dir)/state",
                stopGrace: 2, restartBackoff: Backoff(initial: 0.2, maximum: 1), monitorInterval: 0.05), log: { _ in })
    }

    func targets(_ path: String) throws -> [[String: Any]] {
        try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [[String: Any]])
    }

    func testFollowsTheDesiredState() throws {
        let dir = makeTestFolder("reconcile")
        let store = JSONFileStore(
            path: "\(dir)/streams.json",
            rows: [
                JSONFileStore.row(IDs.a), JSONFileStore.row(IDs.b), JSONFileStore.row(IDs.c, active: false),
            ])
        let runtime = try makeRuntime(dir)
        defer { runtime.shutdown(stopWorkers: true) }
        let sdPath = "\(dir)/file_sd/workers.json"
        let reconciler = StreamReconciler(
            store: store, runtime: runtime, fileSD: FileSDWriter(path: sdPath), stopTimeout: 2,
            log: { _ in })

        // Start: what is missing is started and recorded; file_sd lists both.
        var report = reconciler.reconcileNow()
        XCTAssertEqual(report.started, [IDs.a, IDs.b])
        XCTAssertTrue(report.fileSDChanged)
        XCTAssertEqual(try runtime.list().map(\.streamID), [IDs.a, IDs.b])
        XCTAssertEqual(store.row(IDs.a)?.worker_container_name, "vector-worker-\(IDs.a)")
        XCTAssertNotNil(store.row(IDs.a)?.worker_started_at)
        XCTAssertNil(store.row(IDs.c)?.worker_container_name)
        let sd = try targets(sdPath)
        XCTAssertEqual(sd.map { ($0["labels"] as? [String: String])?["stream_id"] }, [IDs.a, IDs.b])
        let runningTargets = try runtime.list().compactMap(\.metricsTarget)
        XCTAssertEqual(sd.map { ($0["targets"] as? [String])?.first ?? "" }, runningTargets)

        // Nothing changed: nothing is touched, the file is not rewritten.
        let pidA = try pidOf(try runtime.list().first)
        let mtime = try FileManager.default.attributesOfItem(atPath: sdPath)[.modificationDate] as? Date
        report = reconciler.reconcileNow()
        XCTAssertEqual(report.started, [])
        XCTAssertEqual(report.stopped, [])
        XCTAssertFalse(report.fileSDChanged)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: sdPath)[.modificationDate] as? Date, mtime)

        // The threshold of a changes: its worker is replaced (new process, new hash).
        try store.update { $0[0].threshold = 3.0 }
        report = reconciler.reconcileNow()
        XCTAssertEqual(report.started, [IDs.a])
        let a2 = try pidOf(try runtime.list().first { $0.streamID == IDs.a })
        XCTAssertNotEqual(a2, pidA)
        XCTAssertFalse(processExists(pidA))
        XCTAssertEqual(environmentOf(a2)["THRESHOLD"], "3.0")

        // b is deactivated, c activated: b stops and its record is cleared; c starts.
        try store.update { rows in
            rows[1].is_active = false
            rows[2].is_active = true
        }
        report = reconciler.reconcileNow()
        XCTAssertEqual(report.stopped, [IDs.b])
        XCTAssertEqual(report.started, [IDs.c])
        XCTAssertNil(store.row(IDs.b)?.worker_container_name)
        XCTAssertNil(store.row(IDs.b)?.worker_started_at)
        XCTAssertEqual(try runtime.list().map(\.streamID), [IDs.a, IDs.c])
        XCTAssertEqual(try targets(sdPath).map { ($0["labels"] as? [String: String])?["stream_id"] }, [IDs.a, IDs.c])

        // c is deleted from the database: its worker is an orphan.
        try store.update { $0.remove(at: 2) }
        report = reconciler.reconcileNow()
        XCTAssertEqual(report.stopped, [IDs.c])
        XCTAssertEqual(try runtime.list().map(\.streamID), [IDs.a])

        // An unreadable desired state changes nothing (never "stop everything").
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: store.path))
        report = reconciler.reconcileNow()
        XCTAssertNotNil(report.failure)
        XCTAssertEqual(try runtime.list().map(\.streamID), [IDs.a])
    }

    func testThreadReplacesKilledWorkerAndCoalescesKicks() throws {
        let dir = makeTestFolder("reconcile-thread")
        let store = JSONFileStore(path: "\(dir)/streams.json", rows: [JSONFileStore.row(IDs.a)])
        let runtime = try makeRuntime(dir)
        defer { runtime.shutdown(stopWorkers: true) }
        let reconciler = StreamReconciler(
            store: store, runtime: runtime, fileSD: FileSDWriter(path: "\(dir)/sd.json"),
            interval: 0.5, stopTimeout: 2, log: { _ in })
        reconciler.start()
        defer { reconciler.stop() }
        XCTAssertTrue(waitUntil(5) { (try? runtime.list().first?.state) == .running })
        let pid = try pidOf(try runtime.list().first)

        kill(pid, SIGKILL)
        XCTAssertTrue(
            waitUntil(5) {
                guard let w = try? runtime.list().first else { return false }
                return w.state == .running && w.identifier != String(pid)
            })
        XCTAssertFalse(isZombie(pid))
        XCTAssertEqual(try runtime.list().count, 1, "replaced, not duplicated")
        // The restart the runtime did on its own reaches the database at the next pass.
        let restartedAt = try XCTUnwrap(try runtime.list().first?.startedAt)
        XCTAssertTrue(waitUntil(3) { abs((store.row(IDs.a)?.worker_started_at ?? 0) - restartedAt) < 0.001 })

        // Many kicks during a run collapse into few runs; every waiter hears back.
        let done = DispatchGroup()
        let readsBefore = store.reads
        for _ in 0..<50 {
            done.enter()
            reconciler.kick { _ in done.leave() }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        XCTAssertLessThan(store.reads - readsBefore, 10, "kicks must be coalesced")

        // A kick after a change is reflected in the report handed to the waiter.
        try store.update { $0[0].is_active = false }
        let stopped = expectation(description: "report")
        reconciler.kick { report in
            XCTAssertEqual(report.stopped, [IDs.a])
            stopped.fulfill()
        }
        wait(for: [stopped], timeout: 10)
        XCTAssertEqual(try runtime.list().count, 0)
    }

    /// A runtime that cannot get ready is retried at once on a kick, but only after a growing
    /// delay by the periodic passes. `CountingRuntime` forwards to a real ProcessRuntime.
    func testFailedPrepareIsRetriedWithBackoffUnlessForced() throws {
        let dir = makeTestFolder("reconcile-prepare")
        let store = JSONFileStore(path: "\(dir)/streams.json", rows: [JSONFileStore.row(IDs.a)])
        let real = try ProcessRuntime(
            configuration: ProcessRuntimeConfiguration(
                workerBinary: "\(dir)/not-built-yet/vectorflow-worker", stateDirectory: "\(dir)/state"), log: { _ in })
        defer { real.shutdown(stopWorkers: true) }
        let runtime = CountingRuntime(real)
        let reconciler = StreamReconciler(store: store, runtime: runtime, fileSD: nil, log: { _ in })
        let first = reconciler.reconcileNow(forced: false)
        XCTAssertEqual(first.errors[IDs.a]?.kind, .local)
        XCTAssertTrue(first.errors[IDs.a]?.message.contains("not-built-yet") ?? false)
        XCTAssertEqual(runtime.prepares, 1)
        XCTAssertNotNil(reconciler.reconcileNow(forced: false).failure)
        XCTAssertEqual(runtime.prepares, 1, "a periodic pass waits for the backoff")
        _ = reconciler.reconcileNow(forced: true)
        XCTAssertEqual(runtime.prepares, 2, "a kick retries at once")
    }
}

/// Forwards to a real runtime and counts `prepare()` calls.
final class CountingRuntime: WorkerRuntime, @unchecked Sendable {
    // @unchecked: `count` is guarded by `lock`.
    let inner: any WorkerRuntime
    private let lock = NSLock()
    private var count = 0
    init(_ inner: any WorkerRuntime) { self.inner = inner }
    var kind: String { inner.kind }
    var prepares: Int { lock.withLock { count } }
    func prepare() throws(RuntimeError) {
        lock.withLock { count += 1 }
        try inner.prepare()
    }
    func list() throws(RuntimeError) -> [WorkerInfo] { try inner.list() }
    func start(_ spec: WorkerSpec) throws(RuntimeError) -> WorkerInfo { try inner.start(spec) }
    func stop(streamID: String, timeout: Double) throws(RuntimeError) {
        try inner.stop(streamID: streamID, timeout: timeout)
    }
}

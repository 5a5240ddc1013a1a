import Foundation
import Glibc
import VFCore
import VFTestSupport
import XCTest

@testable import VFRuntime

/// The process runtime with the project's real `vectorflow-worker` (built next to this test
/// bundle by `swift build --build-tests`) on a real sample video: the worker serves /health and
/// /metrics on the loopback port the runtime gave it, and stops on SIGTERM well within the grace.
final class RealWorkerTests: XCTestCase {
    func testRealWorkerUnderTheProcessRuntime() throws {
        guard let worker = builtWorker() else {
            throw XCTSkip("no vectorflow-worker next to the tests (build the package's products first)")
        }
        guard let samples = samplesDirectory(holding: "vtest.avi") else {
            throw XCTSkip("VF_SAMPLES_DIR with vtest.avi is not set (scripts/fetch-samples.sh)")
        }
        let dir = makeTestFolder("real-worker")
        let runtime = try ProcessRuntime(
            configuration: ProcessRuntimeConfiguration(
                workerBinary: worker, stateDirectory: dir, redisURL: "redis://127.0.0.1:1/0", stopGrace: 5,
                restartBackoff: Backoff(initial: 0.2, maximum: 1), monitorInterval: 0.05), log: { _ in })
        defer { runtime.shutdown(stopWorkers: true) }
        let info = try runtime.start(spec(IDs.a, url: "file://\(samples)/vtest.avi"))
        let target = try XCTUnwrap(info.metricsTarget)
        let http = CurlHTTP(dockerHost: "http://\(target)", service: "worker metrics")
        XCTAssertTrue(
            waitUntil(15) { (try? http.request("GET", "/health", timeout: 1))?.status == 200 },
            "worker log: \((try? String(contentsOfFile: runtime.logPath(streamID: IDs.a), encoding: .utf8)) ?? "")")
        let metrics = try http.request("GET", "/metrics", timeout: 2)
        let text = String(decoding: metrics.body, as: UTF8.self)
        XCTAssertTrue(text.contains("stream_id=\"\(IDs.a)\""), text)

        let pid = try XCTUnwrap(Int32(info.identifier))
        let t0 = monotonicNow()
        try runtime.stop(streamID: IDs.a, timeout: 5)
        XCTAssertLessThan(monotonicNow() - t0, 2.5, "the worker must exit on SIGTERM within 2 s")
        XCTAssertFalse(processExists(pid))
        XCTAssertFalse(isZombie(pid))
    }
}

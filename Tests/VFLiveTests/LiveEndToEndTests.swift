import Foundation
import Glibc
import VFBus
import VFNet
import VFRuntime
import VFTestSupport
import VFCore
import XCTest

@testable import VFLive

/// The whole live path with real parts: the process runtime starts the real `vectorflow-worker`
/// on a sample video, the worker publishes to a real redis-server once the broadcaster marks the
/// stream as watched, and a WebSocket viewer receives the worker's frame envelopes.
final class LiveEndToEndTests: XCTestCase {
    func testViewerReceivesFramesOfARealWorker() throws {
        guard let worker = builtWorker() else {
            throw XCTSkip("no vectorflow-worker next to the tests (build the package's products first)")
        }
        guard let samples = samplesDirectory(holding: "vtest.avi") else {
            throw XCTSkip("VF_SAMPLES_DIR with vtest.avi is not set (scripts/fetch-samples.sh)")
        }
        guard let redis = RedisProcess() else { throw XCTSkip("redis-server is not installed") }
        defer { redis.stop() }

        let broadcaster = try FrameBroadcaster(redisURL: redis.url, log: { _ in })
        broadcaster.start()
        defer { broadcaster.stop() }
        let (server, port) = try serveFrames(broadcaster, loops: 1)
        defer { server.stop() }

        let state = NSTemporaryDirectory() + "vf-live-e2e-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let runtime = try ProcessRuntime(
            configuration: ProcessRuntimeConfiguration(
                workerBinary: worker, stateDirectory: state, redisURL: redis.url),
            log: { _ in })
        defer { runtime.shutdown(stopWorkers: true) }
        let id = "eeeeeeee-0000-4000-8000-00000000000e"
        _ = try runtime.start(
            WorkerSpec(
                streamID: id, streamName: "e2e", settings: StreamSettings(source: "file://\(samples)/vtest.avi"))
        )

        let viewer = try TestWebSocketClient(port: port, target: "/ws/frames?stream_id=\(id)")
        XCTAssertEqual(viewer.handshakeStatus, 101)
        viewer.setTimeout(15)
        let logPath = runtime.logPath(streamID: id)
        let message = try XCTUnwrap(
            try? viewer.receive(),
            "no frame; worker log: \((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")")
        XCTAssertEqual(message.opcode, 2)
        let frame = message.payload
        let n = Int(frame[0]) << 24 | Int(frame[1]) << 16 | Int(frame[2]) << 8 | Int(frame[3])
        let header = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(frame[4..<(4 + n)])) as? [String: Any])
        XCTAssertEqual(header["stream_id"] as? String, id)
        XCTAssertEqual(Array(frame[(4 + n)..<(6 + n)]), [0xFF, 0xD8], "JPEG bytes follow the header")
        // A second frame keeps coming while the viewer watches.
        XCTAssertNoThrow(try viewer.receive())
    }
}

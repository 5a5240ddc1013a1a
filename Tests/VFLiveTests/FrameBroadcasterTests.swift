import Foundation
import Glibc
import VFBus
import VFCore
import VFNet
import VFTestSupport
import XCTest

@testable import VFLive

/// The broadcaster with a real redis-server, a real VFNet server and real WebSocket clients.
final class FrameBroadcasterTests: XCTestCase {
    static let x = "aaaaaaaa-0000-4000-8000-000000000001"
    static let y = "bbbbbbbb-0000-4000-8000-000000000002"
    static let z = "cccccccc-0000-4000-8000-000000000003"

    var redis: RedisProcess!
    var broadcaster: FrameBroadcaster!
    var server: HTTPServer!
    var port = 0
    var publisher: RedisClient!

    override func setUpWithError() throws {
        guard let r = RedisProcess() else { throw XCTSkip("redis-server is not installed (scripts/install-deps.sh)") }
        redis = r
        broadcaster = try FrameBroadcaster(redisURL: r.url, viewerTTL: 10, refreshInterval: 3, log: { _ in })
        broadcaster.start()
        (server, port) = try serveFrames(broadcaster, loops: 2)
        publisher = try RedisClient(url: r.url)
        XCTAssertTrue(subscriptionIsUp(publisher))
    }

    override func tearDown() {
        server?.stop()
        broadcaster?.stop()
        redis?.stop()
    }

    func publish(_ id: String, seq: Int, bytes: Int = 2000) {
        _ = publisher.publish(
            channel: "vectorflow:frames:\(id)", payload: envelope(streamID: id, seq: seq, jpegBytes: bytes))
    }

    func testClientsReceiveOnlyTheirStreamAndAllStreamsClientsEverything() throws {
        let onX = try TestWebSocketClient(port: port, target: "/ws/frames?stream_id=\(Self.x)")
        let onY = try TestWebSocketClient(port: port, target: "/ws/frames?stream_id=\(Self.y.uppercased())")
        let onAll = try TestWebSocketClient(port: port, target: "/ws/frames")
        XCTAssertEqual([onX.handshakeStatus, onY.handshakeStatus, onAll.handshakeStatus], [101, 101, 101])
        XCTAssertTrue(waitUntil(2) { self.broadcaster.viewerCount == 3 })

        // Interleaved frames of x, y and z; each envelope must arrive byte for byte.
        var sent: [String: [[UInt8]]] = [:]
        for seq in 0..<30 {
            for id in [Self.x, Self.y, Self.z] {
                let payload = envelope(streamID: id, seq: seq, jpegBytes: 3000 + seq)
                sent[id, default: []].append(payload)
                _ = publisher.publish(channel: "vectorflow:frames:\(id)", payload: payload)
                // Cameras are paced and out of phase. ("Latest wins" is per client: frames of
                // several streams arriving within microseconds would leave an all-streams
                // client only the last of them.)
                usleep(2000)
            }
        }
        func drain(_ c: TestWebSocketClient) -> [[UInt8]] {
            c.setTimeout(0.5)
            var got: [[UInt8]] = []
            while let m = try? c.receive() {
                XCTAssertEqual(m.opcode, 2, "frames are binary messages")
                got.append(m.payload)
            }
            return got
        }
        let gotX = drain(onX)
        let gotY = drain(onY)
        let gotAll = drain(onAll)
        XCTAssertFalse(gotX.isEmpty)
        XCTAssertTrue(
            gotX.allSatisfy { parseEnvelope($0)?.0 == Self.x }, "a client of x received another stream's frame")
        XCTAssertTrue(
            gotY.allSatisfy { parseEnvelope($0)?.0 == Self.y }, "a client of y received another stream's frame")
        XCTAssertTrue(gotX.allSatisfy { sent[Self.x, default: []].contains($0) }, "forwarded verbatim")
        XCTAssertEqual(gotX.last, sent[Self.x]?.last, "the newest frame always arrives")
        XCTAssertEqual(gotY.last, sent[Self.y]?.last)
        XCTAssertEqual(Set(gotAll.compactMap { parseEnvelope($0)?.0 }), [Self.x, Self.y, Self.z])
        XCTAssertGreaterThanOrEqual(gotX.count, 20, "paced frames are not dropped")
    }

    func testMalformedStreamIDIsRefused() throws {
        let bad = try TestWebSocketClient(port: port, target: "/ws/frames?stream_id=not-a-uuid")
        XCTAssertEqual(bad.handshakeStatus, 400)
        let injected = try TestWebSocketClient(port: port, target: "/ws/frames?stream_id=*")
        XCTAssertEqual(injected.handshakeStatus, 400)
        XCTAssertEqual(broadcaster.viewerCount, 0)
    }

    func testViewerMarkersFollowTheViewers() throws {
        let key = "vectorflow:viewers:\(Self.x)"
        func ttl(_ k: String) -> Int {
            if case .integer(let n) = (try? publisher.command(["TTL", k])) ?? .null { return n }
            return -3
        }
        XCTAssertEqual(ttl(key), -2, "no marker before anyone watches")
        var client: TestWebSocketClient? = try TestWebSocketClient(port: port, target: "/ws/frames?stream_id=\(Self.x)")
        XCTAssertEqual(client?.handshakeStatus, 101)
        // The first viewer is marked at once, not at the next refresh.
        XCTAssertTrue(waitUntil(1) { (1...10).contains(ttl(key)) }, "ttl \(ttl(key))")
        // Refreshed while watched: after 4.5 s (> one refresh) the TTL is back near 10.
        usleep(4_500_000)
        XCTAssertGreaterThanOrEqual(ttl(key), 7)
        client = nil  // the viewer leaves
        XCTAssertTrue(waitUntil(2) { ttl(key) == -2 }, "the marker goes when the last viewer leaves")

        // An "all streams" client marks the streams it receives.
        let all = try TestWebSocketClient(port: port, target: "/ws/frames")
        XCTAssertEqual(all.handshakeStatus, 101)
        XCTAssertTrue(waitUntil(2) { self.broadcaster.viewerCount == 1 })
        publish(Self.z, seq: 1)
        XCTAssertTrue(waitUntil(2) { (1...10).contains(ttl("vectorflow:viewers:\(Self.z)")) })
    }

    func testStatusesReadTheWorkerHashes() throws {
        _ = try publisher.command([
            "HSET", "vectorflow:status:\(Self.x)", "state", "running", "fps", "9.8",
            "last_error", "", "updated_at", "1764300000.5",
        ])
        _ = try publisher.command([
            "HSET", "vectorflow:status:\(Self.y)", "state", "error", "last_error", "cannot open source",
        ])
        let s = broadcaster.statuses(for: [Self.x, Self.y, Self.z])
        XCTAssertEqual(s[Self.x], StreamStatus(state: "running", fps: 9.8, lastError: nil, updatedAt: 1764300000.5))
        XCTAssertEqual(
            s[Self.y], StreamStatus(state: "error", fps: nil, lastError: "cannot open source", updatedAt: nil))
        XCTAssertNil(s[Self.z])
        XCTAssertEqual(broadcaster.statuses(for: []), [:])
        // Many streams, one round trip: still right.
        let many = (0..<50).map { String(format: "dddddddd-0000-4000-8000-%012d", $0) }
        for id in many where (Int(id.suffix(2)) ?? 1) % 2 == 0 {
            _ = try publisher.command([
                "HSET", "vectorflow:status:\(id)", "state", "running", "fps", id.suffix(2).description,
            ])
        }
        let got = broadcaster.statuses(for: many)
        XCTAssertEqual(got.count, 25)
        XCTAssertEqual(got[many[10]]?.fps, 10)
        XCTAssertNil(got[many[11]])
    }

    /// A cluster runtime's task (`vectorflow:task:<id>`) rides along with the worker's status; a
    /// task without a worker status yet shows as starting; without a task there is none.
    func testStatusesCarryTheClusterTask() throws {
        _ = try publisher.command(["HSET", "vectorflow:status:\(Self.x)", "state", "running", "fps", "10"])
        _ = try publisher.command([
            "HSET", "vectorflow:task:\(Self.x)", "state", "running", "node", "edge-1", "node_id", "n1id", "error", "",
        ])
        _ = try publisher.command([
            "HSET", "vectorflow:task:\(Self.y)", "state", "rejected", "node", "", "node_id", "n2id",
            "error", "No such image: r:5000/w@sha256:ab",
        ])
        let s = broadcaster.statuses(for: [Self.x, Self.y, Self.z])
        XCTAssertEqual(
            s[Self.x],
            StreamStatus(
                state: "running", fps: 10, task: TaskStatus(state: "running", node: "edge-1", nodeID: "n1id", error: nil)))
        XCTAssertEqual(
            s[Self.y],
            StreamStatus(
                state: "starting",
                task: TaskStatus(state: "rejected", node: nil, nodeID: "n2id", error: "No such image: r:5000/w@sha256:ab")))
        XCTAssertNil(s[Self.z])
        // A status without a task (the local runtimes): no task at all.
        _ = try publisher.command(["HSET", "vectorflow:status:\(Self.z)", "state", "connecting"])
        XCTAssertNil(try XCTUnwrap(broadcaster.statuses(for: [Self.z])[Self.z]).task)
    }

    /// A viewer that never reads must neither delay the others nor make the server hold its frames.
    func testAStalledViewerDoesNotSlowOthersNorGrowMemory() throws {
        let stalled = try TestWebSocketClient(port: port, target: "/ws/frames?stream_id=\(Self.x)", receiveBuffer: 4096)
        let fast = try TestWebSocketClient(port: port, target: "/ws/frames?stream_id=\(Self.x)")
        XCTAssertEqual([stalled.handshakeStatus, fast.handshakeStatus], [101, 101])
        XCTAssertTrue(waitUntil(2) { self.broadcaster.viewerCount == 2 })

        final class Received: @unchecked Sendable {
            // @unchecked: written by the reader thread, read after `done` is signalled.
            var lastSeq = -1
            var count = 0
            var lastAt = 0.0
        }
        let received = Received()
        let done = DispatchSemaphore(value: 0)
        let frames = 400
        let size = 100_000
        let reader = Thread {
            fast.setTimeout(3)
            while let m = try? fast.receive() {
                if let (_, seq) = parseEnvelope(m.payload) {
                    received.lastSeq = seq
                    received.count += 1
                    received.lastAt = monotonicNow()
                    if seq == frames - 1 { break }
                }
            }
            done.signal()
        }
        let rssBefore = residentBytes()
        reader.start()
        var publishedLastAt = 0.0
        for seq in 0..<frames {
            publish(Self.x, seq: seq, bytes: size)
            publishedLastAt = monotonicNow()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success)
        let growth = residentBytes() - rssBefore
        XCTAssertEqual(received.lastSeq, frames - 1, "the fast viewer gets the newest frame")
        XCTAssertLessThan(received.lastAt - publishedLastAt, 1.0, "…promptly, whatever the stalled one does")
        // 40 MB went through; a server queueing for the stalled viewer would hold most of it.
        XCTAssertLessThan(growth, 20_000_000, "resident memory grew by \(growth) bytes")
        print(
            "fan-out: fast viewer got \(received.count)/\(frames) frames of \(size) B; RSS growth \(growth / 1024) KiB")
        XCTAssertEqual(broadcaster.viewerCount, 2)
    }
}

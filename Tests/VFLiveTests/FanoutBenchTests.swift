import Foundation
import Glibc
import VFBus
import VFCore
import VFNet
import VFTestSupport
import XCTest

@testable import VFLive

/// bench/fanout: frames published to Redis for S streams, fanned out to C viewers per stream.
/// Runs only with VF_BENCH=1 (bench/fanout/run.sh); prints one JSON line with the figures.
final class FanoutBenchTests: XCTestCase {
    func testFanoutThroughput() throws {
        let env = ProcessInfo.processInfo.environment
        guard env["VF_BENCH"] == "1" else { throw XCTSkip("benchmark: set VF_BENCH=1 (bench/fanout/run.sh)") }
        let streams = Int(env["VF_BENCH_STREAMS"] ?? "") ?? 4
        let viewers = Int(env["VF_BENCH_VIEWERS"] ?? "") ?? 8
        let frameBytes = Int(env["VF_BENCH_FRAME_BYTES"] ?? "") ?? 60_000
        let seconds = Double(env["VF_BENCH_SECONDS"] ?? "") ?? 3
        /// Frames per second per stream; 0 = as fast as Redis takes them (capacity).
        let fps = Double(env["VF_BENCH_FPS"] ?? "") ?? 0
        guard let redis = RedisProcess() else { throw XCTSkip("redis-server is not installed") }
        defer { redis.stop() }
        let broadcaster = try FrameBroadcaster(redisURL: redis.url, log: { _ in })
        broadcaster.start()
        defer { broadcaster.stop() }
        let (server, port) = try serveFrames(broadcaster, loops: HTTPServerConfiguration().loopCount)
        defer { server.stop() }
        let publisher = try RedisClient(url: redis.url)
        XCTAssertTrue(subscriptionIsUp(publisher))
        let ids = (0..<streams).map { String(format: "00000000-0000-4000-8000-%012d", $0) }

        final class Counter: @unchecked Sendable {
            // @unchecked: guarded by `lock`.
            let lock = NSLock()
            var frames = 0
            var latencies: [Double] = []
        }
        let counter = Counter()
        let stop = DispatchSemaphore(value: 0)
        var threads: [Thread] = []
        let finished = DispatchGroup()
        for id in ids {
            for _ in 0..<viewers {
                let client = try TestWebSocketClient(port: port, target: "/ws/frames?stream_id=\(id)")
                XCTAssertEqual(client.handshakeStatus, 101)
                finished.enter()
                let t = Thread {
                    client.setTimeout(1)
                    var local = 0
                    var lat: [Double] = []
                    while let m = try? client.receive() {
                        local += 1
                        // The header carries the publish time (monotonic, same machine).
                        if let sent = Self.sentAt(m.payload) { lat.append(monotonicNow() - sent) }
                    }
                    counter.lock.lock()
                    counter.frames += local
                    counter.latencies += lat
                    counter.lock.unlock()
                    finished.leave()
                }
                threads.append(t)
            }
        }
        XCTAssertTrue(waitUntil(5) { broadcaster.viewerCount == streams * viewers })
        threads.forEach { $0.start() }
        let jpeg = [UInt8](repeating: 0x55, count: frameBytes)
        var published = 0
        let t0 = monotonicNow()
        var round = 0.0
        while monotonicNow() - t0 < seconds {
            if fps > 0 {
                round += 1
                let due = t0 + round / fps
                if due > monotonicNow() { usleep(useconds_t((due - monotonicNow()) * 1e6)) }
            }
            for id in ids {
                let header = Array("{\"stream_id\":\"\(id)\",\"sent\":\(monotonicNow())}".utf8)
                let n = UInt32(header.count)
                let payload =
                    [UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)] + header + jpeg
                _ = publisher.publish(channel: "vectorflow:frames:\(id)", payload: payload)
                published += 1
            }
        }
        let elapsed = monotonicNow() - t0
        _ = stop
        XCTAssertEqual(finished.wait(timeout: .now() + 10), .success)
        let lat = counter.latencies.sorted()
        let p50 = lat.isEmpty ? 0 : lat[lat.count / 2] * 1000
        let p99 = lat.isEmpty ? 0 : lat[min(lat.count - 1, lat.count * 99 / 100)] * 1000
        let offered = Double(published * viewers) / elapsed
        let delivered = Double(counter.frames) / elapsed
        print(
            String(
                format:
                    "{\"streams\":%d,\"fps_per_stream\":%.0f,\"viewers_per_stream\":%d,\"frame_bytes\":%d,\"published_fps\":%.0f,"
                    + "\"offered_msgs_per_s\":%.0f,\"delivered_msgs_per_s\":%.0f,\"delivered_ratio\":%.3f,"
                    + "\"delivered_MB_per_s\":%.1f,\"latency_p50_ms\":%.2f,\"latency_p99_ms\":%.2f}",
                streams, fps, viewers, frameBytes, Double(published) / elapsed, offered, delivered,
                delivered / max(offered, 1),
                delivered * Double(frameBytes) / 1e6, p50, p99))
        XCTAssertGreaterThan(counter.frames, 0)
    }

    static func sentAt(_ bytes: [UInt8]) -> Double? {
        guard bytes.count >= 4 else { return nil }
        let n = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
        guard bytes.count >= 4 + n,
            let obj = try? JSONSerialization.jsonObject(with: Data(bytes[4..<(4 + n)])) as? [String: Any]
        else { return nil }
        return obj["sent"] as? Double
    }
}

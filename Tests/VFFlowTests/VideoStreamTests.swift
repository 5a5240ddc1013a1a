import Foundation
import VFTestSupport
import XCTest

@testable import VFFlow

/// Exercises the OpenCV shim on real files: an image pair with a known shift made on the fly, and
/// the failure paths, which must come back as Swift errors rather than C++ exceptions.
final class VideoStreamTests: XCTestCase {
    func testMissingSourceAndImageAreErrors() {
        let s = VideoStream()
        XCTAssertThrowsError(try s.open("/nonexistent/video.avi", openTimeout: 1, readTimeout: 1))
        XCTAssertThrowsError(try s.loadImage("/nonexistent/image.png"))
        XCTAssertEqual(s.read(), .failed("source is not open"))
        XCTAssertThrowsError(try s.flow(gridSize: 16) { _ in () })  // no frame yet
    }

    func testFirstFrameHasNoVectorsAndIdenticalFramesHaveZeroFlow() throws {
        // The same image loaded twice: two identical frames.
        let png = try Self.writeTexture()
        defer { try? FileManager.default.removeItem(atPath: png) }
        let s = VideoStream()
        try s.loadImage(png)
        XCTAssertEqual(try s.flow(gridSize: 16) { $0.count }, 0)
        try s.loadImage(png)
        let vectors = try s.flow(gridSize: 16) { Array($0) }
        XCTAssertGreaterThan(vectors.count, 0)
        XCTAssertEqual(vectors.count % 4, 0)
        for i in stride(from: 0, to: vectors.count, by: 4) {
            XCTAssertEqual(vectors[i + 2], 0, accuracy: 0.01)
            XCTAssertEqual(vectors[i + 3], 0, accuracy: 0.01)
        }
        // Grid points start at gridSize/2 and are gridSize apart.
        XCTAssertEqual(vectors[0], 8)
        XCTAssertEqual(vectors[1], 8)
        let size = try s.annotate(vectors: [8, 8, 5, 0], maxWidth: 64)
        XCTAssertEqual(size.width, 64)
        XCTAssertEqual(size.height, 48)
        var jpeg: [UInt8] = []
        try s.encodeJPEG(quality: 80, into: &jpeg)
        XCTAssertEqual(Array(jpeg.prefix(2)), [0xFF, 0xD8])
        XCTAssertEqual(Array(jpeg.suffix(2)), [0xFF, 0xD9])
    }

    /// The decoder gets the thread count set through `setThreads`, not one thread per CPU of the
    /// machine (OpenCV's own choice): H.264's frame threads are started when the capture opens.
    func testDecoderThreadsFollowTheSetting() throws {
        guard let samples = samplesDirectory(holding: "vtest.mp4") else {
            throw XCTSkip("VF_SAMPLES_DIR with vtest.mp4 is not set (scripts/fetch-samples.sh)")
        }
        func threads() throws -> Int {
            try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count
        }
        defer { VideoStream.setThreads(1) }
        var added: [Int: Int] = [:]
        for n in [1, 4] {
            VideoStream.setThreads(n)
            XCTAssertEqual(VideoStream.decoderThreads, n)
            let s = VideoStream()
            let before = try threads()
            try s.open(samples + "/vtest.mp4")
            XCTAssertEqual(s.read(), .frame)
            added[n] = try threads() - before
            s.close()
        }
        // One thread decodes on the caller's thread; four start four frame threads.
        XCTAssertEqual(added[1], 0)
        XCTAssertGreaterThanOrEqual(added[4] ?? 0, 4)
    }

    /// A 128x96 random texture, written as a binary PPM (OpenCV reads it without extra codecs).
    static func writeTexture() throws -> String {
        let w = 128
        let h = 96
        var bytes = Array("P6\n\(w) \(h)\n255\n".utf8)
        var seed: UInt32 = 12345
        for _ in 0..<(w * h) {
            seed = seed &* 1_664_525 &+ 1_013_904_223
            let v = UInt8(truncatingIfNeeded: seed >> 24)
            bytes += [v, v, v]
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vf-tex-\(getpid()).ppm").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}

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

    /// The fast path's reads keep the decoder's own picture and convert it to BGR only on demand
    /// (the preview, snapshots): that conversion must give, frame by frame, the very pixels OpenCV's
    /// own read gives (the exact path reads through it). H.264 at two sizes, MS-MPEG4, a film, and
    /// copies made here in the other formats the decoder path takes (4:4:4, MJPEG's full-range
    /// 4:2:0) and in two it leaves to OpenCV (10 bits, RGB), and with a rotation OpenCV applies.
    func testDecoderPictureConvertsToTheBGROfOpenCVsRead() throws {
        guard let samples = samplesDirectory(holding: "Megamind.avi") else {
            throw XCTSkip("VF_SAMPLES_DIR with the sample videos is not set (scripts/fetch-samples.sh)")
        }
        for video in ["vtest.mp4", "vtest720.mp4", "vtest.avi", "Megamind.avi"] {
            try compareWithOpenCV(samples + "/" + video, fromDecoder: true)
        }
        let dir = NSTemporaryDirectory() + "vf-formats-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // (file, source, ffmpeg's output options, whether the fast path takes the decoder's picture)
        let copies: [(String, String, [String], Bool)] = [
            ("yuv444.mkv", "vtest.avi", ["-c:v", "libx264", "-pix_fmt", "yuv444p"], true),
            ("mjpeg.avi", "vtest.avi", ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"], true),
            ("yuv420p10.mkv", "vtest.avi", ["-c:v", "ffv1", "-pix_fmt", "yuv420p10le"], false),
            ("rgb.mkv", "vtest.avi", ["-c:v", "ffv1", "-pix_fmt", "bgr0"], false),
            // A display matrix (FFmpeg 5 writes one from the rotate tag on a stream copy): OpenCV turns
            // every frame upright, which the decoder's own picture is not.
            ("rotated.mp4", "vtest.mp4", ["-c", "copy", "-metadata:s:v:0", "rotate=90"], false),
        ]
        for (name, input, codec, fromDecoder) in copies {
            let path = dir + "/" + name
            let ffmpeg = Process()
            ffmpeg.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
            ffmpeg.arguments = ["-v", "error", "-y", "-i", samples + "/" + input, "-frames:v", "12"] + codec + [path]
            try ffmpeg.run()
            ffmpeg.waitUntilExit()
            XCTAssertEqual(ffmpeg.terminationStatus, 0, "ffmpeg could not write \(name)")
            try compareWithOpenCV(path, fromDecoder: fromDecoder, frames: 12)
        }
        // The rotated copy is upright on both paths: 576 wide, 768 high.
        let rotated = VideoStream()
        try rotated.open(dir + "/rotated.mp4")
        XCTAssertEqual(rotated.read(), .frame)
        XCTAssertEqual([rotated.width, rotated.height], [576, 768])
    }

    private func compareWithOpenCV(_ path: String, fromDecoder: Bool, frames wanted: Int = 40) throws {
        let fast = VideoStream()
        let opencv = VideoStream()
        opencv.exactFlow = true  // OpenCV's read: grab, retrieve (its own BGR conversion), copy
        try fast.open(path)
        try opencv.open(path)
        var frames = 0
        while frames < wanted {
            let a = fast.read()
            XCTAssertEqual(a, opencv.read(), "\(path) frame \(frames)")
            guard a == .frame else { break }
            frames += 1
            XCTAssertEqual(fast.frameFromDecoder, fromDecoder, "\(path): which read the fast path took")
            XCTAssertFalse(opencv.frameFromDecoder)
            XCTAssertEqual(fast.width, opencv.width)
            XCTAssertEqual(fast.height, opencv.height)
            let rowBytes = fast.width * 3
            let rows: (UnsafeRawBufferPointer, Int) -> [[UInt8]] = { pixels, step in
                (0..<fast.height).map { Array(pixels[($0 * step)..<($0 * step + rowBytes)]) }
            }
            let mine = try fast.withBGR(rows)
            let theirs = try opencv.withBGR(rows)
            XCTAssertEqual(mine.count, fast.height)
            XCTAssertTrue(mine == theirs, "\(path) frame \(frames): the BGR pixels differ from OpenCV's")
            // The flow reads the luma plane, and the frame stays as decoded for what draws on it.
            _ = try fast.flow(gridSize: 16) { $0.count }
            XCTAssertTrue(try fast.withBGR(rows) == theirs, "\(path) frame \(frames) changed by the flow")
            if frames == 3 {
                // A motion-event snapshot: the fast path holds the decoder's picture by reference
                // (converted when encoded, frames later), OpenCV's path the BGR frame.
                try fast.holdSnapshot(slot: 0, vectors: [20, 20, 6, 2], maxWidth: 320)
                try opencv.holdSnapshot(slot: 0, vectors: [20, 20, 6, 2], maxWidth: 320)
            }
        }
        XCTAssertEqual(frames, wanted, path)
        let held = try fast.encodeSnapshot(slot: 0, quality: 80)
        XCTAssertEqual(Array(held.prefix(2)), [0xFF, 0xD8])
        XCTAssertTrue(held == (try opencv.encodeSnapshot(slot: 0, quality: 80)), "\(path): the held snapshots differ")
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

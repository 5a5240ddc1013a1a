import Foundation
import XCTest

@testable import VFFlow

/// The fast path's reliability filter on the real shim: it drops the vectors of a flat, noisy
/// picture, keeps a textured moving block's vectors exactly as Lucas-Kanade computed them, and
/// counts what it drops.
final class VectorFilterTests: XCTestCase {
    private static let width = 192
    private static let height = 128

    /// A grey picture: a flat grey area with pseudo-random noise of amplitude `noise` (seeded by
    /// `seed`) and, where `block` is true, a random texture moved right by `shift` px.
    private static func writeFrame(shift: Int, seed: UInt32, noise: Int, tag: String) throws -> String {
        var bytes = Array("P5\n\(width) \(height)\n255\n".utf8)
        func hash(_ x: Int, _ y: Int, _ s: UInt32) -> UInt32 {
            var v = UInt32(truncatingIfNeeded: x &* 73_856_093 ^ y &* 19_349_663) ^ s &* 83_492_791
            v = v &* 1_664_525 &+ 1_013_904_223
            return v >> 24
        }
        for y in 0..<height {
            for x in 0..<width {
                let inBlock = (80..<128).contains(x) && (40..<88).contains(y)
                let jitter = Int(hash(x, y, seed) % UInt32(2 * noise + 1)) - noise
                let v = inBlock ? Int(hash(x - shift, y, 7)) : 128 + jitter
                bytes.append(UInt8(clamping: v))
            }
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vf-filter-\(getpid())-\(tag).pgm")
            .path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    private func flow(_ a: String, _ b: String, filter: VectorFilter) throws -> (vectors: [Float], stream: VideoStream)
    {
        let s = VideoStream()
        s.setVectorFilter(filter, minMagnitude: 1.2)
        try s.loadImage(a)
        _ = try s.flow(gridSize: 16) { _ in () }
        try s.loadImage(b)
        let v = try s.flow(gridSize: 16) { Array($0) }
        return (v, s)
    }

    private func above(_ v: [Float], _ t: Float = 1.2) -> [[Float]] {
        var out: [[Float]] = []
        for i in stride(from: 0, to: v.count, by: 4) {
            let m2: Float = v[i + 2] * v[i + 2] + v[i + 3] * v[i + 3]
            if m2 > t * t { out.append(Array(v[i..<(i + 4)])) }
        }
        return out
    }

    func testMovingTextureIsKeptUnchangedAndFlatNoiseIsDropped() throws {
        let a = try Self.writeFrame(shift: 0, seed: 1, noise: 6, tag: "a")
        let b = try Self.writeFrame(shift: 3, seed: 2, noise: 6, tag: "b")
        defer {
            try? FileManager.default.removeItem(atPath: a)
            try? FileManager.default.removeItem(atPath: b)
        }
        let plain = try flow(a, b, filter: .none)
        let filtered = try flow(a, b, filter: .standard)
        // The block is x 80..<128, y 40..<88: its interior points (windows inside it) and the points
        // more than 16 px away from it, where nothing moves.
        let interior = { (v: [Float]) in (88...120).contains(v[0]) && (48...80).contains(v[1]) }
        let away = { (v: [Float]) in v[0] < 64 || v[0] > 144 || v[1] < 24 || v[1] > 104 }
        let plainMoving = above(plain.vectors)
        let kept = above(filtered.vectors)
        // The flat noise makes Lucas-Kanade invent motion away from the block...
        XCTAssertGreaterThan(plainMoving.filter(away).count, 0, "the noise must make false vectors")
        // ...which the filter drops, counting each under a reason, while the block's interior stays.
        XCTAssertEqual(kept.filter(away).count, 0, "\(kept)")
        let rejected = (0..<VectorFilter.reasons.count).map { filtered.stream.lastRejected($0) }
        XCTAssertEqual(rejected.reduce(0, +), plainMoving.count - kept.count)
        XCTAssertGreaterThan(filtered.stream.lastFilterSeconds, 0)
        XCTAssertEqual(plain.stream.lastRejected(0), 0)
        let blockPoints = plainMoving.filter(interior)
        XCTAssertEqual(blockPoints.count, 6)
        for v in blockPoints {
            XCTAssertTrue(kept.contains(v), "interior point \(v) must be kept, unchanged")
            XCTAssertEqual(v[2], 3, accuracy: 0.05)
        }
    }

    func testExactPathNeverFilters() throws {
        let a = try Self.writeFrame(shift: 0, seed: 1, noise: 6, tag: "ea")
        let b = try Self.writeFrame(shift: 3, seed: 2, noise: 6, tag: "eb")
        defer {
            try? FileManager.default.removeItem(atPath: a)
            try? FileManager.default.removeItem(atPath: b)
        }
        let s = VideoStream()
        s.exactFlow = true
        s.setVectorFilter(.standard, minMagnitude: 1.2)
        try s.loadImage(a)
        _ = try s.flow(gridSize: 16) { _ in () }
        try s.loadImage(b)
        let n = try s.flow(gridSize: 16) { $0.count / 4 }
        XCTAssertEqual(n, 12 * 8, "every grid point, as OpenCV tracks it")
        XCTAssertEqual((0..<VectorFilter.reasons.count).map { s.lastRejected($0) }.reduce(0, +), 0)
    }

    func testCheckNamesParse() {
        XCTAssertEqual(VectorFilter.parse("texture,forward_backward"), [.texture, .forwardBackward])
        XCTAssertEqual(VectorFilter.parse("none"), VectorFilter.none)
        XCTAssertEqual(VectorFilter.parse("all")?.rawValue, 31)
        XCTAssertNil(VectorFilter.parse("texture,bogus"))
        XCTAssertEqual(VectorFilter.standard, [.texture, .convergence, .forwardBackward, .neighbours])
        XCTAssertEqual(VectorFilter.reasons, ["texture", "convergence", "residual", "forward_backward", "isolated"])
    }
}

import Foundation
import XCTest

@testable import VFFlow

/// The fast flow path (Lucas-Kanade only where the frame changed) against the exact one, on a
/// random texture in which only one block moves.
final class FastFlowTests: XCTestCase {
    private static let width = 192
    private static let height = 128

    /// Random texture; inside the block x 80..<112, y 48..<80 the texture is taken `shift` px to
    /// the left, i.e. that block's content moved right by `shift` px.
    private static func writeFrame(shift: Int, tag: String) throws -> String {
        var bytes = Array("P6\n\(width) \(height)\n255\n".utf8)
        func texel(_ x: Int, _ y: Int) -> UInt8 {
            var v = UInt32(truncatingIfNeeded: x &* 73_856_093 ^ y &* 19_349_663)
            v = v &* 1_664_525 &+ 1_013_904_223
            return UInt8(truncatingIfNeeded: v >> 24)
        }
        for y in 0..<height {
            for x in 0..<width {
                let inBlock = (80..<112).contains(x) && (48..<80).contains(y)
                let v = texel(inBlock ? x - shift : x, y)
                bytes += [v, v, v]
            }
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vf-fast-\(getpid())-\(tag).ppm").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    private func vectors(exact: Bool, _ a: String, _ b: String) throws -> (vectors: [Float], active: Int) {
        let s = VideoStream()
        s.exactFlow = exact
        try s.loadImage(a)
        _ = try s.flow(gridSize: 16) { _ in () }
        try s.loadImage(b)
        let v = try s.flow(gridSize: 16) { Array($0) }
        return (v, s.lastActivePoints)
    }

    func testStaticFramesNeedNoLucasKanade() throws {
        let a = try Self.writeFrame(shift: 0, tag: "s")
        defer { try? FileManager.default.removeItem(atPath: a) }
        let (v, active) = try vectors(exact: false, a, a)
        XCTAssertEqual(active, 0)
        XCTAssertEqual(v.count, 12 * 8 * 4, "every grid point is reported, with a zero vector")
        XCTAssertTrue(stride(from: 0, to: v.count, by: 4).allSatisfy { v[$0 + 2] == 0 && v[$0 + 3] == 0 })
        let (_, exactActive) = try vectors(exact: true, a, a)
        XCTAssertEqual(exactActive, 12 * 8)
    }

    func testMovingBlockGetsTheExactVectorsAndTheRestStaysZero() throws {
        let a = try Self.writeFrame(shift: 0, tag: "a")
        let b = try Self.writeFrame(shift: 3, tag: "b")
        defer {
            try? FileManager.default.removeItem(atPath: a)
            try? FileManager.default.removeItem(atPath: b)
        }
        let fast = try vectors(exact: false, a, b)
        let exact = try vectors(exact: true, a, b)
        XCTAssertGreaterThan(fast.active, 0)
        XCTAssertLessThan(fast.active, 12 * 8 / 2, "only the block's neighbourhood goes through LK")
        var byPoint: [[Float]: [Float]] = [:]
        for i in stride(from: 0, to: exact.vectors.count, by: 4) {
            byPoint[[exact.vectors[i], exact.vectors[i + 1]]] = [exact.vectors[i + 2], exact.vectors[i + 3]]
        }
        var moved = 0
        for i in stride(from: 0, to: fast.vectors.count, by: 4) {
            let (x, y, dx, dy) = (fast.vectors[i], fast.vectors[i + 1], fast.vectors[i + 2], fast.vectors[i + 3])
            if dx == 0 && dy == 0 { continue }
            moved += 1
            // A computed point runs the same LK steps on the same pyramids; only the window sums
            // differ (exact integers in the shim's tracker, float in OpenCV's), in the last bits.
            let reference = byPoint[[x, y]]
            XCTAssertNotNil(reference, "point \(x),\(y)")
            if let reference {
                XCTAssertEqual(reference[0], dx, accuracy: 0.01, "point \(x),\(y)")
                XCTAssertEqual(reference[1], dy, accuracy: 0.01, "point \(x),\(y)")
            }
        }
        // The four grid points inside the block (88/104, 56/72) moved ~3 px right.
        for (x, y) in [(88, 56), (104, 56), (88, 72), (104, 72)] {
            let i = stride(from: 0, to: fast.vectors.count, by: 4).first {
                fast.vectors[$0] == Float(x) && fast.vectors[$0 + 1] == Float(y)
            }
            XCTAssertNotNil(i)
            if let i { XCTAssertEqual(fast.vectors[i + 2], 3, accuracy: 0.5) }
        }
        XCTAssertGreaterThanOrEqual(moved, 4)
        // Far from the block the frames are identical: zero vectors in the fast path.
        XCTAssertEqual(fast.vectors[2], 0)
        XCTAssertEqual(fast.vectors[3], 0)
    }

    /// Switching paths between frames: each call compares with the frame before it, wherever the
    /// previous call kept its grey image (the exact path in `grey`, the fast one in its pyramid).
    func testSwitchingPathsBetweenFramesKeepsThePreviousFrame() throws {
        let frames = try [0, 3, 6].enumerated().map { try Self.writeFrame(shift: $0.element, tag: "sw\($0.offset)") }
        defer { for f in frames { try? FileManager.default.removeItem(atPath: f) } }
        func run(_ modes: [Bool]) throws -> [[Float]] {
            let s = VideoStream()
            var out: [[Float]] = []
            for (f, exact) in zip(frames, modes) {
                s.exactFlow = exact
                try s.loadImage(f)
                out.append(try s.flow(gridSize: 16) { Array($0) })
            }
            return out
        }
        let exact = try run([true, true, true])
        let mixed = try run([true, false, true])
        let mixed2 = try run([false, true, false])
        // exact -> exact after a fast frame: the same grey image, the same pyramids, the same answer.
        XCTAssertEqual(mixed[2], exact[2])
        XCTAssertEqual(mixed2[1], exact[1])
        // A fast frame after an exact one tracks the block's 3 px from the exact path's grey image.
        for v in [mixed[1], mixed2[2]] {
            let i = stride(from: 0, to: v.count, by: 4).first { v[$0] == 88 && v[$0 + 1] == 56 }
            XCTAssertNotNil(i)
            if let i { XCTAssertEqual(v[i + 2], 3, accuracy: 0.5) }
        }
    }

    /// A smooth texture (so Lucas-Kanade converges everywhere), sampled `dx`, `dy` px away.
    private static func writeSmoothFrame(width: Int, height: Int, dx: Double, dy: Double, tag: String) throws -> String {
        var bytes = Array("P6\n\(width) \(height)\n255\n".utf8)
        for y in 0..<height {
            for x in 0..<width {
                let u = Double(x) - dx, w = Double(y) - dy
                let v = 128 + 70 * sin(u * 0.31 + w * 0.17) + 50 * cos(u * 0.11 - w * 0.29)
                bytes += [UInt8(max(0, min(255, v.rounded()))), UInt8(max(0, min(255, (v * 0.8).rounded()))), 90]
            }
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vf-smooth-\(getpid())-\(tag).ppm").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Every frame size (down to smaller than one window, odd widths that leave a remainder to
    /// the portable tails) and grid step (odd ones put the windows of the coarser levels between
    /// pixels; 63x61 has a third level of exactly 16 px): the fast path must run, and every point
    /// it computes must match the exact path.
    func testSizesAndGridStepsMatchTheExactPath() throws {
        for (width, height) in [(9, 7), (20, 14), (37, 29), (64, 48), (63, 61), (101, 77), (250, 131)] {
            let a = try Self.writeSmoothFrame(width: width, height: height, dx: 0, dy: 0, tag: "\(width)a")
            let b = try Self.writeSmoothFrame(width: width, height: height, dx: 2.6, dy: -1.3, tag: "\(width)b")
            defer {
                try? FileManager.default.removeItem(atPath: a)
                try? FileManager.default.removeItem(atPath: b)
            }
            for grid in [3, 5, 15, 16] {
                func run(exact: Bool) throws -> [[Float]: [Float]] {
                    let s = VideoStream()
                    s.exactFlow = exact
                    try s.loadImage(a)
                    _ = try s.flow(gridSize: grid) { _ in () }
                    try s.loadImage(b)
                    return try s.flow(gridSize: grid) { v in
                        var out: [[Float]: [Float]] = [:]
                        for i in stride(from: 0, to: v.count, by: 4) { out[[v[i], v[i + 1]]] = [v[i + 2], v[i + 3]] }
                        return out
                    }
                }
                let exact = try run(exact: true), fast = try run(exact: false)
                var compared = 0
                for (point, v) in fast where v != [0, 0] {
                    compared += 1
                    guard let e = exact[point] else {
                        XCTFail("\(width)x\(height) grid \(grid): \(point) tracked by the fast path only")
                        continue
                    }
                    XCTAssertEqual(e[0], v[0], accuracy: 0.01, "\(width)x\(height) grid \(grid) \(point)")
                    XCTAssertEqual(e[1], v[1], accuracy: 0.01, "\(width)x\(height) grid \(grid) \(point)")
                }
                if width >= 37 {
                    XCTAssertGreaterThan(compared, exact.count / 2, "\(width)x\(height) grid \(grid): the shift moves most points")
                }
            }
        }
    }
}

import XCTest

@testable import VFFlow

final class FlowStatsTests: XCTestCase {
    func testThresholdCountsOnlyStrictlyGreaterMagnitudes() {
        // magnitudes: 5 (3-4-5), 1.5 (exactly the threshold: not kept), 0, 2
        let v: [Float] = [8, 8, 3, 4, 24, 8, 1.5, 0, 40, 8, 0, 0, 56, 8, 0, -2]
        let (stats, kept) = FlowStats.analyse(v, threshold: 1.5)
        XCTAssertEqual(stats.vectorCount, 2)
        XCTAssertEqual(stats.magnitudeAvg, 3.5, accuracy: 1e-6)
        XCTAssertEqual(stats.magnitudeMax, 5, accuracy: 1e-6)
        XCTAssertEqual(kept, [8, 8, 3, 4, 56, 8, 0, -2])
    }

    func testNothingAboveThresholdGivesZeroAverageButRealMaximum() {
        let v: [Float] = [8, 8, 0.3, 0.4, 24, 8, 0, 1]
        let (stats, kept) = FlowStats.analyse(v, threshold: 1.2)
        XCTAssertEqual(stats.vectorCount, 0)
        XCTAssertEqual(stats.magnitudeAvg, 0)
        XCTAssertEqual(stats.magnitudeMax, 1, accuracy: 1e-6)
        XCTAssertTrue(kept.isEmpty)
    }

    func testEmptyInput() {
        XCTAssertEqual(FlowStats.analyse([], threshold: 0).stats, .zero)
    }

    func testZeroThresholdKeepsEveryMovingPointButNotStillOnes() {
        let v: [Float] = [0, 0, 0, 0, 1, 1, 0.001, 0]
        XCTAssertEqual(FlowStats.analyse(v, threshold: 0).stats.vectorCount, 1)
    }

    func testKeptBufferIsReusedAndCleared() {
        var kept: [Float] = [1, 2, 3, 4, 5, 6, 7, 8]
        let v: [Float] = [8, 8, 0, 3]
        let stats = v.withUnsafeBufferPointer { FlowStats.analyse($0, threshold: 1, kept: &kept) }
        XCTAssertEqual(stats.vectorCount, 1)
        XCTAssertEqual(kept, [8, 8, 0, 3])
    }

    func testDirectionsByOctantInImageAxes() {
        // n is up (dy < 0); each vector sits in the middle of its octant, plus two on the borders
        // of e (22.4°: still e) and s/se (-67.6°: s).
        let unit: [(Float, Float)] = [(2, 0), (2, -2), (0, -2), (-2, -2), (-2, 0), (-2, 2), (0, 2), (2, 2)]
        var v: [Float] = []
        for (dx, dy) in unit { v += [8, 8, dx, dy] }
        v += [8, 8, 2 * cos(0.3909), -2 * sin(0.3909)]
        v += [8, 8, 2 * cos(-1.18), -2 * sin(-1.18)]
        let (stats, _) = FlowStats.analyse(v, threshold: 1)
        XCTAssertEqual(FlowStats.directionNames, ["e", "ne", "n", "nw", "w", "sw", "s", "se"])
        XCTAssertEqual(stats.directions, SIMD8(2, 1, 1, 1, 1, 1, 2, 1))
        XCTAssertEqual(stats.vectorCount, 10)
        XCTAssertEqual(FlowStats.octant(dx: -1, dy: -0.0001), 4)
        XCTAssertEqual(FlowStats.octant(dx: -1, dy: 0.0001), 4)
    }

    func testMeanVectorOfTheAboveThresholdVectorsOnly() {
        let v: [Float] = [8, 8, 3, 1, 24, 8, 1, -3, 40, 8, 0.5, 0.5]
        let (stats, _) = FlowStats.analyse(v, threshold: 1.2)
        XCTAssertEqual(stats.meanDX, 2, accuracy: 1e-9)
        XCTAssertEqual(stats.meanDY, -1, accuracy: 1e-9)
        XCTAssertEqual(FlowStats.analyse([8, 8, 0.1, 0], threshold: 1.2).stats.meanDX, 0)
    }
}

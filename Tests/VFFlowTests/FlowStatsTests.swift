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
}

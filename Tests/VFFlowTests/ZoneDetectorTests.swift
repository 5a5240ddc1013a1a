import VFCore
import VFTestSupport
import XCTest

@testable import VFFlow

final class ZoneDetectorTests: XCTestCase {
    // A 160x160 frame, grid 16: points at 8, 24, ..., 152 (10x10).
    private let left = [ZonePoint(x: 0, y: 0), ZonePoint(x: 0.5, y: 0), ZonePoint(x: 0.5, y: 1), ZonePoint(x: 0, y: 1)]
    private let all = [ZonePoint(x: 0, y: 0), ZonePoint(x: 1, y: 0), ZonePoint(x: 1, y: 1), ZonePoint(x: 0, y: 1)]

    private func zone(_ id: String, _ polygon: [ZonePoint], _ rule: ZoneRule) -> Zone {
        Zone(id: id, streamID: "s", name: "zone \(id)", polygon: polygon, rule: rule, createdAt: "")
    }

    private func detector(_ zones: [Zone]) -> ZoneDetector {
        var d = ZoneDetector(zones: zones, streamID: "s", streamName: "cam")
        d.prepare(width: 160, height: 160, gridSize: 16)
        return d
    }

    /// `n` vectors (dx, dy) on grid points of column `col`, rows 0..<n.
    private func vectors(col: Int, n: Int, dx: Float, dy: Float) -> [Float] {
        (0..<n).flatMap { r in [Float(8 + 16 * col), Float(8 + 16 * r), dx, dy] }
    }

    func testMembershipIsComputedFromTheNormalisedPositionOfEachGridPoint() {
        let tri = [ZonePoint(x: 0, y: 0), ZonePoint(x: 1, y: 0), ZonePoint(x: 0, y: 1)]
        let d = detector([zone("a", left, ZoneRule()), zone("b", tri, ZoneRule())])
        XCTAssertEqual(d.zonesAt(x: 8, y: 8), 0b11)  // (0.05, 0.05): both
        XCTAssertEqual(d.zonesAt(x: 72, y: 152), 0b01)  // (0.45, 0.95): left only
        XCTAssertEqual(d.zonesAt(x: 136, y: 8), 0b10)  // (0.85, 0.05): the triangle only
        XCTAssertEqual(d.zonesAt(x: 152, y: 152), 0)  // (0.95, 0.95): neither
        XCTAssertTrue(ZoneDetector.contains(tri, x: 0.2, y: 0.2))
        XCTAssertFalse(ZoneDetector.contains(tri, x: 0.6, y: 0.6))
    }

    func testVectorsOutsideTheZoneDoNotCount() {
        var d = detector([zone("a", left, ZoneRule(minVectors: 3, minDurationS: 0))])
        d.process(kept: vectors(col: 8, n: 10, dx: 3, dy: 0), at: 0)
        XCTAssertTrue(d.entries.isEmpty)
        d.process(kept: vectors(col: 1, n: 3, dx: 3, dy: 0), at: 0.1)
        XCTAssertEqual(d.entries.map(\.event.phase), [.start])
    }

    func testDirectionRuleSplitsOpposedMotion() {
        let rightward = zone(
            "r", all, ZoneRule(minVectors: 3, directionDeg: 0, directionToleranceDeg: 45, minDurationS: 0))
        let leftward = zone(
            "l", all, ZoneRule(minVectors: 3, directionDeg: 180, directionToleranceDeg: 45, minDurationS: 0))
        let down = zone("d", all, ZoneRule(minVectors: 3, directionDeg: 90, directionToleranceDeg: 30, minDurationS: 0))
        var d = detector([rightward, leftward, down])
        d.process(kept: vectors(col: 2, n: 5, dx: -4, dy: 1), at: 0)
        XCTAssertEqual(d.entries.map(\.event.zoneID), ["l"])
        d.process(kept: vectors(col: 2, n: 5, dx: 0.5, dy: 3), at: 0.04)  // 80.5°: down, within 30°
        XCTAssertEqual(d.entries.map(\.event.zoneID), ["d"])
        let e = d.entries.first?.event
        XCTAssertEqual(e?.meanDirectionDeg ?? -1, atan2(3, 0.5) * 180 / .pi, accuracy: 1e-9)
        // 50° is outside 0±45 and 90±30.
        d.process(kept: vectors(col: 2, n: 5, dx: 1, dy: Float(tan(50 * Double.pi / 180))), at: 0.08)
        XCTAssertTrue(d.entries.isEmpty)
    }

    func testHysteresisStartsAfterMinDurationAndEndsAfterQuietTime() {
        var d = detector([zone("a", all, ZoneRule(minVectors: 2, minDurationS: 0.5, quietTimeS: 1.0))])
        let moving = vectors(col: 3, n: 4, dx: 2, dy: 0)
        // A break before min_duration starts over.
        d.process(kept: moving, at: 0.0)
        d.process(kept: moving, at: 0.4)
        d.process(kept: [], at: 0.45)
        d.process(kept: moving, at: 0.5)
        XCTAssertTrue(d.entries.isEmpty)
        d.process(kept: moving, at: 0.9)
        XCTAssertTrue(d.entries.isEmpty)
        d.process(kept: moving, at: 1.0)
        XCTAssertEqual(d.entries.map(\.event.phase), [.start])
        let start = d.entries.first?.event
        XCTAssertEqual(start?.startedAt, 0.5)
        XCTAssertEqual(start?.seq, 1)
        XCTAssertEqual(start?.frames, 3)
        XCTAssertTrue(d.isActive(0))
        // Quiet, but not for quiet_time yet.
        d.process(kept: [], at: 1.5)
        d.process(kept: [], at: 1.9)
        XCTAssertTrue(d.entries.isEmpty)
        d.process(kept: [], at: 2.0)
        XCTAssertEqual(d.entries.map(\.event.phase), [.end])
        let end = d.entries.first?.event
        XCTAssertEqual(end?.id, start?.id)
        XCTAssertEqual(end?.seq, 2)
        XCTAssertEqual(end?.lastMotionAt, 1.0)
        XCTAssertEqual(end?.endedAt, 2.0)
        XCTAssertEqual(d.entries.first?.needsSnapshot, true)
        XCTAssertFalse(d.isActive(0))
        // The next motion is a new event.
        d.process(kept: moving, at: 3.0)
        d.process(kept: moving, at: 3.5)
        XCTAssertEqual(d.entries.map(\.event.phase), [.start])
        XCTAssertNotEqual(d.entries.first?.event.id, start?.id)
    }

    func testUpdatesAtMostOncePerSecondAndOnlyWhenChanged() {
        var d = detector([zone("a", all, ZoneRule(minVectors: 1, minDurationS: 0, quietTimeS: 10))])
        let moving = vectors(col: 3, n: 2, dx: 2, dy: 0)
        var phases: [MotionEvent.Phase] = []
        for i in 0..<26 {  // 2.5 s at 10 fps
            d.process(kept: moving, at: Double(i) * 0.1)
            phases += d.entries.map(\.event.phase)
        }
        XCTAssertEqual(phases, [.start, .update, .update])
        phases = []
        for i in 26..<60 {  // quiet: one update carries the last frames' change, then nothing
            d.process(kept: [], at: Double(i) * 0.1)
            phases += d.entries.map(\.event.phase)
        }
        XCTAssertEqual(phases, [.update])
        d.finish(at: 7)
        XCTAssertEqual(d.entries.map(\.event.phase), [.end])
        XCTAssertEqual(d.entries.first?.event.seq, 5)
        XCTAssertEqual(d.entries.first?.event.endedAt, 7)
    }

    func testSnapshotsOnTheEndAndOnUpdatesEveryFewSecondsWhenThePeakRose() {
        var d = detector([zone("a", all, ZoneRule(minVectors: 1, minDurationS: 0, quietTimeS: 10))])
        var withSnapshot: [(MotionEvent.Phase, Double)] = []
        for i in 0...100 {  // 10 s at 10 fps, the speed rising all along: the peak rises every frame
            let v = Float(1 + Double(i) * 0.05)
            d.process(kept: [8, 8, v, 0], at: Double(i) * 0.1)
            for e in d.entries where e.needsSnapshot { withSnapshot.append((e.event.phase, Double(i) * 0.1)) }
        }
        // Updates come every second; a snapshot only once 5 s have passed since the start or the last one.
        XCTAssertEqual(withSnapshot.map(\.0), [.update, .update])
        XCTAssertEqual(withSnapshot.map(\.1), [5.0, 10.0])
        for i in 101..<170 {  // slower: the peak no longer rises, so no update carries a snapshot
            d.process(kept: [8, 8, 1, 0], at: Double(i) * 0.1)
            XCTAssertFalse(d.entries.contains(where: \.needsSnapshot), "at \(Double(i) * 0.1) s")
        }
        d.finish(at: 16)
        XCTAssertEqual(d.entries.map(\.needsSnapshot), [true], "the end always has one")
    }

    func testPeakMeanSpeedDirectionAndCounts() {
        var d = detector([zone("a", all, ZoneRule(minVectors: 1, minDurationS: 0, quietTimeS: 0.5))])
        // Frame 1: two vectors, (3,4) and (0,2): mean speed 3.5, sum (3, 6).
        d.process(kept: [8, 8, 3, 4, 8, 24, 0, 2], at: 10)
        XCTAssertEqual(d.peakRose, 1)
        XCTAssertEqual(d.entries.first?.needsSnapshot, false, "a start has no snapshot; its end has")
        // Frame 2: one vector (-6, 0): mean speed 6 (the new peak), sum (-3, 6).
        d.process(kept: [40, 40, -6, 0], at: 10.2)
        XCTAssertEqual(d.peakRose, 1)
        // Frame 3: one slow vector: no new peak.
        d.process(kept: [40, 40, 0, -1], at: 10.4)
        XCTAssertEqual(d.peakRose, 0)
        d.process(kept: [], at: 11)
        guard let e = d.entries.first?.event else { return XCTFail("no end entry") }
        XCTAssertEqual(e.phase, .end)
        XCTAssertEqual(e.peakSpeed, 6, accuracy: 1e-9)
        XCTAssertEqual(e.peakAt, 10.2)
        XCTAssertEqual(e.meanSpeed, (5 + 2 + 6 + 1) / 4, accuracy: 1e-9)
        XCTAssertEqual(e.vectorCount, 4)
        XCTAssertEqual(e.peakVectors, 2)
        XCTAssertEqual(e.frames, 3)
        // Sum (-3, 5): up-left in image axes, i.e. between 90 (down)... atan2(5, -3).
        XCTAssertEqual(e.meanDirectionDeg ?? -1, atan2(5, -3) * 180 / .pi, accuracy: 1e-9)
        XCTAssertEqual(e.streamName, "cam")
        XCTAssertEqual(e.zoneName, "zone a")
    }

    func testMinMeanSpeedAndDirectionInRange0To360() {
        var d = detector([zone("a", all, ZoneRule(minVectors: 1, minMeanSpeed: 3, minDurationS: 0, quietTimeS: 0))])
        d.process(kept: [8, 8, 2, 0], at: 0)
        XCTAssertTrue(d.entries.isEmpty)
        d.process(kept: [8, 8, 0, -4], at: 0.1)  // straight up: 270
        XCTAssertEqual(d.entries.first?.event.meanDirectionDeg ?? -1, 270, accuracy: 1e-9)
    }

    func testMembershipFollowsTheFrameSize() {
        var d = detector([zone("a", left, ZoneRule())])
        XCTAssertEqual(d.zonesAt(x: 104, y: 8), 0)  // 0.65 of 160
        d.prepare(width: 320, height: 160, gridSize: 16)
        XCTAssertEqual(d.zonesAt(x: 104, y: 8), 1)  // 0.325 of 320
    }
}

/// The snapshot slots of the shim, on real frames: a held frame survives the next one and is
/// encoded at preview size only when asked; the JPEG is reused until the zone's peak rises again.
final class ZoneSnapshotsTests: XCTestCase {
    func testHeldFrameIsEncodedOnDemandAndReused() throws {
        let png = try VideoStreamTests.writeTexture()
        defer { try? FileManager.default.removeItem(atPath: png) }
        let s = VideoStream()
        XCTAssertThrowsError(try s.encodeSnapshot(slot: 0, quality: 80))  // nothing held
        try s.loadImage(png)
        XCTAssertThrowsError(try s.holdSnapshot(slot: VideoStream.snapshotSlots, vectors: [], maxWidth: 64))
        // Zone 2 of 3 peaks on this frame: its slot keeps it.
        let all = [ZonePoint(x: 0, y: 0), ZonePoint(x: 1, y: 0), ZonePoint(x: 1, y: 1), ZonePoint(x: 0, y: 1)]
        let zones = (0..<3).map {
            Zone(
                id: "z\($0)", streamID: "s", name: "z\($0)", polygon: $0 == 2 ? all : [all[0], all[1], all[0]],
                rule: ZoneRule(minVectors: 1, minDurationS: 0), createdAt: "")
        }
        var d = ZoneDetector(zones: zones, streamID: "s", streamName: "s")
        d.prepare(width: s.width, height: s.height, gridSize: 16)
        d.process(kept: [8, 8, 5, 0], at: 0)
        XCTAssertEqual(d.peakRose, 0b100)
        var snapshots = ZoneSnapshots(zoneCount: 3)
        snapshots.keepRisingPeaks(of: d, stream: s, kept: [8, 8, 5, 0], maxWidth: 64)
        XCTAssertEqual(snapshots.holds, 1)
        XCTAssertEqual(snapshots.encodes, 0)
        try s.loadImage(png)  // the next frame replaces the current one, not the held copy
        let jpeg = try XCTUnwrap(snapshots.jpeg(zone: 2, stream: s, quality: 80))
        XCTAssertEqual(Array(jpeg.prefix(2)), [0xFF, 0xD8])
        XCTAssertEqual(Array(jpeg.suffix(2)), [0xFF, 0xD9])
        XCTAssertEqual(snapshots.jpeg(zone: 2, stream: s, quality: 80), jpeg)
        XCTAssertEqual(snapshots.encodes, 1, "the same peak is encoded once")
        XCTAssertNil(snapshots.jpeg(zone: 0, stream: s, quality: 80), "zone 0 never peaked")
    }

    /// A slot shares the decoded frame's buffer rather than copying it: the frames read after it
    /// and a preview drawn in place on the held frame (full size) leave the held picture as it was.
    func testAHeldFrameStaysAsDecodedThroughReadsAndPreviews() throws {
        guard let samples = samplesDirectory(holding: "vtest.mp4") else {
            throw XCTSkip("VF_SAMPLES_DIR with vtest.mp4 is not set (scripts/fetch-samples.sh)")
        }
        let s = VideoStream()
        try s.open(samples + "/vtest.mp4")
        defer { s.close() }
        XCTAssertEqual(s.read(), .frame)
        try s.holdSnapshot(slot: 0, vectors: [], maxWidth: 0)
        try s.holdSnapshot(slot: 1, vectors: [], maxWidth: 0)  // two zones peaking on one frame
        let before = try s.encodeSnapshot(slot: 0, quality: 90)
        // Drawn in place (no scaling) on the very frame the slots hold.
        let arrows: [Float] = stride(from: 20, to: 700, by: 40).flatMap { x in [Float(x), 200, 30, 30] }
        _ = try s.annotate(vectors: arrows, maxWidth: 0)
        for _ in 0..<5 { XCTAssertEqual(s.read(), .frame) }
        XCTAssertEqual(try s.encodeSnapshot(slot: 0, quality: 90), before)
        XCTAssertEqual(try s.encodeSnapshot(slot: 1, quality: 90), before)
        // A new hold takes the new frame: a different picture.
        try s.holdSnapshot(slot: 0, vectors: [], maxWidth: 0)
        XCTAssertNotEqual(try s.encodeSnapshot(slot: 0, quality: 90), before)
        XCTAssertEqual(try s.encodeSnapshot(slot: 1, quality: 90), before)
    }
}

import XCTest

@testable import VFCore

final class ZoneEnvironmentTests: XCTestCase {
    private func zone(_ i: Int, points: Int, name: String) -> Zone {
        let polygon = (0..<points).map { k -> ZonePoint in
            let a = Double(k) / Double(points) * 2 * Double.pi
            return ZonePoint(x: 0.5 + 0.4 * cos(a) + 1e-9 * Double(i), y: 0.5 + 0.4 * sin(a))
        }
        return Zone(
            id: "00000000-0000-4000-8000-\(String(format: "%012d", i))", streamID: "s", name: name, polygon: polygon,
            rule: ZoneRule(
                minVectors: 7, minMeanSpeed: 1.25, directionDeg: 270, directionToleranceDeg: 30,
                minDurationS: 0.75, quietTimeS: 3),
            createdAt: "2026-01-01T00:00:00.000000Z")
    }

    func testRoundTripKeepsRulesAndPointsToSixDecimals() throws {
        let zones = [
            zone(1, points: 5, name: "door \"A\" é"),
            Zone(
                id: "z2", streamID: "s", name: "any",
                polygon: [ZonePoint(x: 0, y: 0), ZonePoint(x: 1, y: 0), ZonePoint(x: 1, y: 1)],
                rule: ZoneRule(), createdAt: ""),
        ]
        let text = ZoneEnvironment.encode(zones)
        let back = try ZoneEnvironment.decode(text, streamID: "s")
        XCTAssertEqual(back.count, 2)
        XCTAssertEqual(back.map(\.rule), zones.map(\.rule))
        XCTAssertEqual(back.map(\.name), zones.map(\.name))
        XCTAssertEqual(back.map(\.id), zones.map(\.id))
        for (a, b) in zip(back.flatMap(\.polygon), zones.flatMap(\.polygon)) {
            XCTAssertEqual(a.x, b.x, accuracy: 5e-7)
            XCTAssertEqual(a.y, b.y, accuracy: 5e-7)
        }
        XCTAssertNil(back[1].rule.minMeanSpeed)
        XCTAssertNil(back[1].rule.directionDeg)
        // Encoding what was decoded gives the same text (the worker's config hash is stable).
        XCTAssertEqual(ZoneEnvironment.encode(back), text)
    }

    func testNoZonesIsTheEmptyText() throws {
        XCTAssertEqual(ZoneEnvironment.encode([]), "")
        XCTAssertEqual(try ZoneEnvironment.decode(""), [])
    }

    func testTheLargestZoneSetFitsOneEnvironmentString() throws {
        let name = String(repeating: "🎥", count: ZoneRules.nameMaxLength)
        let zones = (0..<ZoneRules.maxZonesPerStream).map {
            zone($0, points: ZoneRules.pointsRange.upperBound, name: name)
        }
        let text = ZoneEnvironment.encode(zones)
        XCTAssertLessThan(text.utf8.count + "ZONES=".utf8.count + 1, ZoneEnvironment.maxBytes)
        XCTAssertEqual(try ZoneEnvironment.decode(text).count, 64)
    }

    func testBadTextIsAConfigurationError() {
        for bad in [
            "{", "{}", "[{\"name\":\"x\"}]", "[{\"id\":\"a\",\"name\":\"x\",\"polygon\":[[0,0],[1,1]]}]",
            "[{\"id\":\"a\",\"name\":\"x\",\"polygon\":[[0,0],[1,0],[1,1]],\"min_vectors\":\"5\"}]",
        ] {
            XCTAssertThrowsError(try ZoneEnvironment.decode(bad), bad)
        }
    }

    func testDeclaredForHelp() {
        XCTAssertEqual(ZoneEnvironment.declarations.map(\.name), [ZoneEnvironment.variable])
    }
}

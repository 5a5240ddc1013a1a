import XCTest

@testable import VFCore

final class ZoneValidatorTests: XCTestCase {
    private let square = "[[0.1,0.1],[0.9,0.1],[0.9,0.9],[0.1,0.9]]"

    private func check(_ body: String, _ mode: ZoneValidator.Mode = .create) -> Result<ZoneFields, APIError> {
        ZoneValidator.validate(Array(body.utf8), contentType: "application/json", mode: mode)
    }

    private func types(_ r: Result<ZoneFields, APIError>) -> [String] {
        if case .failure(let e) = r { return e.issues.map(\.type) }
        return []
    }

    private func points(_ xy: [(Double, Double)]) -> [ZonePoint] { xy.map { ZonePoint(x: $0.0, y: $0.1) } }

    /// The whole-zone rules of a create body (after its shape passed).
    private func wholeZone(_ body: String) throws -> APIError? {
        let f = try check(body).get()
        let z = f.applied(to: Zone(id: "i", streamID: "s", name: "", polygon: [], rule: ZoneRule(), createdAt: ""))
        return ZoneValidator.check(z, sent: f)
    }

    func testDefaultsOfACreate() throws {
        let f = try check(#"{"name":"Walkway","polygon":\#(square)}"#).get()
        XCTAssertEqual(f.name, "Walkway")
        XCTAssertEqual(f.polygon?.count, 4)
        XCTAssertEqual(f.minVectors, ZoneRule.minVectorsDefault)
        XCTAssertEqual(f.minDurationS, ZoneRule.minDurationDefault)
        XCTAssertEqual(f.quietTimeS, ZoneRule.quietTimeDefault)
        XCTAssertEqual(f.directionDeg, .some(nil))
        XCTAssertNil(try wholeZone(#"{"name":"Walkway","polygon":\#(square)}"#))
    }

    func testADirectionGetsTheDefaultTolerance() throws {
        let f = try check(#"{"name":"a","polygon":\#(square),"direction_deg":90}"#).get()
        let z = f.applied(to: Zone(id: "i", streamID: "s", name: "", polygon: [], rule: ZoneRule(), createdAt: ""))
        XCTAssertEqual(z.rule.directionDeg, 90)
        XCTAssertEqual(z.rule.directionToleranceDeg, ZoneRule.toleranceDefault)
    }

    func testShapeProblems() {
        XCTAssertEqual(types(check(#"{}"#)), ["missing", "missing"])
        XCTAssertEqual(types(check(#"{"name":"a","polygon":[[0,0],[1,0]]}"#)), ["too_short"])
        let many = "[" + (0..<65).map { _ in "[0.5,0.5]" }.joined(separator: ",") + "]"
        XCTAssertEqual(types(check(#"{"name":"a","polygon":\#(many)}"#)), ["too_long"])
        XCTAssertEqual(
            types(check(#"{"name":"a","polygon":[[0,0],[1.5,0],[1,-0.1]]}"#)),
            ["less_than_equal", "greater_than_equal"])
        XCTAssertEqual(types(check(#"{"name":"a","polygon":[[0,0],[1,0,1],"x"]}"#)), ["too_long", "list_type"])
        XCTAssertEqual(types(check(#"{"name":"a","polygon":{"x":1}}"#)), ["list_type"])
        XCTAssertEqual(types(check(#"{"name":"","polygon":\#(square)}"#)), ["string_too_short"])
        let long = String(repeating: "n", count: ZoneRules.nameMaxLength + 1)
        XCTAssertEqual(types(check(#"{"name":"\#(long)","polygon":\#(square)}"#)), ["string_too_long"])
        XCTAssertEqual(
            types(
                check(
                    #"{"name":"a","polygon":\#(square),"min_vectors":0,"direction_deg":361,"direction_tolerance_deg":181}"#
                )),
            ["greater_than_equal", "less_than_equal", "less_than_equal"])
        XCTAssertEqual(
            types(
                check(#"{"name":"a","polygon":\#(square),"min_vectors":1.5,"min_duration_s":3601,"quiet_time_s":-1}"#)),
            ["int_from_float", "less_than_equal", "greater_than_equal"])
        XCTAssertEqual(types(check(#"{"name":"a","polygon":\#(square),"color":"red"}"#)), ["extra_forbidden"])
        XCTAssertEqual(types(check(#"{"min_vectors":10001}"#, .update)), ["less_than_equal"])
        XCTAssertEqual(types(check(#"{"min_duration_s":null}"#, .update)), ["float_type"])
    }

    func testAnUpdateSendsOnlyWhatChanges() throws {
        let f = try check(#"{"min_mean_speed":null}"#, .update).get()
        XCTAssertNil(f.name)
        XCTAssertNil(f.polygon)
        XCTAssertEqual(f.minMeanSpeed, .some(nil))
        XCTAssertNil(f.directionDeg)
    }

    func testWholeZoneRules() throws {
        let bowTie = "[[0.1,0.1],[0.9,0.9],[0.9,0.1],[0.1,0.9]]"
        XCTAssertEqual(
            try wholeZone(#"{"name":"a","polygon":\#(bowTie)}"#)?.issues.first?.msg,
            "Value error, the polygon must not intersect itself")
        let line = "[[0.1,0.1],[0.5,0.5],[0.9,0.9]]"
        XCTAssertEqual(try wholeZone(#"{"name":"a","polygon":\#(line)}"#)?.issues.first?.type, "value_error")
        let lonely = try wholeZone(#"{"name":"a","polygon":\#(square),"direction_tolerance_deg":10}"#)
        XCTAssertEqual(lonely?.issues.first?.loc, [.key("body"), .key("direction_tolerance_deg")])
        XCTAssertNil(
            try wholeZone(#"{"name":"a","polygon":\#(square),"direction_deg":0,"direction_tolerance_deg":10}"#))
    }

    func testGeometry() {
        XCTAssertFalse(ZoneRules.isSelfIntersecting(points([(0, 0), (1, 0), (0, 1)])))
        XCTAssertFalse(ZoneRules.isSelfIntersecting(points([(0, 0), (1, 0), (1, 1), (0.5, 0.2), (0, 1)])))  // concave
        XCTAssertTrue(ZoneRules.isSelfIntersecting(points([(0, 0), (1, 1), (1, 0), (0, 1)])))
        // A vertex touching a non-adjacent edge.
        XCTAssertTrue(ZoneRules.isSelfIntersecting(points([(0, 0), (1, 0), (0.5, 0), (0.5, 1)])))
        XCTAssertEqual(ZoneRules.doubleArea(points([(0, 0), (1, 0), (1, 1), (0, 1)])), 2)
        XCTAssertEqual(ZoneRules.doubleArea(points([(0, 0), (0.5, 0.5), (1, 1)])), 0)
    }

    func testPolygonTextRoundTrip() {
        let p = points([(0, 0.25), (1, 1e-05), (0.5, 1)])
        XCTAssertEqual(Zone.polygon(json: Zone.polygonJSON(p)), p)
        // As PostgreSQL prints JSONB.
        XCTAssertEqual(Zone.polygon(json: "[[0, 0.25], [1, 0.00001], [0.5, 1]]"), p)
        XCTAssertNil(Zone.polygon(json: "[[0]]"))
    }
}

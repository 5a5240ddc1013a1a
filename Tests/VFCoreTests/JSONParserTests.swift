import XCTest

@testable import VFCore

final class JSONParserTests: XCTestCase {
    private func parse(_ s: String) throws -> JSONValue { try JSONParser.parse(Array(s.utf8)) }

    func testValues() throws {
        XCTAssertEqual(
            try parse(" {\"a\": [1, -2.5e3, true, false, null, \"x\"]} "),
            .object([("a", .array([.int(1), .double(-2500), .bool(true), .bool(false), .null, .string("x")]))]))
        XCTAssertEqual(try parse("\"\\u00e9\\ud83d\\ude00\\n\\\"\""), .string("é😀\n\""))
        XCTAssertEqual(try parse("\"héllo\""), .string("héllo"))
    }

    func testNumbersKeepLiteralKind() throws {
        guard case .number(let a) = try parse("16"), case .number(let b) = try parse("16.0"),
            case .number(let c) = try parse("1e400")
        else { return XCTFail("not numbers") }
        XCTAssertTrue(a.isIntegerLiteral)
        XCTAssertFalse(b.isIntegerLiteral)
        XCTAssertEqual(b.value, 16)
        XCTAssertFalse(c.value.isFinite)
    }

    func testDuplicateKeysLastWins() throws {
        XCTAssertEqual(try parse("{\"a\":1,\"a\":2}"), .object([("a", .int(2))]))
        // The first place, the last value (Python's dict), in small and in indexed objects.
        XCTAssertEqual(try parse("{\"a\":1,\"b\":2,\"a\":3}"), .object([("a", .int(3)), ("b", .int(2))]))
        let many = (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        guard case .object(let members) = try parse("{\(many),\"k3\":-1,\"k39\":-2,\"new\":0}") else {
            return XCTFail("not an object")
        }
        XCTAssertEqual(members.count, 41)
        XCTAssertEqual(members[3].0, "k3")
        XCTAssertEqual(members[3].1, .int(-1))
        XCTAssertEqual(members[39].1, .int(-2))
        XCTAssertEqual(members.last?.0, "new")
    }

    func testRejectsMalformed() {
        let bad = [
            "", "{", "{\"a\":}", "[1,]", "01", "1.", "-", "tru", "\"abc", "{\"a\" 1}", "{} x", "NaN",
            "\"\\x\"", "\"\\ud800\"", "\"\\udc00x\"", "\"a\u{01}\"", "{'a':1}",
        ]
        for s in bad {
            XCTAssertThrowsError(try parse(s), "accepted \(s.debugDescription)")
        }
    }

    func testRejectsInvalidUTF8() {
        for bytes: [UInt8] in [
            [0x22, 0xFF, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xE2, 0x82, 0x22],
        ] {
            XCTAssertThrowsError(try JSONParser.parse(bytes))
        }
    }

    func testDepthLimit() {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        XCTAssertThrowsError(try parse(deep))
        let ok = String(repeating: "[", count: 50) + String(repeating: "]", count: 50)
        XCTAssertNoThrow(try parse(ok))
    }

    func testWriterRoundTrip() throws {
        let v: JSONValue = .object([
            ("k\"ey", .string("a\u{0}b\n\\é")), ("n", .array([.int(-3), .double(0.5), .null])),
        ])
        XCTAssertEqual(try JSONParser.parse(JSONSerializer.encode(v)), v)
    }

    /// Bounded random mutation (a deterministic generator, 20 000 inputs): the parser never crashes,
    /// and whatever it accepts survives a serialise/parse round trip unchanged.
    func testMutatedInputsNeverCrashAndRoundTrip() {
        var rng = SplitMix64(seed: 7)
        let seeds = [
            #"{"name":"Dock \u00e9","rtsp_url":"rtsp://h/x","grid_size":16,"threshold":1.2e0,"is_active":true}"#,
            #"[1,-0.5,"a\n",null,{"k":[true,false]}]"#,
        ]
        var accepted = 0
        for k in 0..<20_000 {
            var bytes = Array(seeds[k % seeds.count].utf8)
            for _ in 0...(Int(rng.next() % 4)) {
                let i = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 3 {
                case 0: bytes[i] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes.remove(at: i)
                default: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: i)
                }
                if bytes.isEmpty { bytes = [0x30] }
            }
            if let v = try? JSONParser.parse(bytes) {
                accepted += 1
                XCTAssertEqual(try? JSONParser.parse(JSONSerializer.encode(v)), v)
            }
        }
        XCTAssertGreaterThan(accepted, 100)
    }
}

/// A small deterministic PRNG so the mutation test is reproducible.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

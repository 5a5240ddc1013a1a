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
}

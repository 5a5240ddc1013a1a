import XCTest

@testable import VFNet

final class ServerJSONTests: XCTestCase {
    struct Inner: Encodable {
        let ok: Bool
        let ratio: Double
    }

    struct Outer: Encodable {
        let name: String
        let count: Int
        let small: UInt8
        let big: Int64
        let list: [Int]
        let nested: Inner
        let optional: String?
        let present: String?
        let map: [String: Int]
    }

    func testEncodesNestedValuesInOrder() throws {
        let value = Outer(
            name: "q\"\\\n\u{01}é", count: -3, small: 7, big: 1 << 40, list: [1, 2],
            nested: Inner(ok: true, ratio: 0.5),
            optional: nil, present: "p", map: ["k": 1])
        let text = String(decoding: try EncodableJSON.encode(value), as: UTF8.self)
        XCTAssertEqual(
            text,
            #"{"name":"q\"\\\n\u0001é","count":-3,"small":7,"big":1099511627776,"list":[1,2],"nested":{"ok":true,"ratio":0.5},"present":"p","map":{"k":1}}"#
        )
    }

    func testTopLevelValuesAndErrors() throws {
        XCTAssertEqual(String(decoding: try EncodableJSON.encode([String]()), as: UTF8.self), "[]")
        XCTAssertEqual(String(decoding: try EncodableJSON.encode("x"), as: UTF8.self), #""x""#)
        XCTAssertEqual(String(decoding: try EncodableJSON.encode(3.0), as: UTF8.self), "3")
        XCTAssertThrowsError(try EncodableJSON.encode([Double.nan]))
        let r = HTTPResponse.json([Double.infinity])
        XCTAssertEqual(r.status, 500)
    }
}

import XCTest

@testable import VFNet

final class UTF8ValidationTests: XCTestCase {
    static let valid: [[UInt8]] = [
        [], Array("plain ASCII text that is longer than eight bytes".utf8),
        [0xC2, 0x80], [0xDF, 0xBF],  // U+0080, U+07FF
        [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF],  // U+0800, U+D7FF
        [0xEE, 0x80, 0x80], [0xEF, 0xBF, 0xBF],  // U+E000, U+FFFF
        [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF],  // U+10000, U+10FFFF
        Array("caf\u{e9} \u{65e5}\u{672c} \u{1F389} and more ASCII after".utf8),
    ]
    static let invalid: [[UInt8]] = [
        [0x80], [0xBF], [0x41, 0x80],  // stray continuation
        [0xC0, 0x80], [0xC1, 0xBF],  // overlong 2-byte
        [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF],  // overlong 3-byte
        [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],  // surrogates
        [0xF0, 0x80, 0x80, 0x80], [0xF0, 0x8F, 0xBF, 0xBF],  // overlong 4-byte
        [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80],  // > U+10FFFF
        [0xF8, 0x88, 0x80, 0x80, 0x80], [0xFF], [0xFE],
        [0xC2], [0xE2, 0x82], [0xF0, 0x9F, 0x8E],  // truncated
        [0xC2, 0x41], [0xE2, 0x28, 0xA1],  // bad continuation
        Array("0123456789abcdef".utf8) + [0xED, 0xA0, 0x80] + Array("tail".utf8),
    ]

    func testTable() {
        for v in Self.valid {
            XCTAssertTrue(withExactBytes(v) { UTF8Validator.isValid($0) }, "\(v)")
            assertEverySplit(v, expected: true)
        }
        for v in Self.invalid {
            XCTAssertFalse(withExactBytes(v) { UTF8Validator.isValid($0) }, "\(v)")
            assertEverySplit(v, expected: false)
        }
    }

    func assertEverySplit(_ bytes: [UInt8], expected: Bool, file: StaticString = #filePath, line: UInt = #line) {
        for k in 0...bytes.count {
            var v = UTF8Validator()
            let a = withExactBytes(bytes[..<k]) { v.feed($0) }
            let b = a && withExactBytes(bytes[k...]) { v.feed($0) }
            XCTAssertEqual(b && v.isComplete, expected, "\(bytes) split at \(k)", file: file, line: line)
        }
    }

    /// Every one- and two-byte input, against the standard library's validation.
    func testAgreesWithStandardLibraryOnAllShortInputs() {
        var bytes: [UInt8] = [0, 0]
        for a in 0...255 {
            bytes[0] = UInt8(a)
            XCTAssertEqual(UTF8Validator.isValid([UInt8(a)]), String(validating: [UInt8(a)], as: UTF8.self) != nil)
            for b in 0...255 {
                bytes[1] = UInt8(b)
                let ours = UTF8Validator.isValid(bytes)
                if ours != (String(validating: bytes, as: UTF8.self) != nil) { XCTFail("\(bytes)") }
            }
        }
    }

    /// Every three-byte input whose first byte is a 3- or 4-byte lead, and random longer inputs.
    func testAgreesWithStandardLibraryOnLeadBytes() {
        var bytes: [UInt8] = [0, 0, 0]
        var mismatches = 0
        for a in 0xE0...0xF4 {
            for b in 0x70...0xC0 {
                for c in [0x41, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0] {
                    bytes = [UInt8(a), UInt8(b), UInt8(c)]
                    for tail in [[], [0x80], [0xBF], [0x41]] as [[UInt8]] {
                        let input = bytes + tail
                        if UTF8Validator.isValid(input) != (String(validating: input, as: UTF8.self) != nil) {
                            mismatches += 1
                        }
                    }
                }
            }
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            let n = Int.random(in: 0..<24, using: &rng)
            let input = (0..<n).map { _ in
                Bool.random(using: &rng)
                    ? UInt8.random(in: 0x80...0xF5, using: &rng) : UInt8.random(in: 0...0x7F, using: &rng)
            }
            if UTF8Validator.isValid(input) != (String(validating: input, as: UTF8.self) != nil) {
                mismatches += 1
                print("mismatch: \(input)")
            }
        }
        XCTAssertEqual(mismatches, 0)
    }
}

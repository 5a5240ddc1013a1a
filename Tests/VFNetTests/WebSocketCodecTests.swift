import XCTest

@testable import VFNet

final class WebSocketCodecTests: XCTestCase {
    /// A client frame as a browser would send it (masked unless `mask` is nil).
    static func clientFrame(
        _ opcode: UInt8, _ payload: [UInt8], fin: Bool = true,
        mask: [UInt8]? = [0x37, 0xFA, 0x21, 0x3D]
    ) -> [UInt8] {
        var out: [UInt8] = [(fin ? 0x80 : 0) | opcode]
        let m: UInt8 = mask == nil ? 0 : 0x80
        let n = payload.count
        if n < 126 {
            out.append(m | UInt8(n))
        } else if n < 65536 {
            out += [m | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
        } else {
            out.append(m | 127)
            for k in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: n >> (k * 8))) }
        }
        guard let mask else { return out + payload }
        out += mask
        for (i, b) in payload.enumerated() { out.append(b ^ mask[i % 4]) }
        return out
    }

    static func decode(_ bytes: ArraySlice<UInt8>, max: Int = 1 << 20, requireMask: Bool = true)
        -> WebSocketFrameDecodeResult
    {
        withExactBytes(bytes) { WebSocketFrameCodec.decode($0, maxPayload: max, requireMask: requireMask) }
    }

    /// Decodes one frame, asserting every strict prefix is incomplete.
    func decodeFrame(
        _ bytes: [UInt8], max: Int = 1 << 20, requireMask: Bool = true,
        file: StaticString = #filePath, line: UInt = #line
    ) -> WebSocketFrame? {
        // Every prefix through the header, then a few: past the header only the length matters.
        let prefixes = Array(0..<min(bytes.count, 32)) + [bytes.count / 2, bytes.count - 1].filter { $0 >= 32 }
        for k in prefixes {
            guard case .incomplete = Self.decode(bytes[..<k], max: max, requireMask: requireMask) else {
                XCTFail("prefix \(k) not incomplete", file: file, line: line)
                return nil
            }
        }
        guard case .frame(let f, let consumed) = Self.decode(bytes[...] + [0x81], max: max, requireMask: requireMask)
        else {
            XCTFail("no frame", file: file, line: line)
            return nil
        }
        XCTAssertEqual(consumed, bytes.count, file: file, line: line)
        return f
    }

    func assertDecodeError(
        _ bytes: [UInt8], _ code: UInt16, max: Int = 1 << 20, requireMask: Bool = true,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        guard case .error(let c, _) = Self.decode(bytes[...], max: max, requireMask: requireMask) else {
            return XCTFail("expected error \(code) for \(bytes.prefix(12))", file: file, line: line)
        }
        XCTAssertEqual(c, code, file: file, line: line)
    }

    func testRFCExamples() throws {
        // RFC 6455 §5.7
        let masked: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        let f = try XCTUnwrap(decodeFrame(masked))
        XCTAssertEqual(f.payload, Array("Hello".utf8))
        XCTAssertTrue(f.fin)
        XCTAssertEqual(f.opcode, .text)
        let unmasked: [UInt8] = [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]
        XCTAssertEqual(decodeFrame(unmasked, requireMask: false)?.payload, Array("Hello".utf8))
        let first = try XCTUnwrap(decodeFrame([0x01, 0x03, 0x48, 0x65, 0x6C], requireMask: false))
        XCTAssertFalse(first.fin)
        XCTAssertEqual(decodeFrame([0x80, 0x02, 0x6C, 0x6F], requireMask: false)?.opcode, .continuation)
        XCTAssertEqual(decodeFrame([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F], requireMask: false)?.opcode, .ping)
        var out: [UInt8] = []
        WebSocketFrameCodec.encode(.text, payload: Array("Hello".utf8), into: &out)
        XCTAssertEqual(out, unmasked)
    }

    func testLengthEncodingsRoundTrip() {
        for n in [0, 1, 125, 126, 127, 1000, 65535, 65536, 70000] {
            let payload = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            XCTAssertEqual(decodeFrame(Self.clientFrame(2, payload))?.payload, payload, "masked \(n)")
            var out: [UInt8] = []
            WebSocketFrameCodec.encode(.binary, payload: payload, fin: false, into: &out)
            XCTAssertEqual(out, Self.clientFrame(2, payload, fin: false, mask: nil), "encoded \(n)")
            guard case .frame(let f, let c) = Self.decode(out[...], requireMask: false) else {
                XCTFail("\(n)")
                continue
            }
            XCTAssertEqual(c, out.count)
            XCTAssertEqual(f.payload, payload)
            XCTAssertFalse(f.fin)
        }
    }

    func testDecodeErrors() {
        assertDecodeError([0xC1, 0x80, 0, 0, 0, 0], 1002)  // RSV1
        assertDecodeError([0xA1, 0x80, 0, 0, 0, 0], 1002)  // RSV2
        assertDecodeError([0x91, 0x80, 0, 0, 0, 0], 1002)  // RSV3
        for op: UInt8 in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] { assertDecodeError([0x80 | op, 0x80], 1002) }
        assertDecodeError([0x09, 0x80], 1002)  // fragmented ping
        assertDecodeError([0x88, 0xFE], 1002)  // close with 16-bit length
        assertDecodeError([0x89, 0xFF], 1002)
        assertDecodeError([0x81, 0x05], 1002)  // unmasked client frame
        assertDecodeError([0x82, 0xFE, 0x00, 0x7D], 1002)  // 125 in 16 bits
        assertDecodeError([0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF], 1002)  // 65535 in 64 bits
        assertDecodeError([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0], 1002)  // top bit set
        // Too big is known from the header alone: refused before the payload arrives.
        assertDecodeError([0x82, 0xFE, 0x01, 0x00], 1009, max: 255)
        assertDecodeError([0x82, 0xFF, 0, 0, 0, 0x01, 0, 0, 0, 0], 1009)
        assertDecodeError([0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], 1009)
        assertDecodeError([0x82, 0x8B], 1009, max: 10)
        XCTAssertNotNil(decodeFrame(Self.clientFrame(2, Array(repeating: 1, count: 255)), max: 255))
        // A masked frame is accepted where masking is not required (client side).
        XCTAssertEqual(decodeFrame(Self.clientFrame(1, [0x41]), requireMask: false)?.payload, [0x41])
    }

    func testEncodeCloseTruncatesOnCharacterBoundary() throws {
        var out: [UInt8] = []
        WebSocketFrameCodec.encodeClose(code: 1001, reason: String(repeating: "\u{e9}", count: 100), into: &out)
        guard case .frame(let f, _) = Self.decode(out[...], requireMask: false) else { return XCTFail("no frame") }
        XCTAssertEqual(f.opcode, .close)
        XCTAssertLessThanOrEqual(f.payload.count, 125)
        XCTAssertEqual(f.payload.count, 2 + 122)
        var a = WebSocketMessageAssembler(maxMessageBytes: 100)
        guard case .success(.close(let code, let reason)) = a.push(f) else { return XCTFail("bad close") }
        XCTAssertEqual(code, 1001)
        XCTAssertEqual(reason, String(repeating: "\u{e9}", count: 61))
    }

    // MARK: - assembler

    static func frame(_ op: WebSocketOpcode, _ payload: [UInt8], fin: Bool = true) -> WebSocketFrame {
        WebSocketFrame(fin: fin, opcode: op, payload: payload)
    }

    func testFragmentedTextWithInterleavedControlFrames() {
        var a = WebSocketMessageAssembler(maxMessageBytes: 100)
        let text = Array("h\u{e9}llo \u{1F389}".utf8)
        // Split inside the two-byte é and the four-byte emoji.
        guard case .success(.none) = a.push(Self.frame(.text, Array(text[0..<2]), fin: false)) else { return XCTFail() }
        guard case .success(.ping(let p)) = a.push(Self.frame(.ping, [1, 2])), p == [1, 2] else { return XCTFail() }
        guard case .success(.none) = a.push(Self.frame(.continuation, Array(text[2..<9]), fin: false)) else {
            return XCTFail()
        }
        guard case .success(.pong) = a.push(Self.frame(.pong, [])) else { return XCTFail() }
        guard case .success(.text(let s)) = a.push(Self.frame(.continuation, Array(text[9...]))) else {
            return XCTFail()
        }
        XCTAssertEqual(s, "h\u{e9}llo \u{1F389}")
        // And the assembler is ready for the next message.
        guard case .success(.binary(let b)) = a.push(Self.frame(.binary, [9, 8])), b == [9, 8] else { return XCTFail() }
        guard case .success(.none) = a.push(Self.frame(.binary, [1], fin: false)) else { return XCTFail() }
        guard case .success(.binary(let b2)) = a.push(Self.frame(.continuation, [2])), b2 == [1, 2] else {
            return XCTFail()
        }
        guard case .success(.text("")) = a.push(Self.frame(.text, [])) else { return XCTFail() }
    }

    func assertFails(
        _ frames: [WebSocketFrame], _ code: UInt16, max: Int = 100, file: StaticString = #filePath, line: UInt = #line
    ) {
        var a = WebSocketMessageAssembler(maxMessageBytes: max)
        for (i, f) in frames.enumerated() {
            let r = a.push(f)
            if i < frames.count - 1 {
                if case .failure(let e) = r { return XCTFail("frame \(i) failed early: \(e)", file: file, line: line) }
            } else {
                guard case .failure(let e) = r else {
                    return XCTFail("expected \(code), got \(r)", file: file, line: line)
                }
                XCTAssertEqual(e.code, code, file: file, line: line)
            }
        }
    }

    func testAssemblerErrors() {
        assertFails([Self.frame(.continuation, [1])], 1002)
        assertFails([Self.frame(.text, [0x41], fin: false), Self.frame(.text, [0x41])], 1002)
        assertFails([Self.frame(.binary, [1], fin: false), Self.frame(.binary, [1], fin: false)], 1002)
        assertFails([Self.frame(.binary, Array(repeating: 0, count: 101))], 1009)
        assertFails([Self.frame(.text, Array(repeating: 0x41, count: 101))], 1009)
        assertFails(
            [
                Self.frame(.binary, Array(repeating: 0, count: 60), fin: false),
                Self.frame(.continuation, Array(repeating: 0, count: 41)),
            ], 1009)
        assertFails([Self.frame(.text, [0xED, 0xA0, 0x80])], 1007)
        assertFails([Self.frame(.text, [0xC3])], 1007)  // truncated
        // Invalid UTF-8 is refused at the fragment that carries it, not at the message end.
        assertFails([Self.frame(.text, [0x41], fin: false), Self.frame(.continuation, [0xFF], fin: false)], 1007)
        assertFails([Self.frame(.text, [0xC3], fin: false), Self.frame(.continuation, [0x41], fin: false)], 1007)
        assertFails([Self.frame(.text, [0xF0, 0x9F], fin: false), Self.frame(.continuation, [0x8E])], 1007)
    }

    func testCloseFrames() {
        func close(_ payload: [UInt8]) -> Result<WebSocketMessageAssembler.Event, WebSocketProtocolError> {
            var a = WebSocketMessageAssembler(maxMessageBytes: 10)
            return a.push(Self.frame(.close, payload))
        }
        guard case .success(.close(nil, "")) = close([]) else { return XCTFail("empty close") }
        guard case .success(.close(1000, "bye")) = close([0x03, 0xE8] + Array("bye".utf8)) else { return XCTFail() }
        guard case .failure(let one) = close([0x03]) else { return XCTFail() }
        XCTAssertEqual(one.code, 1002)
        guard case .failure(let badReason) = close([0x03, 0xE8, 0xFF]) else { return XCTFail() }
        XCTAssertEqual(badReason.code, 1007)
        let valid: [UInt16] = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999,
        ]
        let invalid: [UInt16] = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
        for c in valid {
            guard case .success(.close(c, "")) = close([UInt8(c >> 8), UInt8(c & 0xFF)]) else { return XCTFail("\(c)") }
        }
        for c in invalid {
            guard case .failure(let e) = close([UInt8(c >> 8), UInt8(c & 0xFF)]) else { return XCTFail("\(c)") }
            XCTAssertEqual(e.code, 1002, "\(c)")
        }
    }

    // MARK: - handshake

    func testSHA1Vectors() {
        func hex(_ b: [UInt8]) -> String {
            b.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        }
        XCTAssertEqual(hex(SHA1.hash([])), "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        XCTAssertEqual(hex(SHA1.hash(Array("abc".utf8))), "a9993e364706816aba3e25717850c26c9cd0d89d")
        XCTAssertEqual(
            hex(SHA1.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        // 55, 56 and 64 bytes: the padding edge cases.
        XCTAssertEqual(hex(SHA1.hash(Array(repeating: 0x61, count: 55))), "c1c8bbdc22796e28c0e15163d20899b65621d65a")
        XCTAssertEqual(hex(SHA1.hash(Array(repeating: 0x61, count: 56))), "c2db330f6083854c99d4b5bfb6e8f29f201be699")
        XCTAssertEqual(hex(SHA1.hash(Array(repeating: 0x61, count: 64))), "0098ba824b5c16427bd7a1122a5a442a25ec644d")
        var s = SHA1()
        let chunk = [UInt8](repeating: 0x61, count: 1000)
        for _ in 0..<1000 { s.update(chunk) }
        XCTAssertEqual(hex(s.finalize()), "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    func testBase64AndAcceptKey() {
        let vectors = [
            "": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=",
            "foobar": "Zm9vYmFy",
        ]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decode(encoded), Array(plain.utf8))
        }
        for bad in ["Zg=", "Z===", "Zh==", "Zm9=", "Zm=v", "Zm9v!A==", "=Zg="] { XCTAssertNil(Base64.decode(bad), bad) }
        // The example of RFC 6455 §1.3.
        XCTAssertEqual(
            WebSocketHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        XCTAssertTrue(WebSocketHandshake.isValidKey("dGhlIHNhbXBsZSBub25jZQ=="))
        XCTAssertTrue(WebSocketHandshake.isValidKey(Base64.encode(Array(repeating: 0xFF, count: 16))))
        for bad in [
            "", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ==x",
            "dGhlIHNhbXBsZSBub25jZ===", "dGhlIHNhbXBsZSBub25j!Q==", Base64.encode(Array(repeating: 1, count: 17)),
        ] {
            XCTAssertFalse(WebSocketHandshake.isValidKey(bad), bad)
        }
    }
}

import XCTest

@testable import VFNet

final class ChunkedBodyDecoderTests: XCTestCase {
    enum Outcome: Equatable {
        case needMore, done
        case error(HTTPParseError)
    }

    struct Run: Equatable {
        var consumed = 0
        var body: [UInt8] = []
        var outcome = Outcome.needMore
    }

    /// Feeds `bytes` in the given pieces (each an exact-size copy), stopping at done/error.
    static func run(_ bytes: [UInt8], cuts: [Int], maxBody: Int) -> Run {
        var d = ChunkedBodyDecoder(maxBodyBytes: maxBody)
        var r = Run()
        var start = 0
        for end in cuts + [bytes.count] where end >= start {
            let (c, res) = withExactBytes(bytes[start..<end]) { d.feed($0, into: &r.body) }
            r.consumed += c
            switch res {
            case .needMore:
                XCTAssertEqual(c, end - start, "needMore must consume the whole piece")
            case .done:
                r.outcome = .done
                return r
            case .error(let e):
                r.outcome = .error(e)
                return r
            }
            start = end
        }
        return r
    }

    /// Decodes whole, in every two-piece split and byte by byte; all must agree.
    func decodeEverySplit(_ text: String, maxBody: Int = 1 << 20, file: StaticString = #filePath, line: UInt = #line)
        -> Run
    {
        let bytes = Array(text.utf8)
        let whole = Self.run(bytes, cuts: [], maxBody: maxBody)
        for k in 0...bytes.count {
            let two = Self.run(bytes, cuts: [k], maxBody: maxBody)
            XCTAssertEqual(two, whole, "split at \(k) of \(text.debugDescription)", file: file, line: line)
        }
        let bytewise = Self.run(bytes, cuts: Array(0..<bytes.count), maxBody: maxBody)
        XCTAssertEqual(bytewise, whole, "byte by byte: \(text.debugDescription)", file: file, line: line)
        return whole
    }

    func testValidBodies() {
        let table: [(String, String, Int)] = [  // input, body, bytes consumed
            ("5\r\nhello\r\n0\r\n\r\n", "hello", 15),
            ("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "hello world", 26),
            ("0\r\n\r\n", "", 5),
            ("A\r\n0123456789\r\n0\r\n\r\n", "0123456789", 20),
            ("a\r\n0123\r\n6789\r\n0\r\n\r\n", "0123\r\n6789", 20),
            ("005\r\nhello\r\n000\r\n\r\n", "hello", 19),
            ("5;name=value;x=\"q\"\r\nhello\r\n0;last\r\n\r\n", "hello", 37),
            ("5 \t; ext\r\nhello\r\n0 \r\n\r\n", "hello", 23),
            ("5\r\nhello\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\nnext", "hello", 35),
            ("1F\r\n" + String(repeating: "x", count: 31) + "\r\n0\r\n\r\n", String(repeating: "x", count: 31), 42),
        ]
        for (input, body, consumed) in table {
            let r = decodeEverySplit(input)
            XCTAssertEqual(r.outcome, .done, input.debugDescription)
            XCTAssertEqual(String(decoding: r.body, as: UTF8.self), body, input.debugDescription)
            XCTAssertEqual(r.consumed, consumed, input.debugDescription)
        }
    }

    func testIncompleteBodiesWaitForMore() {
        for input in [
            "5\r\nhel", "5\r\nhello", "5\r\nhello\r", "5\r\nhello\r\n0\r\n", "5\r\nhello\r\n0\r\nX: 1\r\n", "5;ext",
        ] {
            let r = decodeEverySplit(input)
            XCTAssertEqual(r.outcome, .needMore, input.debugDescription)
            XCTAssertEqual(r.consumed, input.utf8.count)
        }
    }

    func testInvalidBodies() {
        let table: [(String, Int)] = [
            ("\r\n", 400),  // no size
            ("g\r\n", 400),
            ("-5\r\nhello\r\n", 400),
            ("0x5\r\nhello\r\n", 400),
            ("5\nhello\r\n0\r\n\r\n", 400),  // bare LF
            ("5\r\rhello", 400),
            ("5\r\nhelloX\r\n0\r\n\r\n", 400),  // data longer than announced
            ("5\r\nhello\n0\r\n\r\n", 400),
            ("5 x\r\nhello\r\n", 400),
            ("5;a\u{1}b\r\nhello\r\n", 400),
            ("5\r\nhello\r\n0\r\nX: 1\n\r\n", 400),  // bare LF in trailer
            ("5\r\nhello\r\n0\r\n\n", 400),
            ("5\r\nhello\r\n0\r\n\r\r", 400),
            ("5\r\nhello\r\n0\r\nX: a\u{0}\r\n\r\n", 400),
            ("00000000000000001\r\nx\r\n", 400),  // absurd number of digits
            ("100001\r\n", 413),  // over maxBodyBytes (1 MiB)
            ("ffffffffffffffff\r\n", 413),
            ("80000\r\n" + String(repeating: "x", count: 0x80000) + "\r\n80001\r\n", 413),
        ]
        for (input, status) in table {
            let bytes = Array(input.utf8)
            let whole = Self.run(bytes, cuts: [], maxBody: 1 << 20)
            guard case .error(let e) = whole.outcome else {
                XCTFail("expected \(status) for \(input.prefix(40).debugDescription), got \(whole.outcome)")
                continue
            }
            XCTAssertEqual(e.status, status, input.prefix(40).debugDescription)
            // Same verdict, at the same place, however the bytes arrive (bounded for the large case).
            if bytes.count < 200 {
                for k in 0...bytes.count { XCTAssertEqual(Self.run(bytes, cuts: [k], maxBody: 1 << 20), whole) }
                XCTAssertEqual(Self.run(bytes, cuts: Array(0..<bytes.count), maxBody: 1 << 20), whole)
            }
        }
    }

    func testLimitCountsAllChunks() {
        let ok = decodeEverySplit("4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n", maxBody: 8)
        XCTAssertEqual(ok.outcome, .done)
        XCTAssertEqual(ok.body.count, 8)
        let over = decodeEverySplit("4\r\nabcd\r\n5\r\nefghi\r\n0\r\n\r\n", maxBody: 8)
        XCTAssertEqual(over.outcome, .error(.bodyTooLarge))
        XCTAssertEqual(over.body.count, 4, "refused at the size line, before the data")
    }

    func testTerminalStatesAreSticky() {
        var d = ChunkedBodyDecoder(maxBodyBytes: 100)
        var body: [UInt8] = []
        let done = withExactBytes(Array("0\r\n\r\n5\r\n".utf8)) { d.feed($0, into: &body) }
        XCTAssertEqual(done.consumed, 5)
        let again = withExactBytes(Array("5\r\n".utf8)) { d.feed($0, into: &body) }
        XCTAssertEqual(again.consumed, 0)
        guard case .done = again.result else { return XCTFail("not done") }
        XCTAssertTrue(d.isDone)

        var bad = ChunkedBodyDecoder(maxBodyBytes: 100)
        _ = withExactBytes(Array("z".utf8)) { bad.feed($0, into: &body) }
        let after = withExactBytes(Array("0\r\n\r\n".utf8)) { bad.feed($0, into: &body) }
        guard case .error(let e) = after.result else { return XCTFail("error not sticky") }
        XCTAssertEqual(e.status, 400)
    }
}

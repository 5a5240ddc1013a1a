import Glibc
import XCTest

@testable import VFNet

/// Runs `body` on a copy of `bytes` that ends right before an inaccessible page (as
/// picohttpparser's tests do), so any read past the end crashes the test instead of reading
/// some array's spare capacity.
func withExactBytes<R>(_ bytes: ArraySlice<UInt8>, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let dataPages = (bytes.count + page - 1) / page
    let total = (dataPages + 1) * page
    guard let base = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
        base != UnsafeMutableRawPointer(bitPattern: -1)
    else { fatalError("mmap failed: \(errno)") }
    defer { munmap(base, total) }
    let guardPage = base + dataPages * page
    precondition(mprotect(guardPage, page, PROT_NONE) == 0, "mprotect failed")
    let start = guardPage - bytes.count
    let buffer = UnsafeMutableRawBufferPointer(start: start, count: bytes.count)
    buffer.copyBytes(from: bytes)
    return body(UnsafeRawBufferPointer(buffer))
}

func withExactBytes<R>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) -> R) -> R {
    withExactBytes(bytes[...], body)
}

final class HTTPParserTests: XCTestCase {
    static func parse(_ bytes: ArraySlice<UInt8>, _ limits: HTTPLimits = HTTPLimits()) -> HTTPHeadParseResult {
        withExactBytes(bytes) { HTTPRequestParser.parseHead($0, limits: limits) }
    }

    /// Parses `text`, asserting every strict prefix is incomplete; returns the head and consumed.
    func parseValid(
        _ text: String, _ limits: HTTPLimits = HTTPLimits(), body: String = "",
        file: StaticString = #filePath, line: UInt = #line
    ) -> (HTTPRequestHead, Int)? {
        let head = Array(text.utf8)
        let bytes = head + Array(body.utf8)
        for k in 0..<head.count {
            if case .incomplete = Self.parse(bytes[..<k], limits) { continue }
            XCTFail("prefix of \(k) bytes of \(text.debugDescription) is not incomplete", file: file, line: line)
            return nil
        }
        switch Self.parse(bytes[...], limits) {
        case .complete(let h, let consumed):
            XCTAssertEqual(consumed, head.count, "consumed", file: file, line: line)
            return (h, consumed)
        case .incomplete:
            XCTFail("incomplete: \(text.debugDescription)", file: file, line: line)
        case .error(let e):
            XCTFail("error \(e): \(text.debugDescription)", file: file, line: line)
        }
        return nil
    }

    /// Asserts `text` fails with `status` and every prefix is incomplete or fails the same way.
    func assertInvalid(
        _ text: String, _ status: Int, _ limits: HTTPLimits = HTTPLimits(),
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let bytes = Array(text.utf8)
        guard case .error(let full) = Self.parse(bytes[...], limits) else {
            XCTFail(
                "expected \(status) for \(text.debugDescription), got \(Self.parse(bytes[...], limits))", file: file,
                line: line)
            return
        }
        XCTAssertEqual(full.status, status, "\(text.debugDescription): \(full)", file: file, line: line)
        for k in 0..<bytes.count {
            switch Self.parse(bytes[..<k], limits) {
            case .incomplete: continue
            case .error(let e) where e == full: continue
            case let other:
                XCTFail(
                    "prefix \(k) of \(text.debugDescription) gave \(other), full gave \(full)", file: file, line: line)
                return
            }
        }
    }

    func testSimpleGet() throws {
        let (h, _) = try XCTUnwrap(parseValid("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        XCTAssertEqual(h.method, "GET")
        XCTAssertEqual(h.target, "/")
        XCTAssertEqual(h.versionMinor, 1)
        XCTAssertEqual(h.headers["host"], "a")
        XCTAssertNil(h.contentLength)
        XCTAssertFalse(h.isChunked)
        XCTAssertTrue(h.keepAlive)
        XCTAssertFalse(h.expectsContinue)
        XCTAssertFalse(h.isWebSocketUpgrade)
    }

    func testTypicalRequestKeepsHeaderOrderAndTrimsOWS() throws {
        let text =
            "GET /streams?x=1&y=%20z HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: curl/8.5.0\r\n"
            + "Accept: */*\r\nX-Spaces: \t a  b \t\r\nX-Empty:\r\nX-Obs: caf\u{e9}\r\n\r\n"
        let (h, _) = try XCTUnwrap(parseValid(text))
        XCTAssertEqual(h.target, "/streams?x=1&y=%20z")
        XCTAssertEqual(h.headers.map { $0.name }, ["Host", "User-Agent", "Accept", "X-Spaces", "X-Empty", "X-Obs"])
        XCTAssertEqual(h.headers["x-spaces"], "a  b")
        XCTAssertEqual(h.headers["X-EMPTY"], "")
        XCTAssertEqual(h.headers["x-obs"], "caf\u{e9}")
    }

    func testBodyBytesAreNotConsumedAndLeadingEmptyLinesSkipped() throws {
        let (h, consumed) = try XCTUnwrap(
            parseValid(
                "\r\n\r\nPOST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                body: "helloGET"))
        XCTAssertEqual(h.method, "POST")
        XCTAssertEqual(h.contentLength, 5)
        XCTAssertEqual(consumed, 73)
    }

    func testOtherMethodsAndTargets() throws {
        XCTAssertEqual(parseValid("M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n")?.0.target, "*")
        XCTAssertEqual(parseValid("OPTIONS http://a/b?c HTTP/1.1\r\nHost: a\r\n\r\n")?.0.target, "http://a/b?c")
        XCTAssertEqual(parseValid("get /x HTTP/1.1\r\nHost: a\r\n\r\n")?.0.method, "get")
        XCTAssertEqual(parseValid("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")?.0.contentLength, 0)
        XCTAssertEqual(parseValid("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 000012\r\n\r\n")?.0.contentLength, 12)
    }

    func testKeepAliveRules() {
        XCTAssertEqual(parseValid("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")?.0.keepAlive, false)
        XCTAssertEqual(parseValid("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n")?.0.keepAlive, false)
        XCTAssertEqual(parseValid("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")?.0.keepAlive, true)
        XCTAssertEqual(parseValid("GET / HTTP/1.0\r\n\r\n")?.0.keepAlive, false)
        XCTAssertEqual(parseValid("GET / HTTP/1.0\r\n\r\n")?.0.versionMinor, 0)
        XCTAssertEqual(parseValid("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")?.0.keepAlive, true)
        XCTAssertEqual(
            parseValid("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n")?.0.keepAlive, false)
    }

    func testChunkedExpectAndUpgrade() {
        let chunked = parseValid("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n")?.0
        XCTAssertEqual(chunked?.isChunked, true)
        XCTAssertNil(chunked?.contentLength)
        XCTAssertEqual(
            parseValid("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n")?.0
                .expectsContinue, true)
        XCTAssertEqual(parseValid("PUT / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n")?.0.expectsContinue, false)
        let ws =
            "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        XCTAssertEqual(parseValid(ws)?.0.isWebSocketUpgrade, true)
        XCTAssertEqual(
            parseValid("POST /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")?.0
                .isWebSocketUpgrade, false)
        XCTAssertEqual(
            parseValid("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")?.0.isWebSocketUpgrade, false)
        XCTAssertEqual(
            parseValid("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n")?.0
                .isWebSocketUpgrade, false)
        XCTAssertEqual(
            parseValid("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgraded\r\n\r\n")?.0
                .isWebSocketUpgrade, false)
    }

    func testInvalidRequests() {
        let table: [(String, Int)] = [
            ("GET / HTTP/1.1\r\n\r\n", 400),  // no Host
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),  // two Host
            ("GET / HTTP/1.1\nHost: a\n\n", 400),  // bare LF
            ("GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", 400),  // bare CR
            ("GET / HTTP/1.1\r\nHost: a\r\n\rX", 400),
            ("\r\rGET / HTTP/1.1\r\n", 400),
            ("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),  // empty method
            ("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),  // empty target
            ("GET /a\u{1}b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET /a\u{7f} HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET /\r\nHost: a\r\n\r\n", 400),  // HTTP/0.9 form
            ("GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET / http/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/1\r\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            ("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
            ("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
            ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),  // space before colon
            ("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),  // obs-fold
            ("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 400),  // empty name
            ("GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", 400),  // no colon
            ("GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\u{0}c\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\u{7f}c\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\u{1b}c\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n", 413),
        ]
        for (text, status) in table { assertInvalid(text, status) }
        XCTAssertNotNil(parseValid("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n"))
    }

    func testRequestLineLimit() {
        var limits = HTTPLimits()
        limits.maxRequestLineBytes = 20
        let atLimit = "GET /" + String(repeating: "a", count: 6) + " HTTP/1.1"  // 20 bytes
        XCTAssertEqual(atLimit.utf8.count, 20)
        XCTAssertNotNil(parseValid(atLimit + "\r\nHost: a\r\n\r\n", limits))
        assertInvalid("GET /" + String(repeating: "a", count: 7) + " HTTP/1.1\r\nHost: a\r\n\r\n", 414, limits)
        // Never ending: refused once the limit is passed, not buffered.
        let endless = "GET /" + String(repeating: "a", count: 100)
        assertInvalid(endless, 414, limits)
        assertInvalid(String(repeating: "A", count: 100), 414, limits)
        // Leading empty lines do not count towards the request line.
        XCTAssertNotNil(parseValid("\r\n\r\n" + atLimit + "\r\nHost: a\r\n\r\n", limits))
    }

    func testHeaderSizeAndCountLimits() {
        var limits = HTTPLimits()
        limits.maxHeaderBytes = 64
        limits.maxHeaderCount = 3
        let base = "GET / HTTP/1.1\r\nHost: a\r\n"  // 25 bytes
        let fill = "X: " + String(repeating: "v", count: 64 - 25 - 2 - 5) + "\r\n"
        let exact = base + fill + "\r\n"
        XCTAssertEqual(exact.utf8.count, 64)
        XCTAssertNotNil(parseValid(exact, limits))
        assertInvalid(base + "X: v" + fill.dropFirst(3) + "\r\n", 431, limits)
        assertInvalid(base + "X-Endless: " + String(repeating: "v", count: 200), 431, limits)
        assertInvalid(String(repeating: "\r\n", count: 40), 431, limits)
        XCTAssertNotNil(parseValid(base + "A: 1\r\nB: 2\r\n\r\n", limits))
        assertInvalid(base + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431, limits)
    }

    func testHeadersValue() {
        var h = HTTPHeaders([("Content-Type", "text/plain"), ("Set-Cookie", "a"), ("set-cookie", "b")])
        XCTAssertEqual(h["content-type"], "text/plain")
        XCTAssertEqual(h.values("SET-COOKIE"), ["a", "b"])
        h.add("X-A", "1")
        h.set("set-cookie", "c")
        XCTAssertEqual(h.values("Set-Cookie"), ["c"])
        XCTAssertEqual(h.map { $0.name }, ["Content-Type", "Set-Cookie", "X-A"])
        h.remove("x-a")
        XCTAssertNil(h["X-A"])
        h.set("New", "n")
        XCTAssertEqual(h.count, 3)
        XCTAssertFalse(HTTPHeaders.namesEqual("Host", "Hosu"))
        XCTAssertFalse(HTTPHeaders.namesEqual("Host", "Hos"))
    }

    /// Not a timing assertion: a rough parses/s figure for the log (bench/http/parser_bench.swift
    /// measures the optimized build).
    func testParseRateSmoke() {
        let req = Array(
            ("GET /api/v1/streams/42/metrics?window=60 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
                + "User-Agent: vf-bench/1.0\r\nAccept: application/json\r\nAccept-Encoding: gzip\r\n"
                + "Connection: keep-alive\r\n\r\n").utf8)
        let limits = HTTPLimits()
        var ok = 0
        let start = ContinuousClock.now
        let rounds = 2000
        req.withUnsafeBytes { buf in
            for _ in 0..<rounds {
                if case .complete = HTTPRequestParser.parseHead(buf, limits: limits) { ok += 1 }
            }
        }
        let elapsed = ContinuousClock.now - start
        XCTAssertEqual(ok, rounds)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        print(
            "HTTPRequestParser (this build): \(Int(Double(rounds) / max(seconds, 1e-9))) parses/s of \(req.count) bytes"
        )
    }
}

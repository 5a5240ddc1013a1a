import Glibc
import Synchronization
import XCTest

@testable import VFNet

/// A blocking loopback client for the live-server tests.
final class TestClient {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc != 0 { throw SystemError(call: "connect", errno: errno) }
    }

    deinit { close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }
    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads one response with a Content-Length (or none); nil on EOF/timeout.
    func response() -> (status: Int, headers: [String: String], body: String)? {
        while true {
            if let end = find([13, 10, 13, 10]) {
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                var lines = head.components(separatedBy: "\r\n")
                let status = Int(lines.removeFirst().split(separator: " ")[1]) ?? 0
                var headers: [String: String] = [:]
                for line in lines {
                    let parts = line.split(separator: ":", maxSplits: 1)
                    headers[parts[0].lowercased()] = parts.count > 1 ? String(parts[1]).trimmedSpaces() : ""
                }
                let length = Int(headers["content-length"] ?? "0") ?? 0
                while buffer.count < end + 4 + length { if !fill() { return nil } }
                let body = String(decoding: buffer[(end + 4)..<(end + 4 + length)], as: UTF8.self)
                buffer.removeFirst(end + 4 + length)
                return (status, headers, body)
            }
            if !fill() { return nil }
        }
    }

    /// True when the server closed the connection (EOF) within the receive timeout.
    func readsEOF() -> Bool {
        var b = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &b, b.count, 0)
            if n == 0 { return true }
            if n < 0 { return false }
        }
    }

    private func fill() -> Bool {
        var b = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &b, b.count, 0)
        if n <= 0 { return false }
        buffer.append(contentsOf: b[0..<n])
        return true
    }

    private func find(_ needle: [UInt8]) -> Int? {
        guard buffer.count >= needle.count else { return nil }
        for i in 0...(buffer.count - needle.count) where buffer[i] == needle[0] {
            if Array(buffer[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }
}

extension String {
    fileprivate func trimmedSpaces() -> String {
        let set = " \t"
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

final class ServerTests: XCTestCase {
    private func startServer(_ router: Router, _ tweak: (inout HTTPServerConfiguration) -> Void = { _ in }) throws -> (
        HTTPServer, Int
    ) {
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.loopCount = 2
        tweak(&config)
        let server = HTTPServer(configuration: config, router: router)
        return (server, try server.start())
    }

    func testHooksWrapHandlersAndServerErrors() throws {
        var router = Router()
        router.get("/open") { _, r in r.respond(.text("open")) }
        router.get("/secret") { _, r in r.respond(.text("secret")) }
        let seen = Mutex<[String]>([])
        let (server, port) = try startServer(router) { c in
            c.hooks = HTTPServerHooks(
                before: { req in
                    req.path == "/secret" && req.headers["Authorization"] != "Bearer t" ? .error(401) : nil
                },
                after: { req, res, seconds in
                    res.headers.add("Access-Control-Allow-Origin", "*")
                    XCTAssertGreaterThanOrEqual(seconds, 0)
                    seen.withLock { $0.append("\(req.routePattern ?? "-") \(res.status)") }
                })
        }
        defer { server.stop() }
        let c = try TestClient(port: port)
        c.send("GET /open HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(c.response()?.headers["access-control-allow-origin"], "*")
        c.send("GET /secret HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(c.response()?.status, 401)
        c.send("GET /secret HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n")
        XCTAssertEqual(c.response()?.body, "secret")
        c.send("GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")
        let missing = c.response()
        XCTAssertEqual(missing?.status, 404)
        XCTAssertEqual(missing?.headers["access-control-allow-origin"], "*")
        c.send("GET /bad\u{1} HTTP/1.1\r\n\r\n")
        let bad = c.response()
        XCTAssertEqual(bad?.status, 400)
        XCTAssertEqual(bad?.headers["access-control-allow-origin"], "*", "server errors pass the after hook too")
        XCTAssertEqual(seen.withLock { $0 }, ["/open 200", "/secret 401", "/secret 200", "- 404", "- 400"])
    }

    func testClosedConnectionsAreFreed() throws {
        // Runs alone in its server; other tests' connections may still be alive, so count deltas.
        var router = Router()
        let helper = EventLoop.start(name: "t-free")
        defer { helper.shutdown() }
        router.get("/h") { _, r in r.respond(.text("h")) }
        router.get("/later") { _, r in helper.schedule(after: 0.05) { r.respond(.text("late")) } }
        router.webSocket("/ws") { _ in WebSocketHandlers(onText: { ws, t in ws.send(text: t) }) }
        let (server, port) = try startServer(router)
        defer { server.stop() }
        let baseline = HTTPConnection.liveObjects.load(ordering: .relaxed)
        do {
            var clients: [TestClient] = []
            for i in 0..<30 {
                let c = try TestClient(port: port)
                switch i % 3 {
                case 0:
                    c.send("GET /h HTTP/1.1\r\nHost: x\r\n\r\n")
                    XCTAssertEqual(c.response()?.body, "h")
                case 1:
                    c.send("GET /later HTTP/1.1\r\nHost: x\r\n\r\n")  // client leaves before the answer
                default:
                    c.send(
                        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
                    XCTAssertEqual(c.response()?.status, 101)
                }
                clients.append(c)
            }
            XCTAssertTrue(waitFor { server.openConnections == 30 })
        }  // every client socket closes here
        XCTAssertTrue(waitFor { server.openConnections == 0 }, "open: \(server.openConnections)")
        XCTAssertTrue(
            waitFor { HTTPConnection.liveObjects.load(ordering: .relaxed) <= baseline },
            "connection objects leaked: \(HTTPConnection.liveObjects.load(ordering: .relaxed) - baseline)")
    }

    func testHeaderInjectionAndInvalidStatusAreNeutralised() throws {
        var router = Router()
        router.get("/inject") { _, r in
            r.respond(
                HTTPResponse(
                    status: 200, headers: HTTPHeaders([("X-A", "a\r\nSet-Cookie: evil"), ("X-B", "b")]), body: [0x31]))
        }
        router.get("/weird") { _, r in r.respond(HTTPResponse(status: 42)) }
        let (server, port) = try startServer(router)
        defer { server.stop() }
        let c = try TestClient(port: port)
        c.send("GET /inject HTTP/1.1\r\nHost: x\r\n\r\n")
        let injected = c.response()
        XCTAssertEqual(injected?.headers["x-b"], "b")
        XCTAssertNil(injected?.headers["set-cookie"])
        XCTAssertNil(injected?.headers["x-a"])
        XCTAssertEqual(injected?.body, "1")
        c.send("GET /weird HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(c.response()?.status, 500)
    }

    func testResponderFromAnotherThreadAndDroppedResponder() throws {
        var router = Router()
        let helper = EventLoop.start(name: "t-helper")
        defer { helper.shutdown() }
        router.get("/later") { req, r in
            XCTAssertTrue(r.eventLoop.inEventLoop)
            helper.schedule(after: 0.01) {
                r.respond(.text("later \(req.query["n"] ?? "")"))
                r.respond(.text("ignored second answer"))
            }
        }
        router.get("/forgotten") { _, _ in }  // the responder dies unanswered → 500
        let (server, port) = try startServer(router)
        defer { server.stop() }
        let c = try TestClient(port: port)
        c.send("GET /later?n=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /later?n=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(c.response()?.body, "later 1")
        XCTAssertEqual(c.response()?.body, "later 2")
        c.send("GET /forgotten HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(c.response()?.status, 500)
    }

    func testStopClosesConnectionsAndWebSocketsGetOnCloseOnce() throws {
        var router = Router()
        let closes = Mutex<[UInt16]>([])
        let opened = Atomic<Int>(0)
        router.webSocket("/ws") { _ in
            WebSocketHandlers(
                onOpen: { _ in opened.add(1, ordering: .relaxed) },
                onClose: { ws, code in
                    XCTAssertFalse(ws.isOpen)
                    closes.withLock { $0.append(code) }
                })
        }
        router.get("/h") { _, r in r.respond(.text("h")) }
        let (server, port) = try startServer(router)
        let ws = try TestClient(port: port)
        ws.send(
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        XCTAssertEqual(ws.response()?.status, 101)
        XCTAssertTrue(waitFor { opened.load(ordering: .relaxed) == 1 })
        let plain = try TestClient(port: port)
        plain.send("GET /h HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(plain.response()?.body, "h")
        server.stop()
        XCTAssertEqual(closes.withLock { $0 }, [1001])
        XCTAssertTrue(plain.readsEOF())
        XCTAssertTrue(ws.readsEOF())
        XCTAssertThrowsError(try TestClient(port: port), "the listener is closed")
        server.stop()  // twice is harmless
    }

    func testWebSocketSendFromManyThreadsAndCloseHandshake() throws {
        var router = Router()
        let socket = Mutex<WebSocket?>(nil)
        let closeCodes = Mutex<[UInt16]>([])
        router.webSocket("/ws") { _ in
            WebSocketHandlers(
                onOpen: { ws in socket.withLock { $0 = ws } },
                onClose: { _, code in closeCodes.withLock { $0.append(code) } })
        }
        let (server, port) = try startServer(router)
        defer { server.stop() }
        let c = try TestClient(port: port)
        c.send(
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        XCTAssertEqual(c.response()?.status, 101)
        XCTAssertTrue(waitFor { socket.withLock { $0 } != nil })
        let ws = try XCTUnwrap(socket.withLock { $0 })
        DispatchLikeThreads.run(4) { t in
            for i in 0..<100 { ws.send(text: "\(t):\(i)") }
        }
        ws.close(code: 4000, reason: "done")
        // 400 text frames, then the close frame: read raw frames until the close.
        var texts = 0
        var buf: [UInt8] = []
        var closeCode: UInt16 = 0
        var chunk = [UInt8](repeating: 0, count: 65536)
        reading: while true {
            while buf.count >= 2 {
                let len = Int(buf[1] & 0x7F)
                precondition(len < 126)
                guard buf.count >= 2 + len else { break }
                let op = buf[0] & 0x0F
                if op == 1 { texts += 1 }
                if op == 8 {
                    closeCode = UInt16(buf[2]) << 8 | UInt16(buf[3])
                    break reading
                }
                buf.removeFirst(2 + len)
            }
            let n = recv(c.fd, &chunk, chunk.count, 0)
            if n <= 0 { break }
            buf.append(contentsOf: chunk[0..<n])
        }
        XCTAssertEqual(texts, 400)
        XCTAssertEqual(closeCode, 4000)
        // Answer the close (masked, code 4000): the server then closes TCP and reports once.
        c.send([0x88, 0x82, 1, 2, 3, 4, 0x0F ^ 1, 0xA0 ^ 2])
        XCTAssertTrue(c.readsEOF())
        XCTAssertTrue(waitFor { closeCodes.withLock { $0 } == [4000] })
        XCTAssertFalse(ws.isOpen)
        ws.send(text: "after close is dropped")
    }
}

// A small server on VFNet for the protocol tests (tests/test_vfnet_*.py) and bench/http.
//
//   vfnet-testserver --port 0 [--loops N] [--header-timeout S] [--body-timeout S] [--idle-timeout S]
//                    [--max-body BYTES] [--ws-ping-interval S] [--max-connections N] [--max-ws-message BYTES]
//
// Prints "listening on PORT" (flushed) once it accepts connections.
import Glibc
import VFNet

struct ItemAnswer: Encodable {
    let id: String
    let query: [String: String]
}

func fail(_ message: String) -> Never {
    let line = Array("vfnet-testserver: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
}

var configuration = HTTPServerConfiguration()
configuration.host = "127.0.0.1"
configuration.port = 0
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    guard let value = arguments.popFirst() else { fail("missing value for \(flag)") }
    func number() -> Double {
        guard let v = Double(value), v >= 0 else { fail("\(flag) needs a non-negative number, got \(value)") }
        return v
    }
    switch flag {
    case "--port": configuration.port = Int(number())
    case "--host": configuration.host = value
    case "--loops": configuration.loopCount = max(1, Int(number()))
    case "--header-timeout": configuration.limits.headerReadTimeout = number()
    case "--body-timeout": configuration.limits.bodyReadTimeout = number()
    case "--idle-timeout": configuration.limits.idleTimeout = number()
    case "--max-body": configuration.limits.maxBodyBytes = Int(number())
    case "--ws-ping-interval": configuration.limits.webSocketPingInterval = number()
    case "--max-connections": configuration.limits.maxConnections = Int(number())
    case "--max-ws-message": configuration.limits.maxWebSocketMessageBytes = Int(number())
    default: fail("unknown flag \(flag)")
    }
}

/// A loop of its own that plays "another thread" for /slow and drives /ws/flood.
let worker = EventLoop.start(name: "testserver-worker")
let healthBody: [UInt8] = Array(#"{"status":"ok"}"#.utf8)

var router = Router()
router.get("/health") { _, responder in
    responder.respond(.json(raw: healthBody))
}
router.post("/echo") { request, responder in
    let type = request.headers["Content-Type"] ?? "application/octet-stream"
    responder.respond(HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", type)]), body: request.body))
}
router.get("/items/{id}") { request, responder in
    responder.respond(.json(ItemAnswer(id: request.pathParameters["id"] ?? "", query: request.query)))
}
router.delete("/items/{id}") { _, responder in
    responder.respond(HTTPResponse(status: 204))
}
router.get("/slow") { _, responder in
    worker.schedule(after: 0.2) {
        responder.respond(.text("slow\n"))
    }
}
router.webSocket("/ws/echo") { request in
    var handlers = WebSocketHandlers(
        onText: { ws, text in ws.send(text: text) },
        onBinary: { ws, bytes in ws.send(binary: bytes) }
    )
    let offered = (request.headers["Sec-WebSocket-Protocol"] ?? "").split(separator: ",").map { $0.trimmingPrefix(" ") }
    if offered.contains(where: { $0 == "vf.echo" }) { handlers.subprotocol = "vf.echo" }
    return handlers
}
router.webSocket("/ws/flood") { request in
    let size = min(Int(request.query["size"] ?? "") ?? 16_384, 1 << 20)
    return WebSocketHandlers(onOpen: { ws in
        // From another thread, as the API's live-frame fan-out does: each message replaces the
        // previous unsent one, so a client that never reads costs the server one message.
        @Sendable func tick(_ n: UInt64) {
            guard ws.isOpen else { return }
            var payload = [UInt8](repeating: 0x61, count: size)
            withUnsafeBytes(of: n.bigEndian) { raw in
                for i in 0..<min(8, size) { payload[i] = raw[i] }
            }
            ws.sendLatest(binary: payload)
            worker.schedule(after: 0.001) { tick(n + 1) }
        }
        worker.execute { tick(0) }
    })
}

let server = HTTPServer(configuration: configuration, router: router)
let port: Int
do {
    port = try server.start()
} catch {
    fail("cannot start: \(error)")
}
// Written with write(2), unbuffered: the tests wait for this exact line.
let banner = Array("listening on \(port)\n".utf8)
_ = banner.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
while true {
    pause()
}

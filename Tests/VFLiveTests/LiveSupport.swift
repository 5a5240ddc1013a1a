import Foundation
import Glibc
import VFBus
import VFNet
import VFTestSupport

@testable import VFLive

/// A real redis-server on a free loopback port, child of the test process (stopped and reaped in `stop`).
final class RedisProcess {
    let port: Int
    let pid: pid_t
    var url: String { "redis://127.0.0.1:\(port)/0" }

    init?() {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server") else { return nil }
        port = freePort()
        let argv = [
            "/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--loglevel", "warning",
        ]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var child: pid_t = 0
        guard posix_spawn(&child, argv[0], &actions, nil, cargs, environ) == 0 else { return nil }
        pid = child
        let up = waitUntil(10) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = UInt16(port).bigEndian
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            return withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            } == 0
        }
        if !up {
            stop()
            return nil
        }
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

/// A minimal blocking WebSocket client for tests: handshake, then reads unmasked server frames.
/// `@unchecked Sendable`: each test uses a client from one thread at a time.
final class TestWebSocketClient: @unchecked Sendable {
    let fd: Int32
    private var buffer: [UInt8] = []
    private(set) var handshakeStatus = 0

    enum Failure: Error { case connect, closed, timeout }

    init(port: Int, target: String, receiveBuffer: Int? = nil) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        if let receiveBuffer {
            var size = Int32(receiveBuffer)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(4))
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw Failure.connect }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let request =
            "GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        _ = request.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        // Read the response head.
        while true {
            if let end = TestWebSocketClient.find(buffer, Array("\r\n\r\n".utf8)) {
                let head = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeSubrange(..<(end + 4))
                let parts = head.split(separator: " ", maxSplits: 2)
                handshakeStatus = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
                return
            }
            guard try fill() else {
                handshakeStatus = 0
                return
            }
        }
    }

    deinit { close(fd) }

    private static func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where Array(hay[i..<(i + needle.count)]) == needle { return i }
        return nil
    }

    /// Reads more bytes; false on EOF; throws on timeout.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 256 * 1024)
        let n = recv(fd, &chunk, chunk.count, 0)
        if n < 0 { throw Failure.timeout }
        if n == 0 { return false }
        buffer.append(contentsOf: chunk[..<n])
        return true
    }

    func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The next data message (binary or text); pings are skipped. Throws on timeout or close.
    func receive() throws -> (opcode: UInt8, payload: [UInt8]) {
        while true {
            if buffer.count >= 2 {
                let opcode = buffer[0] & 0x0f
                var len = Int(buffer[1] & 0x7f)
                var offset = 2
                if len == 126 {
                    guard buffer.count >= 4 else {
                        guard try fill() else { throw Failure.closed }
                        continue
                    }
                    len = Int(buffer[2]) << 8 | Int(buffer[3])
                    offset = 4
                } else if len == 127 {
                    guard buffer.count >= 10 else {
                        guard try fill() else { throw Failure.closed }
                        continue
                    }
                    len = buffer[2..<10].reduce(0) { $0 << 8 | Int($1) }
                    offset = 10
                }
                if buffer.count >= offset + len {
                    let payload = Array(buffer[offset..<(offset + len)])
                    buffer.removeSubrange(..<(offset + len))
                    if opcode == 0x8 { throw Failure.closed }
                    if opcode == 0x9 || opcode == 0xA { continue }
                    return (opcode, payload)
                }
            }
            guard try fill() else { throw Failure.closed }
        }
    }
}

/// The frame envelope workers publish: 4-byte big-endian header length, JSON header, JPEG bytes.
func envelope(streamID: String, seq: Int, jpegBytes: Int) -> [UInt8] {
    let header = Array("{\"stream_id\":\"\(streamID)\",\"seq\":\(seq)}".utf8)
    let n = UInt32(header.count)
    var out: [UInt8] = [UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)]
    out += header
    out += [0xFF, 0xD8] + [UInt8](repeating: UInt8(seq & 0xff), count: max(0, jpegBytes - 4)) + [0xFF, 0xD9]
    return out
}

/// (stream_id, seq) from an envelope.
func parseEnvelope(_ bytes: [UInt8]) -> (String, Int)? {
    guard bytes.count >= 4 else { return nil }
    let n = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
    guard bytes.count >= 4 + n,
        let obj = try? JSONSerialization.jsonObject(with: Data(bytes[4..<(4 + n)])) as? [String: Any],
        let id = obj["stream_id"] as? String, let seq = obj["seq"] as? Int
    else { return nil }
    return (id, seq)
}

/// Resident memory of this process, in bytes.
func residentBytes() -> Int {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = statm.split(separator: " ")
    return (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// The broadcaster's routes on a real HTTP server on an ephemeral loopback port; returns the
/// started server and its port.
func serveFrames(_ broadcaster: FrameBroadcaster, loops: Int) throws -> (server: HTTPServer, port: Int) {
    var router = Router()
    broadcaster.install(on: &router)
    var config = HTTPServerConfiguration()
    config.host = "127.0.0.1"
    config.port = 0
    config.loopCount = loops
    let server = HTTPServer(configuration: config, router: router)
    return (server, try server.start())
}

/// Whether the broadcaster's Redis subscription is up: a PUBLISH reaches exactly one subscriber.
func subscriptionIsUp(_ publisher: RedisClient, within seconds: Double = 5) -> Bool {
    waitUntil(seconds) {
        if case .integer(let n) = (try? publisher.command(["PUBLISH", "vectorflow:frames:probe", "x"])) ?? .null {
            return n == 1
        }
        return false
    }
}

import Foundation
import Synchronization
import VFTestSupport
import XCTest

@testable import VFBus

/// Against a real redis-server started on a free loopback port (Debian's redis-server package).
final class RedisClientTests: XCTestCase {
    private var dir = ""
    private var port = 0

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server") else {
            throw XCTSkip("redis-server is not installed")
        }
        dir = NSTemporaryDirectory() + "vf-bus-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        port = freePort()
        try startRedis()
    }

    override func tearDown() {
        stopRedis()
        try? FileManager.default.removeItem(atPath: dir)
    }

    private var url: String { "redis://127.0.0.1:\(port)/0" }

    func testCommandsAndReplyTypes() throws {
        let client = try RedisClient(url: url)
        XCTAssertTrue(client.ping())
        let binary: [UInt8] = [0, 1, 2, 0xFF, 0x0D, 0x0A, 0]
        XCTAssertEqual(try client.command(bytes: [Array("SET".utf8), Array("k".utf8), binary]), .status("OK"))
        XCTAssertEqual(try client.command(["GET", "k"]), .string(binary))
        XCTAssertEqual(try client.command(["GET", "missing"]), .null)
        XCTAssertEqual(try client.command(["INCRBY", "n", "41"]), .integer(41))
        XCTAssertEqual(try client.command(["RPUSH", "l", "a", ""]), .integer(2))
        XCTAssertEqual(
            try client.command(["LRANGE", "l", "0", "-1"]), .array([.string(Array("a".utf8)), .string([])]))
        guard case .error(let message) = try client.command(["NOSUCHCOMMAND"]) else {
            return XCTFail("expected an error reply")
        }
        XCTAssertTrue(message.contains("unknown command"), message)
        // A database other than 0 is selected on connect.
        let db2 = try RedisClient(url: "redis://127.0.0.1:\(port)/2")
        XCTAssertEqual(try db2.command(["GET", "k"]), .null)
    }

    func testDownThenBackReconnectsWithoutBlocking() throws {
        let client = try RedisClient(url: url, timeout: 1)
        XCTAssertTrue(client.publish(channel: "c", payload: [1, 2, 3]))
        stopRedis()
        let start = Date()
        for _ in 0..<50 { XCTAssertFalse(client.publish(channel: "c", payload: [1])) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 1.5, "calls while Redis is down must fail fast")
        XCTAssertThrowsError(try client.command(["PING"]))
        try startRedis()
        let deadline = Date().addingTimeInterval(8)
        var ok = false
        while Date() < deadline && !ok {
            ok = client.ping()
            if !ok { usleep(100_000) }
        }
        XCTAssertTrue(ok, "the client reconnects once Redis is back")
    }

    func testConcurrentUseFromManyThreads() throws {
        let client = try RedisClient(url: url)
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            for _ in 0..<100 { _ = try? client.command(["INCR", "counter"]) }
            _ = i
        }
        XCTAssertEqual(try client.command(["GET", "counter"]), .string(Array("800".utf8)))
    }

    func testSubscriberReceivesBinaryPayloadsAndResubscribesAfterRestart() throws {
        let received = Mutex<[(String, [UInt8])]>([])
        let sub = RedisSubscriber(url: url, patterns: ["vectorflow:frames:*", "other:*"]) { channel, payload in
            received.withLock { $0.append((channel, payload)) }
        }
        sub.start()
        defer { sub.stop() }
        let client = try RedisClient(url: url)
        func waitFor(_ what: String, _ condition: () -> Bool) {
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline && !condition() { usleep(50_000) }
            XCTAssertTrue(condition(), what)
        }
        waitFor("subscribed") { sub.subscriptionCount == 1 }
        let payload: [UInt8] = [0, 0, 0, 2, 0x7B, 0x7D, 0xFF, 0xD8, 0]
        // PSUBSCRIBE confirmations for the second pattern may still be in flight: publish until seen.
        waitFor("first message") {
            _ = client.publish(channel: "vectorflow:frames:s1", payload: payload)
            return received.withLock { !$0.isEmpty }
        }
        let first = received.withLock { $0[0] }
        XCTAssertEqual(first.0, "vectorflow:frames:s1")
        XCTAssertEqual(first.1, payload)
        XCTAssertTrue(client.publish(channel: "unrelated", payload: [1]))

        stopRedis()
        try startRedis()
        waitFor("resubscribed") { sub.subscriptionCount >= 2 }
        received.withLock { $0.removeAll() }
        waitFor("message after restart") {
            _ = client.publish(channel: "other:x", payload: [42])
            return received.withLock { !$0.isEmpty }
        }
        XCTAssertEqual(received.withLock { $0[0].0 }, "other:x")
        XCTAssertFalse(received.withLock { $0.contains { $0.0 == "unrelated" } })
    }

    // MARK: - a real redis-server

    /// The motion events' consumer group: a consumer that read entries and did not acknowledge
    /// them gets them again from "0" after a restart (same name); another consumer claims them
    /// once idle; acknowledged entries are deleted from the stream.
    func testStreamReaderPendingClaimAndAcknowledge() throws {
        let admin = try RedisClient(url: url)
        let a = try RedisStreamReader(url: url, stream: "s", group: "g", consumer: "a")
        try a.createGroup()
        try a.createGroup()  // BUSYGROUP: fine
        for k in 0..<3 {
            let reply = try admin.command(bytes: [
                Array("XADD".utf8), Array("s".utf8), Array("*".utf8), Array("n".utf8), [UInt8(k), 0xFF],
            ])
            guard case .string = reply else { return XCTFail("XADD: \(reply)") }
        }
        let first = try a.read(from: ">", count: 10, blockMs: 100)
        XCTAssertEqual(first.map { $0.fields["n"] ?? [] }, [[0, 0xFF], [1, 0xFF], [2, 0xFF]])
        XCTAssertEqual(try a.read(from: ">", count: 10, blockMs: 50), [], "nothing new")
        // "Restart": a new reader with the same name sees its pending entries, in order.
        let again = try RedisStreamReader(url: url, stream: "s", group: "g", consumer: "a")
        XCTAssertEqual(try again.read(from: "0", count: 10, blockMs: nil).map(\.id), first.map(\.id))
        try again.acknowledge([first[0].id])
        XCTAssertEqual(try again.read(from: "0", count: 10, blockMs: nil).map(\.id), first.dropFirst().map(\.id))
        XCTAssertEqual(try admin.command(["XLEN", "s"]), .integer(2))
        // Another consumer claims what "a" left pending once it is idle long enough.
        let b = try RedisStreamReader(url: url, stream: "s", group: "g", consumer: "b")
        XCTAssertEqual(try b.claim(minIdleMs: 60_000, start: "0-0", count: 10).0, [], "not idle long enough")
        usleep(60_000)
        let (claimed, _) = try b.claim(minIdleMs: 50, start: "0-0", count: 10)
        XCTAssertEqual(claimed.map(\.id), first.dropFirst().map(\.id))
        XCTAssertEqual(try a.read(from: "0", count: 10, blockMs: nil), [], "no longer a's")
        try b.acknowledge(claimed.map(\.id))
        XCTAssertEqual(try admin.command(["XLEN", "s"]), .integer(0))
        guard case .array(let summary) = try admin.command(["XPENDING", "s", "g"]) else { return XCTFail("XPENDING") }
        XCTAssertEqual(summary.first, .integer(0))
    }

    private func startRedis() throws {
        // posix_spawn + waitpid rather than Foundation's Process, whose waitUntilExit can miss the
        // exit of a child that daemonizes.
        let args = [
            "/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", String(port), "--save", "",
            "--appendonly", "no", "--daemonize", "yes", "--pidfile", dir + "/r.pid", "--dir", dir,
            "--logfile", dir + "/log",
        ]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        XCTAssertEqual(posix_spawn(&pid, args[0], nil, nil, &argv, environ), 0)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if Self.canConnect(port) { return }
            usleep(20_000)
        }
        XCTFail("redis-server did not start")
    }

    private func stopRedis() {
        // SHUTDOWN by port first: it works even when the pid file is not (yet) there.
        if let admin = try? RedisClient(url: url, timeout: 1) { _ = try? admin.command(["SHUTDOWN", "NOSAVE"]) }
        guard let text = try? String(contentsOfFile: dir + "/r.pid", encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else { return }
        kill(pid, SIGKILL)
        let deadline = Date().addingTimeInterval(5)
        // The daemon is not our child: wait for its port to close rather than for the process.
        while Date() < deadline && Self.canConnect(port) { usleep(20_000) }
        try? FileManager.default.removeItem(atPath: dir + "/r.pid")
    }

    static func canConnect(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        } == 0
    }
}

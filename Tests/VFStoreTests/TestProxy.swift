import Foundation
import Glibc
import VFTestSupport

/// A loopback TCP proxy in front of the test PostgreSQL that can lose one reply on purpose: once
/// armed with a marker, the first server-to-client bytes holding it are not forwarded; both sides
/// are closed instead. With PostgreSQL's extended protocol the reply to a statement is flushed at
/// Sync, after the implicit transaction committed, so "the connection died after commit but before
/// the reply" happens for real.
///
/// `@unchecked Sendable`: the mutable state (marker, sockets, flags) is under `lock`; each pump
/// thread owns its two sockets until it closes them.
final class TestProxy: @unchecked Sendable {
    let port: Int
    private let upstreamPort: Int
    private let listener: Int32
    private let lock = NSLock()
    private var marker: [UInt8]?
    private var droppedCount = 0
    private var stopping = false
    private var sockets: Set<Int32> = []
    private var threads = 0

    init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        guard bound, listen(fd, 64) == 0 else {
            close(fd)
            throw NSError(domain: "TestProxy", code: Int(errno))
        }
        listener = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        spawn { self.acceptLoop() }
    }

    /// Loses the next reply that contains `text` (a CommandComplete tag such as "INSERT 0 1").
    func dropReply(containing text: String) { lock.withLock { marker = Array(text.utf8) } }

    /// How many replies were lost so far.
    var dropped: Int { lock.withLock { droppedCount } }

    /// Closes everything and waits (bounded) for the threads.
    func stop() {
        lock.withLock {
            stopping = true
            for s in sockets { shutdown(s, Int32(SHUT_RDWR)) }
        }
        shutdown(listener, Int32(SHUT_RDWR))
        _ = waitUntil(5) { self.lock.withLock { self.threads == 0 } }
        close(listener)
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = UInt16(port).bigEndian
        return a
    }

    private func spawn(_ body: @escaping @Sendable () -> Void) {
        lock.withLock { threads += 1 }
        Thread {
            body()
            self.lock.withLock { self.threads -= 1 }
        }.start()
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = Self.loopback(port: upstreamPort)
            let ok = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            let admitted = lock.withLock { () -> Bool in
                if stopping || !ok { return false }
                sockets.formUnion([client, server])
                return true
            }
            guard admitted else {
                close(client)
                close(server)
                continue
            }
            spawn { self.pump(client: client, server: server) }
        }
    }

    /// Copies bytes both ways until either side closes, or until an armed marker is seen.
    private func pump(client: Int32, server: Int32) {
        defer {
            lock.withLock { sockets.subtract([client, server]) }
            close(client)
            close(server)
        }
        var buf = [UInt8](repeating: 0, count: 65536)
        var tail: [UInt8] = []  // the last server bytes, for a marker split across reads
        while true {
            var fds = [
                pollfd(fd: client, events: Int16(POLLIN), revents: 0),
                pollfd(fd: server, events: Int16(POLLIN), revents: 0),
            ]
            if poll(&fds, 2, 1000) < 0 && errno != EINTR { return }
            if lock.withLock({ stopping }) { return }
            for (k, p) in fds.enumerated() where p.revents != 0 {
                let from = k == 0 ? client : server
                let to = k == 0 ? server : client
                let n = read(from, &buf, buf.count)
                if n <= 0 { return }
                let chunk = Array(buf[0..<n])
                if k == 1 {
                    let lose = lock.withLock { () -> Bool in
                        // Only a marker that ends in this chunk counts (the tail is one byte shorter
                        // than the marker): a reply already forwarded must never match again.
                        guard let m = marker, Self.contains(tail.suffix(m.count - 1) + chunk, m) else { return false }
                        marker = nil
                        droppedCount += 1
                        return true
                    }
                    if lose { return }
                    tail = Array((tail + chunk).suffix(64))
                }
                var off = 0
                while off < chunk.count {
                    // MSG_NOSIGNAL: a peer that closed must not SIGPIPE the whole test process.
                    let w = chunk[off...].withUnsafeBytes { send(to, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if w <= 0 { return }
                    off += w
                }
            }
        }
    }

    private static func contains(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, hay.count >= needle.count else { return false }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] {
            if Array(hay[i..<(i + needle.count)]) == needle { return true }
        }
        return false
    }
}

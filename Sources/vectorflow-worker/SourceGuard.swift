import Foundation
import VFCore
import VFFlow
import VFSync

#if canImport(Glibc)
    import Glibc
#endif

/// The source policy at the worker (VF_SOURCE_ALLOW / VF_SOURCE_DENY, see VFCore's SourcePolicy):
/// before every (re)connect the source's host is resolved and every address checked. FFmpeg may
/// then connect only to those addresses at the source's port (the shim's connection guard, which
/// also stops RTSP redirects elsewhere); an RTSP host with one address is opened by that address.
/// An HTTP(S) source goes through `SourceProxy`, which checks each request FFmpeg makes and lets
/// redirects lead only to the source's own host and port; FFmpeg may connect only to the proxy.
/// A file source may connect nowhere.
/// Used by the capture thread only.
final class SourceGuard {
    let policy: SourcePolicy
    let source: String
    let endpoint: SourceEndpoint?
    private var proxy: SourceProxy?

    struct Prepared {
        var url: String
        var httpProxy: String?
        /// The only TCP peers FFmpeg may connect to for this source (see VideoStream.guardConnections).
        var peers: [(address: [UInt8], port: Int)]
    }

    init(source: String, policy: SourcePolicy) {
        self.source = source
        self.policy = policy
        endpoint = SourceEndpoint(source)  // nil for files
    }

    func prepare() throws(SourcePolicyError) -> Prepared {
        guard let ep = endpoint else { return Prepared(url: source, httpProxy: nil, peers: []) }  // a file: none
        let addresses: [[UInt8]]
        switch policy.check(host: ep.host, port: ep.port) {
        case .failure(let e): throw e
        case .success(let a): addresses = a
        }
        switch ep.scheme {
        case "rtsp":
            // Pinned only when there is one address: FFmpeg tries every address of a name, and a
            // pinned pick among several could be one the camera does not listen on.
            let url = addresses.count == 1 ? ep.replacingHost(in: source, with: addresses[0]) : source
            return Prepared(url: url, httpProxy: nil, peers: addresses.map { ($0, ep.port) })
        case "http", "https":
            let p: SourceProxy
            if let existing = proxy {
                p = existing
            } else {
                p = try SourceProxy(origin: ep, policy: policy)
                proxy = p
            }
            _ = p.takeRefusal()
            // FFmpeg reaches the source only through the proxy.
            return Prepared(url: source, httpProxy: p.url, peers: [([127, 0, 0, 1], p.port)])
        default:
            // rtsps: the checked addresses (a pinned address would lose the TLS server name).
            return Prepared(url: source, httpProxy: nil, peers: addresses.map { ($0, ep.port) })
        }
    }

    /// What the proxy or the connection guard refused since the last `prepare`: the reason an
    /// open (or a read) failed.
    func takeRefusal() -> String? {
        if let r = proxy?.takeRefusal() { return r }
        guard let peer = VideoStream.refusedConnection, let ep = endpoint else { return nil }
        return "source policy: the source led to \(peer), not followed (only \(ep.host) port \(ep.port) is)"
    }
}

/// A forward proxy on 127.0.0.1 for one HTTP(S) source: FFmpeg's `http_proxy` option sends every
/// request (`GET http://host/...`) or TLS tunnel (`CONNECT host:port`) here, redirects included.
/// Each is allowed only to the source's own host and port and only to addresses the policy allows;
/// the proxy connects to the address it checked, so the name is not looked up twice.
/// A refusal answers 403 and is kept for the worker's status.
final class SourceProxy: @unchecked Sendable {
    // @unchecked: `refusal` and `active` are guarded by `lock`; everything else is set in init.
    let origin: SourceEndpoint
    let policy: SourcePolicy
    let port: Int
    private let listenFD: Int32
    private let lock = Lock()
    private var refusal: String?
    private var active = 0

    static let maxConnections = 8
    static let maxHeadBytes = 16 * 1024
    /// A connection with no traffic either way for this long is closed.
    static let idleTimeoutMs: Int32 = 60_000

    var url: String { "http://127.0.0.1:\(port)" }

    init(origin: SourceEndpoint, policy: SourcePolicy) throws(SourcePolicyError) {
        self.origin = origin
        self.policy = policy
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SourcePolicyError("source proxy: socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard bound == 0, listen(fd, 16) == 0, named == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw SourcePolicyError("source proxy: cannot listen on 127.0.0.1: \(why)")
        }
        listenFD = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        let t = Thread { [self] in acceptLoop() }
        t.name = "vf-source-proxy"
        t.start()
    }

    func takeRefusal() -> String? {
        lock.lock()
        defer { lock.unlock() }
        let r = refusal
        refusal = nil
        return r
    }

    private func refuse(_ client: Int32, _ why: String) {
        lock.lock()
        refusal = why
        lock.unlock()
        let body = why + "\n"
        writeAll(
            client,
            Array("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8))
    }

    private func acceptLoop() {
        while true {
            let c = accept(listenFD, nil, nil)
            if c < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                usleep(100_000)  // EMFILE and the like: try again shortly rather than spin
                continue
            }
            lock.lock()
            let admitted = active < Self.maxConnections
            if admitted { active += 1 }
            lock.unlock()
            guard admitted else {
                close(c)
                continue
            }
            _ = fcntl(c, F_SETFD, FD_CLOEXEC)
            let t = Thread { [self] in
                handle(c)
                close(c)
                lock.lock()
                active -= 1
                lock.unlock()
            }
            t.name = "vf-source-proxy-conn"
            t.start()
        }
    }

    private func handle(_ client: Int32) {
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard let (head, rest) = readHead(client) else { return }
        timeout = timeval(tv_sec: 0, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let lines = head.components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return refuse(client, "source proxy: malformed request line") }
        let method = String(parts[0])
        let target = String(parts[1])
        let version = String(parts[2])

        let host: String
        let port: Int
        var upstreamHead: [UInt8] = []
        if method == "CONNECT" {
            guard let ep = SourceEndpoint("https://" + target) else {
                return refuse(client, "source proxy: bad CONNECT target")
            }
            guard origin.scheme == "https", sameOrigin(ep) else {
                return refuse(client, redirectRefusal("https://\(target)"))
            }
            (host, port) = (ep.host, ep.port)
        } else {
            guard let ep = SourceEndpoint(target), ep.scheme == "http" else {
                return refuse(client, "source proxy: only absolute http:// requests are proxied")
            }
            guard origin.scheme == "http", sameOrigin(ep) else { return refuse(client, redirectRefusal(target)) }
            (host, port) = (ep.host, ep.port)
            let afterAuthority = target.utf8.index(target.utf8.startIndex, offsetBy: ep.hostRange.upperBound)
            var path = String(target[afterAuthority...])
            if let colonPort = path.firstIndex(where: { $0 == "/" || $0 == "?" }) {
                path = String(path[colonPort...])  // drop ":port"
            } else {
                path = "/"
            }
            if path.hasPrefix("?") { path = "/" + path }
            var out = "\(method) \(path) \(version)\r\n"
            for line in lines.dropFirst() where !line.isEmpty && !line.lowercased().hasPrefix("proxy-") {
                out += line + "\r\n"
            }
            out += "\r\n"
            upstreamHead = Array(out.utf8)
        }
        let addresses: [[UInt8]]
        switch policy.check(host: host, port: port) {
        case .failure(let e): return refuse(client, e.description)
        case .success(let a): addresses = a
        }
        guard let upstream = connectAny(addresses, port: port) else {
            writeAll(client, Array("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
            return
        }
        defer { close(upstream) }
        if method == "CONNECT" {
            guard writeAll(client, Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8)) else { return }
        } else {
            guard writeAll(upstream, upstreamHead) else { return }
        }
        if !rest.isEmpty { guard writeAll(upstream, rest) else { return } }
        relay(client, upstream)
    }

    private func sameOrigin(_ ep: SourceEndpoint) -> Bool {
        ep.host.lowercased() == origin.host.lowercased() && ep.port == origin.port
    }

    private func redirectRefusal(_ target: String) -> String {
        "source policy: the source led to \(Credentials.maskURL(target)), not followed (only \(origin.host) port \(origin.port) is)"
    }

    /// The request head (without its blank line) and any bytes read past it.
    private func readHead(_ fd: Int32) -> (String, [UInt8])? {
        var buf: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while buf.count < Self.maxHeadBytes {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            buf.append(contentsOf: chunk[0..<n])
            if let end = Self.headEnd(buf) {
                return (String(decoding: buf[0..<end], as: UTF8.self), Array(buf[(end + 4)...]))
            }
        }
        return nil
    }

    static func headEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 {
            return i
        }
        return nil
    }

    /// A connection to the first address that answers within 5 s.
    private func connectAny(_ addresses: [[UInt8]], port: Int) -> Int32? {
        for a in addresses {
            let family = a.count == 4 ? AF_INET : AF_INET6
            let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            if fd < 0 { continue }
            var storage = sockaddr_storage()
            let len: socklen_t
            if a.count == 4 {
                len = withUnsafeMutablePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                        sin.pointee.sin_family = sa_family_t(AF_INET)
                        sin.pointee.sin_port = UInt16(port).bigEndian
                        withUnsafeMutableBytes(of: &sin.pointee.sin_addr) { $0.copyBytes(from: a) }
                        return socklen_t(MemoryLayout<sockaddr_in>.size)
                    }
                }
            } else {
                len = withUnsafeMutablePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                        sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                        sin6.pointee.sin6_port = UInt16(port).bigEndian
                        withUnsafeMutableBytes(of: &sin6.pointee.sin6_addr) { $0.copyBytes(from: a) }
                        return socklen_t(MemoryLayout<sockaddr_in6>.size)
                    }
                }
            }
            let r = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, len) }
            }
            var ok = r == 0
            if !ok && errno == EINPROGRESS {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                if poll(&p, 1, 5000) == 1 {
                    var err: Int32 = 0
                    var errLen = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errLen)
                    ok = err == 0
                }
            }
            if ok {
                let flags = fcntl(fd, F_GETFL)
                _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
                return fd
            }
            close(fd)
        }
        return nil
    }

    /// Copies bytes both ways until either side closes or the connection idles too long.
    private func relay(_ a: Int32, _ b: Int32) {
        var buf = [UInt8](repeating: 0, count: 64 * 1024)
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        while true {
            let r = poll(&fds, 2, Self.idleTimeoutMs)
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { return }
            for i in 0..<2 where fds[i].revents != 0 {
                let from = fds[i].fd
                let to = fds[1 - i].fd
                let n = buf.withUnsafeMutableBytes { recv(from, $0.baseAddress, $0.count, 0) }
                if n < 0 && errno == EINTR { continue }
                // Straight from the receive buffer: no copy per chunk of the video.
                guard n > 0, buf.withUnsafeBytes({ writeAll(to, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }) else {
                    return
                }
            }
        }
    }

    @discardableResult
    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { writeAll(fd, $0) }
    }

    private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }  // nothing to write
        var off = 0
        while off < bytes.count {
            let n = send(fd, base + off, bytes.count - off, Int32(MSG_NOSIGNAL))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            off += n
        }
        return true
    }
}

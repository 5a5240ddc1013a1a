import CVFNetLinux
import Glibc

/// A failed system call: which call and the `errno` it left.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        guard let cString = strerror(errno) else { return "\(call): errno \(errno)" }
        return "\(call): \(String(cString: cString)) (errno \(errno))"
    }
}

/// Facts about the machine.
public enum System {
    /// Online CPU cores (at least 1).
    public static var coreCount: Int {
        let n = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return n > 0 ? Int(n) : 1
    }

    /// Seconds → nanoseconds, clamped to [0, ~31 years] so NaN or infinity in a limit cannot trap.
    @inline(__always)
    static func nanos(_ seconds: Double) -> UInt64 {
        guard seconds > 0 else { return 0 }
        return UInt64(min(seconds, 1e9) * 1e9)
    }

    /// Monotonic clock in nanoseconds: timers and timeouts never follow wall-clock jumps.
    @inline(__always)
    static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

/// Outcome of a non-blocking call: done, or the kernel said "try again later" (EAGAIN).
enum IOResult<T> {
    case done(T)
    case wouldBlock
}

/// Runs `body` until it does not fail with EINTR; a signal must never look like an error.
@inline(__always)
private func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> T {
    while true {
        let r = body()
        if r == -1 && errno == EINTR { continue }
        return r
    }
}

/// epoll(7) wrappers: the whole backend of the event loop.
enum Epoll {
    static let inEvent = UInt32(EPOLLIN.rawValue)
    static let outEvent = UInt32(EPOLLOUT.rawValue)
    static let errEvent = UInt32(EPOLLERR.rawValue)
    static let hupEvent = UInt32(EPOLLHUP.rawValue)
    static let rdHupEvent = UInt32(EPOLLRDHUP.rawValue)

    static func create() throws -> Int32 {
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        if fd < 0 { throw SystemError(call: "epoll_create1", errno: errno) }
        return fd
    }

    static func add(_ epfd: Int32, fd: Int32, events: UInt32, data: UInt64) throws {
        try ctl(epfd, EPOLL_CTL_ADD, fd, events, data)
    }

    static func modify(_ epfd: Int32, fd: Int32, events: UInt32, data: UInt64) throws {
        try ctl(epfd, EPOLL_CTL_MOD, fd, events, data)
    }

    static func remove(_ epfd: Int32, fd: Int32) {
        var ev = epoll_event()
        _ = epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev)
    }

    private static func ctl(_ epfd: Int32, _ op: Int32, _ fd: Int32, _ events: UInt32, _ data: UInt64) throws {
        var ev = epoll_event()
        ev.events = events
        ev.data.u64 = data
        if epoll_ctl(epfd, op, fd, &ev) != 0 { throw SystemError(call: "epoll_ctl", errno: errno) }
    }

    /// Waits for events; EINTR is reported as zero events so the loop re-checks timers.
    static func wait(_ epfd: Int32, _ events: UnsafeMutablePointer<epoll_event>, max: Int32, timeoutMs: Int32) -> Int {
        let n = epoll_wait(epfd, events, max, timeoutMs)
        if n < 0 {
            if errno == EINTR { return 0 }
            fatalError("epoll_wait failed: \(SystemError(call: "epoll_wait", errno: errno))")
        }
        return Int(n)
    }
}

/// eventfd(2): one per loop, the cross-thread wakeup.
enum EventFD {
    static func create() throws -> Int32 {
        let fd = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        if fd < 0 { throw SystemError(call: "eventfd", errno: errno) }
        return fd
    }

    static func signal(_ fd: Int32) {
        var one: UInt64 = 1
        // EAGAIN means the counter is already non-zero: the loop will wake anyway.
        _ = retryingEINTR { Glibc.write(fd, &one, 8) }
    }

    static func drain(_ fd: Int32) {
        var value: UInt64 = 0
        _ = retryingEINTR { Glibc.read(fd, &value, 8) }
    }
}

/// Socket calls with EINTR retried and EAGAIN mapped to `.wouldBlock`.
enum Socket {
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws -> IOResult<Int> {
        let n = retryingEINTR { Glibc.read(fd, buffer.baseAddress, buffer.count) }
        if n >= 0 { return .done(n) }
        if errno == EAGAIN || errno == EWOULDBLOCK { return .wouldBlock }
        throw SystemError(call: "read", errno: errno)
    }

    /// `send` with MSG_NOSIGNAL: a peer that went away must give EPIPE, not kill the process.
    static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws -> IOResult<Int> {
        let n = retryingEINTR { Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL)) }
        if n >= 0 { return .done(n) }
        if errno == EAGAIN || errno == EWOULDBLOCK { return .wouldBlock }
        throw SystemError(call: "send", errno: errno)
    }

    /// Accepts one connection, already non-blocking and close-on-exec.
    static func accept(_ fd: Int32) throws -> IOResult<(fd: Int32, remote: String)> {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let client = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sp in
                retryingEINTR { accept4(fd, sp, &len, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)) }
            }
        }
        if client >= 0 { return .done((client, describe(&storage))) }
        if errno == EAGAIN || errno == EWOULDBLOCK { return .wouldBlock }
        throw SystemError(call: "accept4", errno: errno)
    }

    static func close(_ fd: Int32) {
        // Never retry close on EINTR: on Linux the descriptor is already released.
        _ = Glibc.close(fd)
    }

    static func shutdownWrite(_ fd: Int32) {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var v = value
        _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    /// A listening TCP socket on `host:port` (IPv4 literal or "localhost"/"0.0.0.0"/"::").
    static func listen(host: String, port: Int, backlog: Int32 = 4096) throws -> Int32 {
        let v6 = host.contains(":")
        let fd = Glibc.socket(
            v6 ? AF_INET6 : AF_INET,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw SystemError(call: "socket", errno: errno) }
        setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        var rc: Int32
        if v6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
            guard inet_pton(AF_INET6, host, &addr.sin6_addr) == 1 else {
                Glibc.close(fd)
                throw SystemError(call: "inet_pton(\(host))", errno: EINVAL)
            }
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
            let literal = host == "localhost" ? "127.0.0.1" : host
            if inet_pton(AF_INET, literal, &addr.sin_addr) != 1 {
                // A host name (e.g. a container's own name): resolve once, at bind time only.
                guard let resolved = resolveIPv4(host) else {
                    Glibc.close(fd)
                    throw SystemError(call: "resolve(\(host))", errno: EINVAL)
                }
                addr.sin_addr = resolved
            }
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        if rc != 0 {
            let e = errno
            Glibc.close(fd)
            throw SystemError(call: "bind(\(host):\(port))", errno: e)
        }
        if Glibc.listen(fd, backlog) != 0 {
            let e = errno
            Glibc.close(fd)
            throw SystemError(call: "listen", errno: e)
        }
        return fd
    }

    /// First IPv4 address of `host` via getaddrinfo (blocking; used only when a server starts).
    static func resolveIPv4(_ host: String) -> in_addr? {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        guard let sa = first.pointee.ai_addr else { return nil }
        return sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
    }

    /// The port a bound socket got (for port 0).
    static func localPort(_ fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let family = storage.ss_family
        return withUnsafePointer(to: &storage) { p -> Int in
            if family == sa_family_t(AF_INET6) {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    Int(UInt16(bigEndian: $0.pointee.sin6_port))
                }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                Int(UInt16(bigEndian: $0.pointee.sin_port))
            }
        }
    }

    /// "ip:port" of a socket address.
    static func describe(_ storage: inout sockaddr_storage) -> String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let family = storage.ss_family
        return withUnsafePointer(to: &storage) { p -> String in
            if family == sa_family_t(AF_INET6) {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a -> String in
                    var addr = a.pointee.sin6_addr
                    inet_ntop(AF_INET6, &addr, &text, socklen_t(text.count))
                    return
                        "[\(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))]:\(UInt16(bigEndian: a.pointee.sin6_port))"
                }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a -> String in
                var addr = a.pointee.sin_addr
                inet_ntop(AF_INET, &addr, &text, socklen_t(text.count))
                return
                    "\(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)):\(UInt16(bigEndian: a.pointee.sin_port))"
            }
        }
    }
}

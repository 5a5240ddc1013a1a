import Glibc
import Synchronization
import VFSync

/// An HTTP/1.1 + WebSocket server on `loopCount` event loops.
public final class HTTPServer: Sendable {
    public let configuration: HTTPServerConfiguration
    private let router: Router
    private let state = Locked<(loops: [EventLoop], listener: TCPListener?, stopped: Bool)>(([], nil, false))

    public init(configuration: HTTPServerConfiguration, router: Router) {
        self.configuration = configuration
        self.router = router
    }

    /// Binds, starts the loops and returns the bound port. Throws `SystemError` on bind failure.
    public func start() throws -> Int {
        // Writes use MSG_NOSIGNAL; ignoring SIGPIPE also covers any other write in the process.
        signal(SIGPIPE, SIG_IGN)
        if state.withLock({ !$0.loops.isEmpty || $0.stopped }) {
            throw SystemError(call: "HTTPServer.start (already started)", errno: EALREADY)
        }
        let fd = try Socket.listen(host: configuration.host, port: configuration.port)
        let port = Socket.localPort(fd)
        let loops = (0..<max(1, configuration.loopCount)).map { EventLoop.start(name: "vfnet-loop-\($0)") }
        let context = ServerContext(router: router, limits: configuration.limits, hooks: configuration.hooks)
        let listener = TCPListener(fd: fd, loop: loops[0], loops: loops, context: context)
        context.listener.withLock { $0 = listener }
        loops[0].execute { listener.start() }
        state.withLock { $0 = (loops, listener, false) }
        return port
    }

    /// Stops accepting, closes every connection (WebSockets get 1001), joins the loop threads.
    public func stop() {
        let loops = state.withLock { s -> [EventLoop] in
            if s.stopped { return [] }
            s.stopped = true
            if let l = s.listener { l.context.listener.withLock { $0 = nil } }
            s.listener = nil
            return s.loops
        }
        // Loop 0 holds the listener: stopping it first ends accepting before the others close.
        for loop in loops { loop.shutdown() }
    }

    public var eventLoops: [EventLoop] { state.withLock { $0.loops } }

    /// Connections currently open (accepted and not yet closed).
    public var openConnections: Int {
        state.withLock { $0.listener?.context.connectionCount.load(ordering: .relaxed) ?? 0 }
    }
}

/// What every connection of one server shares; immutable apart from the atomic counters.
final class ServerContext: Sendable {
    let router: Router
    let limits: HTTPLimits
    let hooks: HTTPServerHooks
    let connectionCount = Atomic<Int>(0)
    /// The listener, so a closing connection can wake it when it paused at `maxConnections`.
    let listener = Locked<TCPListener?>(nil)

    init(router: Router, limits: HTTPLimits, hooks: HTTPServerHooks) {
        self.router = router
        self.limits = limits
        self.hooks = hooks
    }

    func connectionClosed() {
        let before = connectionCount.wrappingSubtract(1, ordering: .acquiringAndReleasing).oldValue
        if before == limits.maxConnections, let listener = listener.withLock({ $0 }) {
            listener.capacityFreed()
        }
    }
}

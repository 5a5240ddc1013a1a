import Glibc
import Synchronization

/// The listening socket: accepts on one loop and deals connections round-robin to all loops.
///
/// At `maxConnections` it stops watching the socket (new clients wait in the kernel backlog)
/// until a connection closes; on EMFILE/ENFILE it pauses 100 ms instead of spinning on a
/// readable socket it cannot accept from. Loop-confined apart from `capacityFreed`, which only
/// hops to the loop, hence `@unchecked Sendable`.
final class TCPListener: Selectable, @unchecked Sendable {
    /// Connections accepted per readable event before other sockets of the loop get a turn.
    static let maxAcceptsPerEvent = 64
    static let fdExhaustionPauseNanos: UInt64 = 100_000_000

    let fd: Int32
    let loop: EventLoop
    let loops: [EventLoop]
    let context: ServerContext
    private var next = 0
    private var closed = false
    private let pausedAtLimit = Atomic<Bool>(false)

    init(fd: Int32, loop: EventLoop, loops: [EventLoop], context: ServerContext) {
        self.fd = fd
        self.loop = loop
        self.loops = loops
        self.context = context
    }

    /// Registers on the accept loop (called on that loop).
    func start() {
        do {
            try loop.register(fd: fd, handler: self, events: Epoll.inEvent)
        } catch {
            closeSocket()
        }
    }

    func readable() {
        for _ in 0..<TCPListener.maxAcceptsPerEvent {
            if context.connectionCount.load(ordering: .acquiring) >= context.limits.maxConnections {
                pausedAtLimit.store(true, ordering: .releasing)
                loop.setInterest(fd: fd, events: 0)
                // A connection may have closed between the check and the flag: look again.
                if context.connectionCount.load(ordering: .acquiring) < context.limits.maxConnections,
                    pausedAtLimit.exchange(false, ordering: .acquiringAndReleasing)
                {
                    loop.setInterest(fd: fd, events: Epoll.inEvent)
                    continue
                }
                return
            }
            let result: IOResult<(fd: Int32, remote: String)>
            do {
                result = try Socket.accept(fd)
            } catch let e as SystemError {
                switch e.errno {
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    loop.setInterest(fd: fd, events: 0)
                    _ = loop.scheduleOnLoop(at: loop.now &+ TCPListener.fdExhaustionPauseNanos) { [self] in
                        if !closed && !pausedAtLimit.load(ordering: .acquiring) {
                            loop.setInterest(fd: fd, events: Epoll.inEvent)
                        }
                    }
                    return
                case ECONNABORTED, EPROTO, EPERM:
                    continue
                default:
                    return
                }
            } catch {
                return
            }
            guard case .done(let accepted) = result else { return }
            context.connectionCount.wrappingAdd(1, ordering: .acquiringAndReleasing)
            let target = loops[next % loops.count]
            next &+= 1
            let context = self.context
            if target === loop {
                HTTPConnection.open(fd: accepted.fd, remoteAddress: accepted.remote, loop: target, context: context)
            } else {
                let fd = accepted.fd
                let remote = accepted.remote
                target.execute { HTTPConnection.open(fd: fd, remoteAddress: remote, loop: target, context: context) }
            }
        }
    }

    /// Called from any thread when the count drops below the limit.
    func capacityFreed() {
        guard pausedAtLimit.exchange(false, ordering: .acquiringAndReleasing) else { return }
        loop.execute { [self] in
            if !closed { loop.setInterest(fd: fd, events: Epoll.inEvent) }
        }
    }

    func writable() {}
    func hangup() {}
    func loopClosing() { closeSocket() }

    func closeSocket() {
        guard !closed else { return }
        closed = true
        loop.deregister(fd: fd)
        Socket.close(fd)
    }
}

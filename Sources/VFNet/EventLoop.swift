import CVFNetLinux
import Glibc
import Synchronization
import VFSync

/// Something with a file descriptor registered on a loop. Called on the loop thread only.
protocol Selectable: AnyObject {
    func readable()
    func writable()
    /// EPOLLERR / EPOLLHUP: the socket is dead; close it.
    func hangup()
    /// The loop is shutting down: close and release everything.
    func loopClosing()
}

/// A scheduled timer; pass it to `EventLoop.cancel`.
public struct TimerHandle: Sendable, Hashable {
    let id: UInt64
}

/// One thread running a level-triggered epoll loop, its timers and tasks handed over by other threads.
///
/// Thread safety: `execute`, `schedule`, `cancel`, `shutdown` and `inEventLoop` may be called from any
/// thread. Everything else (registrations, timers, the scratch buffer) is touched only on the loop's own
/// thread, which is why the class can be `@unchecked Sendable`.
public final class EventLoop: @unchecked Sendable {
    /// Tasks run per iteration before the loop polls again, so a flood of `execute` calls cannot starve I/O.
    static let maxTasksPerIteration = 4096
    /// Events taken from one `epoll_wait`.
    static let maxEventsPerWait: Int32 = 512
    /// Scratch buffer every connection of this loop reads into before copying what it keeps.
    static let readScratchSize = 64 * 1024

    public let name: String
    let epfd: Int32
    private let wakeFD: Int32
    private static let wakeToken = UInt64.max

    private let threadID = Atomic<UInt>(0)
    private let thread = Locked<pthread_t?>(nil)
    private let pending = Locked<[@Sendable () -> Void]>([])
    /// Set by the first cross-thread `execute` after a wakeup; later callers skip the eventfd write.
    private let wakeupPending = Atomic<Bool>(false)
    private let shutdownRequested = Atomic<Bool>(false)
    private let exited = Atomic<Bool>(false)
    private let nextTimerID = Atomic<UInt64>(1)
    /// eventfd writes made by `execute` (for tests of the coalescing).
    let wakeupWrites = Atomic<Int>(0)

    // ---- loop-thread state ----
    private var stopping = false
    private var registrations: [Registration?] = []
    private var nextGeneration: UInt32 = 1
    private var timers = TimerHeap()
    private var running: [@Sendable () -> Void] = []
    private var runningIndex = 0
    /// Monotonic time at the start of the current iteration (ns); cheap "now" for timeouts.
    private(set) var now: UInt64 = System.monotonicNanos()
    let readScratch: UnsafeMutableRawBufferPointer
    var dateCache = HTTPDateCache()

    private struct Registration {
        let handler: Selectable
        let generation: UInt32
        var events: UInt32
    }

    private init(name: String) throws {
        self.name = name
        epfd = try Epoll.create()
        wakeFD = try EventFD.create()
        try Epoll.add(epfd, fd: wakeFD, events: Epoll.inEvent, data: EventLoop.wakeToken)
        readScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: EventLoop.readScratchSize, alignment: 16)
    }

    deinit {
        // The descriptors close only here: a late `execute` from another thread must never write
        // to an eventfd number the process has already reused.
        Socket.close(wakeFD)
        Socket.close(epfd)
        readScratch.deallocate()
    }

    /// Starts a loop on its own thread.
    public static func start(name: String) -> EventLoop {
        let loop: EventLoop
        do {
            loop = try EventLoop(name: name)
        } catch {
            fatalError("cannot create event loop \(name): \(error)")
        }
        let box = Unmanaged.passRetained(loop).toOpaque()
        var t = pthread_t()
        let rc = pthread_create(
            &t, nil,
            { arg in
                let loop = Unmanaged<EventLoop>.fromOpaque(arg!).takeRetainedValue()
                loop.run()
                return nil
            }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        loop.thread.withLock { $0 = t }
        return loop
    }

    /// True when called on this loop's thread.
    public var inEventLoop: Bool {
        threadID.load(ordering: .acquiring) == UInt(pthread_self())
    }

    /// Runs `task` on the loop thread soon. Many calls between two loop iterations cost one eventfd write.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        if exited.load(ordering: .acquiring) { return }
        pending.withLock { $0.append(task) }
        if inEventLoop { return }  // the loop checks the queue before it sleeps
        if !wakeupPending.exchange(true, ordering: .acquiringAndReleasing) {
            wakeupWrites.add(1, ordering: .relaxed)
            EventFD.signal(wakeFD)
        }
    }

    /// Runs `task` on the loop after `seconds`.
    @discardableResult
    public func schedule(after seconds: Double, _ task: @escaping @Sendable () -> Void) -> TimerHandle {
        let id = nextTimerID.wrappingAdd(1, ordering: .relaxed).oldValue
        let delay = System.nanos(seconds)
        if inEventLoop {
            timers.insert(deadline: System.monotonicNanos() &+ delay, id: id, task: task)
        } else {
            let start = System.monotonicNanos()
            execute { [self] in timers.insert(deadline: start &+ delay, id: id, task: task) }
        }
        return TimerHandle(id: id)
    }

    /// Cancels a timer; harmless when it already ran.
    public func cancel(_ timer: TimerHandle) {
        if inEventLoop {
            timers.cancel(timer.id)
        } else {
            execute { [self] in timers.cancel(timer.id) }
        }
    }

    /// Loop-thread variant of `schedule` for the server's own timers: absolute deadline, no hop.
    func scheduleOnLoop(at deadline: UInt64, _ task: @escaping () -> Void) -> TimerHandle {
        let id = nextTimerID.wrappingAdd(1, ordering: .relaxed).oldValue
        timers.insert(deadline: deadline, id: id, task: task)
        return TimerHandle(id: id)
    }

    /// Stops the loop: every registered connection is closed, then the thread is joined
    /// (unless called on the loop itself, which cannot join its own thread).
    public func shutdown() {
        if shutdownRequested.exchange(true, ordering: .acquiringAndReleasing) { return }
        if inEventLoop {
            stopping = true
            if let t = thread.withLock({ $0 }) { pthread_detach(t) }
            return
        }
        pending.withLock { $0.append({ [self] in stopping = true }) }
        EventFD.signal(wakeFD)
        if let t = thread.withLock({ $0 }) { pthread_join(t, nil) }
    }

    // ---- registrations (loop thread) ----

    /// Registers `fd` under a new generation, which tags its epoll events (so events still queued
    /// for an earlier user of the same fd number are told apart and dropped).
    func register(fd: Int32, handler: Selectable, events: UInt32) throws {
        let index = Int(fd)
        if index >= registrations.count {
            registrations.append(contentsOf: repeatElement(nil, count: max(index + 1 - registrations.count, 64)))
        }
        let generation = nextGeneration
        nextGeneration &+= 1
        if nextGeneration == 0 { nextGeneration = 1 }
        try Epoll.add(epfd, fd: fd, events: events, data: UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd)))
        registrations[index] = Registration(handler: handler, generation: generation, events: events)
    }

    /// Changes the interest set; a no-op when unchanged (most calls), so callers can call it freely.
    func setInterest(fd: Int32, events: UInt32) {
        let index = Int(fd)
        guard index < registrations.count, var reg = registrations[index], reg.events != events else { return }
        reg.events = events
        registrations[index] = reg
        try? Epoll.modify(
            epfd, fd: fd, events: events, data: UInt64(reg.generation) << 32 | UInt64(UInt32(bitPattern: fd)))
    }

    /// Removes `fd` before it is closed; later events still queued for it are dropped by generation.
    func deregister(fd: Int32) {
        let index = Int(fd)
        guard index < registrations.count, registrations[index] != nil else { return }
        registrations[index] = nil
        Epoll.remove(epfd, fd: fd)
    }

    // ---- the loop ----

    private func run() {
        threadID.store(UInt(pthread_self()), ordering: .releasing)
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Int(EventLoop.maxEventsPerWait))
        defer { events.deallocate() }
        while !stopping {
            let n = Epoll.wait(epfd, events, max: EventLoop.maxEventsPerWait, timeoutMs: pollTimeout())
            now = System.monotonicNanos()
            for i in 0..<n {
                dispatch(events[i])
            }
            runTimers()
            runTasks()
        }
        exited.store(true, ordering: .releasing)
        // Close everything still registered; their closures and buffers go with them.
        for case let reg? in registrations {
            reg.handler.loopClosing()
        }
        registrations = []
        timers = TimerHeap()
        running = []
        pending.withLock { q in q.removeAll() }
    }

    private func pollTimeout() -> Int32 {
        if runningIndex < running.count { return 0 }
        if !pending.withLock({ $0.isEmpty }) { return 0 }
        guard let next = timers.nextDeadline() else { return -1 }
        let current = System.monotonicNanos()
        if next <= current { return 0 }
        // Round up so a timer is never polled a millisecond early and spun on.
        return Int32(min((next - current + 999_999) / 1_000_000, 60_000))
    }

    private func dispatch(_ event: epoll_event) {
        let data = event.data.u64
        if data == EventLoop.wakeToken {
            EventFD.drain(wakeFD)
            // Cleared before `runTasks` swaps the queue, so a task queued after the swap signals again.
            wakeupPending.store(false, ordering: .releasing)
            return
        }
        let fd = Int(UInt32(truncatingIfNeeded: data))
        let generation = UInt32(truncatingIfNeeded: data >> 32)
        let flags = event.events
        guard fd < registrations.count, let reg = registrations[fd], reg.generation == generation else { return }
        if flags & Epoll.inEvent != 0 {
            reg.handler.readable()
        }
        if flags & Epoll.outEvent != 0 {
            // The read handler may have closed the socket or the fd may now be someone else's.
            guard let again = registrations[fd], again.generation == generation else { return }
            again.handler.writable()
        }
        if flags & (Epoll.errEvent | Epoll.hupEvent) != 0 {
            guard let again = registrations[fd], again.generation == generation else { return }
            again.handler.hangup()
        }
    }

    private func runTimers() {
        let current = System.monotonicNanos()
        // Timers added by a running timer wait for the next iteration; bounded work per turn.
        var budget = 4096
        while budget > 0, let task = timers.popExpired(now: current) {
            budget -= 1
            task()
        }
    }

    private func runTasks() {
        if runningIndex >= running.count {
            running.removeAll(keepingCapacity: true)
            runningIndex = 0
            pending.withLock { swap(&$0, &running) }
        }
        let end = min(running.count, runningIndex + EventLoop.maxTasksPerIteration)
        while runningIndex < end {
            let task = running[runningIndex]
            runningIndex += 1
            task()
        }
        if runningIndex >= running.count {
            // Release the finished closures now (they may hold connections), and the memory
            // of a one-off burst.
            running.removeAll(keepingCapacity: running.capacity <= 65_536)
            runningIndex = 0
        }
    }
}

/// Binary min-heap of timer deadlines.
///
/// Why a heap and not a timer wheel or a timerfd per timer: the loop needs only "the nearest
/// deadline" (for `epoll_wait`'s timeout) and "pop what expired", both O(log n) here with no
/// syscalls. Connection timeouts re-arm lazily (one heap entry per connection, moved only when
/// a deadline gets earlier), so the heap stays as small as the number of connections.
/// Cancellation is lazy: the task is dropped at once, its heap slot when it surfaces or when
/// cancelled slots outnumber live ones.
struct TimerHeap {
    private struct Entry {
        let deadline: UInt64
        let id: UInt64
    }
    private var heap: [Entry] = []
    private var tasks: [UInt64: () -> Void] = [:]

    mutating func nextDeadline() -> UInt64? {
        while let top = heap.first, tasks[top.id] == nil {
            _ = popTop()
        }
        return heap.first?.deadline
    }

    mutating func insert(deadline: UInt64, id: UInt64, task: @escaping () -> Void) {
        tasks[id] = task
        heap.append(Entry(deadline: deadline, id: id))
        siftUp(heap.count - 1)
    }

    mutating func cancel(_ id: UInt64) {
        guard tasks.removeValue(forKey: id) != nil else { return }
        if heap.count > 1024, tasks.count * 2 < heap.count {
            heap.removeAll { tasks[$0.id] == nil }
            // Re-heapify after the purge.
            var i = heap.count / 2 - 1
            while i >= 0 {
                siftDown(i)
                i -= 1
            }
        }
    }

    mutating func popExpired(now: UInt64) -> (() -> Void)? {
        while let top = heap.first, top.deadline <= now {
            _ = popTop()
            if let task = tasks.removeValue(forKey: top.id) { return task }
        }
        return nil
    }

    private mutating func popTop() -> Entry {
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
        return top
    }

    private func less(_ a: Entry, _ b: Entry) -> Bool {
        a.deadline < b.deadline || (a.deadline == b.deadline && a.id < b.id)
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            if !less(heap[i], heap[parent]) { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let n = heap.count
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var m = i
            if l < n, less(heap[l], heap[m]) { m = l }
            if r < n, less(heap[r], heap[m]) { m = r }
            if m == i { return }
            heap.swapAt(i, m)
            i = m
        }
    }
}

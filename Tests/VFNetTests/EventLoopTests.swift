import Glibc
import Synchronization
import XCTest

@testable import VFNet

final class EventLoopTests: XCTestCase {
    func testExecuteFromManyThreadsRunsEveryTaskInOrderPerThread() {
        let loop = EventLoop.start(name: "t-exec")
        defer { loop.shutdown() }
        let threads = 4
        let perThread = 5_000
        let seen = Mutex<[Int]>(Array(repeating: -1, count: threads))
        let outOfOrder = Atomic<Int>(0)
        let done = Atomic<Int>(0)
        DispatchLikeThreads.run(threads) { t in
            for i in 0..<perThread {
                loop.execute {
                    XCTAssertTrue(loop.inEventLoop)
                    seen.withLock { s in
                        if s[t] != i - 1 { outOfOrder.add(1, ordering: .relaxed) }
                        s[t] = i
                    }
                    done.add(1, ordering: .relaxed)
                }
            }
        }
        XCTAssertTrue(waitFor { done.load(ordering: .relaxed) == threads * perThread })
        XCTAssertEqual(outOfOrder.load(ordering: .relaxed), 0)
        XCTAssertFalse(loop.inEventLoop)
    }

    func testCrossThreadExecutesCoalesceIntoFewWakeups() {
        let loop = EventLoop.start(name: "t-coalesce")
        defer { loop.shutdown() }
        let started = Atomic<Bool>(false)
        let queued = Atomic<Bool>(false)
        loop.execute {
            started.store(true, ordering: .relaxed)
            // Keep the loop busy until the whole burst below is queued (bounded wait).
            for _ in 0..<5_000 where !queued.load(ordering: .acquiring) { usleep(1_000) }
        }
        XCTAssertTrue(waitFor { started.load(ordering: .relaxed) })
        let before = loop.wakeupWrites.load(ordering: .relaxed)
        let done = Atomic<Int>(0)
        for _ in 0..<10_000 { loop.execute { done.add(1, ordering: .relaxed) } }
        queued.store(true, ordering: .releasing)
        XCTAssertTrue(waitFor { done.load(ordering: .relaxed) == 10_000 })
        let writes = loop.wakeupWrites.load(ordering: .relaxed) - before
        XCTAssertLessThanOrEqual(writes, 2, "10,000 executes cost \(writes) eventfd writes")
    }

    /// An event already fetched by `epoll_wait` for a descriptor that is closed and reused within
    /// the same batch must not reach the new owner (the generation id in `epoll_data`).
    func testStaleEventForReusedDescriptorIsDropped() throws {
        final class Recorder: Selectable, @unchecked Sendable {  // touched on the loop thread only
            let onRead: (Recorder) -> Void
            var reads = 0
            init(_ onRead: @escaping (Recorder) -> Void) { self.onRead = onRead }
            func readable() {
                reads += 1
                onRead(self)
            }
            func writable() {}
            func hangup() {}
            func loopClosing() {}
        }
        let loop = EventLoop.start(name: "t-gen")
        defer { loop.shutdown() }
        let result = Mutex<(reused: Bool, newOwnerReads: Int, closerRan: Bool)?>(nil)
        loop.execute {
            var p0: [Int32] = [0, 0]
            var p1: [Int32] = [0, 0]
            pipe(&p0)
            pipe(&p1)
            let victim = Recorder { _ in }
            let closer = Recorder { _ in
                var b: UInt8 = 0
                _ = read(p0[0], &b, 1)
                loop.deregister(fd: p0[0])
                loop.deregister(fd: p1[0])
                close(p1[0])
                close(p1[1])
                var p2: [Int32] = [0, 0]
                pipe(&p2)
                let reused = p2[0] == p1[0]
                let owner = Recorder { _ in }
                try? loop.register(fd: p2[0], handler: owner, events: Epoll.inEvent)
                let fds = [p2[0], p2[1], p0[0], p0[1]]
                // Report after the rest of this epoll batch was dispatched.
                loop.schedule(after: 0.05) {
                    result.withLock { $0 = (reused, owner.reads, true) }
                    loop.deregister(fd: fds[0])
                    for fd in fds { close(fd) }
                }
            }
            try? loop.register(fd: p0[0], handler: closer, events: Epoll.inEvent)
            try? loop.register(fd: p1[0], handler: victim, events: Epoll.inEvent)
            var one: UInt8 = 1
            _ = write(p0[1], &one, 1)  // ready first: its handler runs first in the batch
            _ = write(p1[1], &one, 1)
        }
        XCTAssertTrue(waitFor { result.withLock { $0 } != nil })
        let r = try XCTUnwrap(result.withLock { $0 })
        XCTAssertTrue(r.closerRan)
        if r.reused {
            XCTAssertEqual(r.newOwnerReads, 0, "a stale event reached the descriptor's new owner")
        }
    }

    func testTimersFireInDeadlineOrderAndCancelWorks() {
        let loop = EventLoop.start(name: "t-timers")
        defer { loop.shutdown() }
        let order = Mutex<[Int]>([])
        let start = System.monotonicNanos()
        loop.schedule(after: 0.06) { order.withLock { $0.append(3) } }
        loop.schedule(after: 0.02) { order.withLock { $0.append(1) } }
        let cancelled = loop.schedule(after: 0.03) { order.withLock { $0.append(99) } }
        loop.schedule(after: 0.04) { order.withLock { $0.append(2) } }
        loop.cancel(cancelled)
        XCTAssertTrue(waitFor { order.withLock { $0.count } == 3 })
        XCTAssertEqual(order.withLock { $0 }, [1, 2, 3])
        XCTAssertGreaterThanOrEqual(System.monotonicNanos() - start, 60_000_000)
    }

    func testChainedShortTimersKeepTheirRate() {
        let loop = EventLoop.start(name: "t-chain")
        defer { loop.shutdown() }
        let count = Atomic<Int>(0)
        @Sendable func tick() {
            if count.add(1, ordering: .relaxed).newValue < 200 {
                loop.schedule(after: 0.001) { tick() }
            }
        }
        let start = System.monotonicNanos()
        loop.execute { tick() }
        XCTAssertTrue(waitFor(seconds: 5) { count.load(ordering: .relaxed) == 200 })
        let elapsed = Double(System.monotonicNanos() - start) / 1e9
        XCTAssertLessThan(elapsed, 3.0, "200 chained 1 ms timers took \(elapsed) s")
    }

    func testManyCancelledTimersDoNotAccumulate() {
        let loop = EventLoop.start(name: "t-cancel")
        defer { loop.shutdown() }
        let fired = Atomic<Int>(0)
        let done = Atomic<Bool>(false)
        loop.execute {
            for _ in 0..<50_000 {
                let h = loop.schedule(after: 100) { fired.add(1, ordering: .relaxed) }
                loop.cancel(h)
            }
            loop.schedule(after: 0.01) { done.store(true, ordering: .relaxed) }
        }
        XCTAssertTrue(waitFor { done.load(ordering: .relaxed) })
        XCTAssertEqual(fired.load(ordering: .relaxed), 0)
    }

    func testShutdownJoinsAndLaterExecuteIsDropped() {
        let loop = EventLoop.start(name: "t-stop")
        let ran = Atomic<Int>(0)
        loop.execute { ran.add(1, ordering: .relaxed) }
        XCTAssertTrue(waitFor { ran.load(ordering: .relaxed) == 1 })
        loop.shutdown()
        loop.execute { ran.add(1, ordering: .relaxed) }
        usleep(20_000)
        XCTAssertEqual(ran.load(ordering: .relaxed), 1)
        loop.shutdown()  // twice is harmless
    }
}

/// Polls `condition` for up to `seconds`.
func waitFor(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = System.monotonicNanos() + UInt64(seconds * 1e9)
    while System.monotonicNanos() < deadline {
        if condition() { return true }
        usleep(2_000)
    }
    return condition()
}

/// Runs `body(i)` on `n` new threads and joins them.
enum DispatchLikeThreads {
    static func run(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
        final class Box: @unchecked Sendable {  // handed to exactly one thread
            let index: Int
            let body: @Sendable (Int) -> Void
            init(_ i: Int, _ b: @escaping @Sendable (Int) -> Void) {
                index = i
                body = b
            }
        }
        var threads: [pthread_t] = []
        for i in 0..<n {
            var t = pthread_t()
            let box = Unmanaged.passRetained(Box(i, body)).toOpaque()
            pthread_create(
                &t, nil,
                { arg in
                    guard let arg else { return nil }
                    let b = Unmanaged<Box>.fromOpaque(arg).takeRetainedValue()
                    b.body(b.index)
                    return nil
                }, box)
            threads.append(t)
        }
        for t in threads { pthread_join(t, nil) }
    }
}

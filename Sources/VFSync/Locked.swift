import Glibc

/// The project's one lock: a pthread mutex. `Lock` is the bare lock (for state spread over a
/// class's properties); `Locked` is a value behind one.
///
/// Why not `Synchronization.Mutex` or Foundation's `NSLock`: on Linux `Mutex` is a bare futex
/// that ThreadSanitizer cannot see, so every access it guards is reported as a race and real
/// races drown in the noise; one primitive everywhere keeps the lock order readable. TSan
/// understands pthread mutexes; the uncontended cost is the same. `@unchecked Sendable`: the
/// mutex is the synchronisation.
public final class Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always) public func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) public func unlock() { pthread_mutex_unlock(mutex) }

    @inline(__always)
    public func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// A value behind a `Lock`. `@unchecked Sendable`: `value` is only touched inside `withLock`.
public final class Locked<Value: ~Copyable>: @unchecked Sendable {
    private let lock = Lock()
    private var value: Value

    public init(_ value: consuming Value) { self.value = value }

    @inline(__always)
    public func withLock<R: ~Copyable>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

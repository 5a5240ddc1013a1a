import Glibc

/// A value behind a pthread mutex.
///
/// Why not `Synchronization.Mutex`: on Linux it is a bare futex that ThreadSanitizer cannot see,
/// so every access it guards is reported as a race and real races drown in the noise. TSan
/// understands pthread mutexes; the uncontended cost is the same. `@unchecked Sendable`: `value`
/// is only touched inside `withLock`.
final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always)
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

import Dispatch
import XCTest

@testable import VFStore

/// Runs `work` on one of the pool's threads and waits (bounded) for its value: how the store's
/// tests call the database the way the API does.
extension XCTestCase {
    func onPool<T>(_ pool: DatabasePool, timeout: Double = 20, _ work: @escaping @Sendable (Database) -> T) -> T? {
        let slot = PoolSlot<T>()
        let done = DispatchSemaphore(value: 0)
        XCTAssertTrue(
            pool.submit { db in
                slot.value = work(db)
                done.signal()
            })
        XCTAssertEqual(done.wait(timeout: .now() + timeout), .success)
        return slot.value
    }
}

/// One value from a pool thread. `@unchecked Sendable`: written once before the semaphore is
/// signalled, read after the wait.
final class PoolSlot<T>: @unchecked Sendable {
    var value: T?
}

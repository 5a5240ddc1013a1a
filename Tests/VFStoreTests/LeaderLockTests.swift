import Foundation
import VFTestSupport
import XCTest

@testable import VFStore

/// Leadership through a real PostgreSQL advisory lock: one holder at a time, a standby takes over
/// once the holder's session ends, and a holder whose server goes away stops leading at once.
final class LeaderLockTests: XCTestCase {
    func testOneLeaderAtATimeAndTakeoverWhenTheHolderGoes() throws {
        let pg = try TestPostgres()
        defer { pg.close() }
        let first = LeaderLock(url: pg.url, key: 42)
        let second = LeaderLock(url: pg.url, key: 42)
        XCTAssertTrue(first.checkOnce())
        XCTAssertTrue(first.isLeader)
        XCTAssertFalse(second.checkOnce())
        XCTAssertFalse(second.isLeader)
        XCTAssertTrue(first.checkOnce(), "a leader stays leader on its own session")
        // The holder's session ends (as when its process dies): the lock is free for the other.
        first.start()
        first.stop()
        let deadline = Date().addingTimeInterval(10)
        while !second.checkOnce() && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        XCTAssertTrue(second.isLeader)
        XCTAssertFalse(first.isLeader)
    }

    func testLostConnectionIsLostLeadership() throws {
        let pg = try TestPostgres()
        defer { pg.close() }
        let lock = LeaderLock(url: pg.url, key: 7)
        XCTAssertTrue(lock.checkOnce())
        try pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'vectorflow-api'")
        XCTAssertFalse(lock.checkOnce())
        XCTAssertFalse(lock.isLeader)
        XCTAssertTrue(lock.checkOnce(), "the next check reconnects and takes the free lock again")
    }
}

import XCTest

@testable import VFBus

final class RedisURLTests: XCTestCase {
    func testDefaultsAndFullForm() throws {
        let a = try RedisURL("redis://localhost:6379/0")
        XCTAssertEqual(a.host, "localhost")
        XCTAssertEqual(a.port, 6379)
        XCTAssertEqual(a.db, 0)
        XCTAssertNil(a.password)
        let b = try RedisURL("redis://:s%40cret@10.0.0.5:7000/3")
        XCTAssertEqual(b.host, "10.0.0.5")
        XCTAssertEqual(b.port, 7000)
        XCTAssertEqual(b.db, 3)
        XCTAssertEqual(b.password, "s@cret")
        XCTAssertNil(b.username)
        let c = try RedisURL("redis://user:pw@redis")
        XCTAssertEqual(c.host, "redis")
        XCTAssertEqual(c.port, 6379)
        XCTAssertEqual(c.username, "user")
        XCTAssertEqual(c.password, "pw")
        let d = try RedisURL("redis://[::1]:6380/2")
        XCTAssertEqual(d.host, "::1")
        XCTAssertEqual(d.port, 6380)
        XCTAssertEqual(d.db, 2)
    }

    func testBadURLsAreErrors() {
        for bad in [
            "http://localhost", "redis://host:0", "redis://host:99999", "redis://host:abc", "redis://host/x",
            "redis://host/-1", "",
        ] {
            XCTAssertThrowsError(try RedisURL(bad), bad)
        }
    }
}

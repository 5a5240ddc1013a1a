import XCTest

final class VFNetPlaceholderTests: XCTestCase {
    func testBuilds() {}
}

import XCTest

final class VFCorePlaceholderTests: XCTestCase {
    func testBuilds() {}
}

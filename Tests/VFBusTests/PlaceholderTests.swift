import XCTest

final class VFBusPlaceholderTests: XCTestCase {
    func testBuilds() {}
}

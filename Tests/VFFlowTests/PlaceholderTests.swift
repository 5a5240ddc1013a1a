import XCTest

final class VFFlowPlaceholderTests: XCTestCase {
    func testBuilds() {}
}

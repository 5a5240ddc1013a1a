import XCTest

final class VFRuntimePlaceholderTests: XCTestCase {
    func testBuilds() {}
}

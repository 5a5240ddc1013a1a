import XCTest

@testable import VFCore

final class CredentialsTests: XCTestCase {
    func testURLs() {
        let cases: [(String, String)] = [
            ("rtsp://admin:hunter2@cam.local:554/live", "rtsp://admin:***@cam.local:554/live"),
            ("rtsp://token@cam.local/live", "rtsp://***@cam.local/live"),
            ("rtsp://a:b:c@cam/x", "rtsp://a:***@cam/x"),
            ("rtsp://u:p@ss@cam/x", "rtsp://u:***@cam/x"),
            ("http://cam.local/a@b", "http://cam.local/a@b"),
            ("rtsp://cam.local/live", "rtsp://cam.local/live"),
            ("https://cam/x.mjpg?user=bob&Password=pw&res=hd#f", "https://cam/x.mjpg?user=bob&Password=***&res=hd#f"),
            ("https://cam/x?token=abc", "https://cam/x?token=***"),
            ("file:///videos/a.mp4", "file:///videos/a.mp4"),
            ("not a url", "not a url"),
        ]
        for (raw, shown) in cases {
            XCTAssertEqual(Credentials.maskURL(raw), shown, raw)
            XCTAssertFalse(Credentials.maskURL(raw).contains("hunter2"))
        }
    }

    func testText() {
        XCTAssertEqual(
            Credentials.maskText("cannot open 'rtsp://admin:hunter2@10.0.0.9/cam' (401), then rtsp://x@y/z."),
            "cannot open 'rtsp://admin:***@10.0.0.9/cam' (401), then rtsp://***@y/z.")
        XCTAssertEqual(Credentials.maskText("no url here: 10:20://"), "no url here: 10:20://")
        XCTAssertEqual(Credentials.maskText("plain"), "plain")
    }

    func testUnmaskKeepsTheStoredSecretOnlyForTheMaskedForm() {
        let stored = "rtsp://admin:hunter2@cam/live"
        XCTAssertEqual(Credentials.unmask("rtsp://admin:***@cam/live", stored: stored), stored)
        XCTAssertEqual(Credentials.unmask("rtsp://admin:new@cam/live", stored: stored), "rtsp://admin:new@cam/live")
        XCTAssertEqual(Credentials.unmask("rtsp://admin:***@other/live", stored: stored), "rtsp://admin:***@other/live")
        XCTAssertEqual(Credentials.unmask("rtsp://cam/live", stored: "rtsp://cam/live"), "rtsp://cam/live")
    }
}

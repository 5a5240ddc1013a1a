import VFCore
import VFStore
import XCTest

@testable import VFControl

/// The webhook signature (checked against Python's hmac) and the retry delays (capped, growing).
final class WebhookSenderTests: XCTestCase {
    func testSignatureIsHMACSHA256OfTimestampDotBody() {
        let sig = WebhookSender.signature(
            secret: Array("Jefe".utf8), timestamp: 1_700_000_000, body: Array("{\"id\":\"x\"}".utf8))
        XCTAssertEqual(sig, "t=1700000000,v1=83aaec65374de010f05f69354cbddd8bb459ab71908c7579dd27ff250b557358")
    }

    func testRetryDelaysGrowAndStayUnderTheCap() throws {
        let env = ["VF_WEBHOOK_RETRY_INITIAL": "1", "VF_WEBHOOK_RETRY_MAX": "8"]
        let source = try ConfigurationSource(arguments: [], environment: env, settings: EventSettings.declarations)
        let settings = try EventSettings(source)
        XCTAssertNil(settings.webhookSecret)
        let pool = DatabasePool(url: "postgresql://x@127.0.0.1:1/x", size: 1)  // never used: no job is queued
        defer { pool.shutdown() }
        let sender = WebhookSender(settings: settings, pool: pool, metrics: EventMetrics(registry: .init()))
        for attempts in 1...12 {
            let d = sender.retryDelay(afterAttempts: attempts)
            let full = min(8, pow(2, Double(attempts - 1)))
            XCTAssertGreaterThanOrEqual(d, full / 2, "attempt \(attempts)")
            XCTAssertLessThanOrEqual(d, full, "attempt \(attempts)")
        }
    }

    func testURLsNeedASecretAndMustBeHTTP() throws {
        func settings(_ env: [String: String]) throws -> EventSettings {
            try EventSettings(
                ConfigurationSource(arguments: [], environment: env, settings: EventSettings.declarations))
        }
        XCTAssertThrowsError(try settings(["VF_WEBHOOK_URLS": "http://h/x"]))
        XCTAssertThrowsError(try settings(["VF_WEBHOOK_URLS": "ftp://h/x", "VF_WEBHOOK_SECRET": "s"]))
        let ok = try settings(["VF_WEBHOOK_URLS": "http://h/x, https://u:p@h/y", "VF_WEBHOOK_SECRET": "s"])
        XCTAssertEqual(ok.webhookURLs, ["http://h/x", "https://u:p@h/y"])
        do {
            _ = try settings(["VF_WEBHOOK_URLS": "gopher://u:secretpw@h/y", "VF_WEBHOOK_SECRET": "s"])
            XCTFail("accepted")
        } catch {
            XCTAssertFalse("\(error)".contains("secretpw"), "a refused URL is shown masked")
        }
    }
}

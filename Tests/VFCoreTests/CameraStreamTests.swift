import XCTest

@testable import VFCore

final class CameraStreamTests: XCTestCase {
    func testJSONShape() throws {
        let s = CameraStream(
            id: "6f9619ff-8b86-d011-b42d-00cf4fc964ff", name: "Dock \"A\"",
            settings: StreamSettings(source: "rtsp://h/x", gridSize: 16, threshold: 1.2), isActive: true, createdAt: "2026-01-02T03:04:05.000006Z")
        let v = try JSONParser.parse(s.json)
        XCTAssertEqual(v["name"], .string("Dock \"A\""))
        XCTAssertEqual(v["threshold"], .double(1.2))
        XCTAssertEqual(v["is_active"], .bool(true))
        XCTAssertEqual(v["worker_started_at"], .null)
        XCTAssertEqual(v["status"], .null)
        guard case .object(let m) = v else { return XCTFail() }
        XCTAssertEqual(
            m.map(\.0),
            [
                "id", "name", "rtsp_url", "grid_size", "threshold", "is_active",
                "worker_container_name", "worker_started_at", "created_at", "status",
            ])
    }

    func testMetricsExposition() {
        let m = APIMetrics()
        m.managedStreams.set(to: 3)
        m.observe(method: "GET", route: "/streams", status: 200, seconds: 0.002)
        let text = String(decoding: m.render(), as: UTF8.self)
        XCTAssertTrue(text.contains("vector_flow_managed_streams_total 3"), text)
        XCTAssertTrue(text.contains("vector_flow_active_streams_total 0"), text)
        XCTAssertTrue(
            text.contains(#"vector_flow_http_requests_total{method="GET",route="/streams",status="200"} 1"#), text)
        XCTAssertTrue(text.contains("vector_flow_http_request_duration_seconds_bucket"), text)
        // Methods outside the standard ones share one label value: the exposition stays small.
        let size = m.render().count
        for k in 0..<500 { m.observe(method: "M\(k)", route: "unmatched", status: 405, seconds: 0.001) }
        let after = String(decoding: m.render(), as: UTF8.self)
        XCTAssertTrue(after.contains(#"vector_flow_http_requests_total{method="OTHER",route="unmatched",status="405"} 500"#))
        XCTAssertLessThan(after.utf8.count - size, 4096)
    }
}

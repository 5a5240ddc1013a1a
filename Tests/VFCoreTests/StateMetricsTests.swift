import Prometheus
import XCTest

@testable import VFCore

final class StateMetricsTests: XCTestCase {
    /// The sample lines of `name` in a Prometheus text exposition, without HELP/TYPE.
    private func samples(_ name: String, in bytes: [UInt8]) -> [String] {
        String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
            .filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
    }

    /// The value of the sample of `name` whose labels contain `labels`, or nil when there is none.
    private func value(_ name: String, _ labels: String, in bytes: [UInt8]) -> Double? {
        for line in samples(name, in: bytes) where line.contains(labels) {
            guard let v = line.split(separator: " ").last else { return nil }
            return Double(v)
        }
        return nil
    }

    func testStateGaugeHasOneSeriesPerStateAndOneAtOne() {
        let registry = PrometheusCollectorRegistry()
        let states = ["connecting", "running", "reconnecting", "ended", "failed"]
        let gauge = StateGauge(
            registry: registry, name: "t_state", help: "test", states: states, labels: [("stream_id", "s1")],
            initial: "connecting")
        func current() -> [String] {
            let out = registry.emitToBuffer()
            XCTAssertEqual(samples("t_state", in: out).count, states.count, String(decoding: out, as: UTF8.self))
            return states.filter { s in
                let v = value("t_state", "state=\"\(s)\"", in: out)
                XCTAssertNotNil(v, "no series for \(s)")
                XCTAssertTrue(v == 0 || v == 1, "\(s) = \(String(describing: v))")
                XCTAssertTrue(
                    samples("t_state", in: out).allSatisfy { $0.contains("stream_id=\"s1\"") }, "shared labels kept")
                return v == 1
            }
        }
        XCTAssertEqual(current(), ["connecting"])
        XCTAssertEqual(gauge.state, "connecting")
        for next in ["running", "reconnecting", "running", "failed", "failed", "ended"] {
            gauge.set(next)
            XCTAssertEqual(current(), [next])
            XCTAssertEqual(gauge.state, next)
        }
    }

    func testStateGaugeStartsAtTheInitialState() {
        let registry = PrometheusCollectorRegistry()
        let gauge = StateGauge(
            registry: registry, name: "t_state", help: "test", states: ["a", "b", "c"], initial: "b")
        let out = registry.emitToBuffer()
        XCTAssertEqual(value("t_state", "state=\"a\"", in: out), 0)
        XCTAssertEqual(value("t_state", "state=\"b\"", in: out), 1)
        XCTAssertEqual(value("t_state", "state=\"c\"", in: out), 0)
        XCTAssertEqual(gauge.state, "b")
    }

    func testBuildInfoIsOneWithVersionAndCommit() {
        let registry = PrometheusCollectorRegistry()
        BuildInfoMetric.register(in: registry, version: "9.8.7", commit: "abc123")
        let out = registry.emitToBuffer()
        let lines = samples("vector_flow_build_info", in: out)
        XCTAssertEqual(lines.count, 1, String(decoding: out, as: UTF8.self))
        XCTAssertEqual(value("vector_flow_build_info", "version=\"9.8.7\"", in: out), 1)
        XCTAssertTrue(lines.first?.contains("commit=\"abc123\"") == true, lines.description)
        // Only the two labels: a closed set.
        XCTAssertEqual(lines.first?.filter { $0 == "=" }.count, 2, lines.description)
    }

    func testAPIMetricsExportBuildInfo() {
        let out = APIMetrics().render()
        XCTAssertEqual(samples("vector_flow_build_info", in: out).count, 1)
        XCTAssertEqual(
            value(
                "vector_flow_build_info", "version=\"\(BuildInfo.version)\",commit=\"\(BuildInfo.commit)\"", in: out),
            1, String(decoding: out, as: UTF8.self))
    }
}

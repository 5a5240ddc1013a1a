import Foundation
import VFCore
import XCTest

@testable import VFRuntime

final class WorkerSpecZonesTests: XCTestCase {
    private let settings = StreamSettings(source: "rtsp://cam/1", gridSize: 16, threshold: 1.2)
    private func zone(_ minVectors: Int) -> Zone {
        Zone(
            id: "z1", streamID: "s", name: "door",
            polygon: [ZonePoint(x: 0.1, y: 0.1), ZonePoint(x: 0.9, y: 0.1), ZonePoint(x: 0.5, y: 0.9)],
            rule: ZoneRule(minVectors: minVectors), createdAt: "2026-01-01T00:00:00.000000Z")
    }

    /// Without zones the hash is the one of every earlier version (FNV-1a 64 of
    /// "source\0grid\0threshold", computed independently), so running workers are adopted.
    func testHashWithoutZonesIsUnchanged() {
        let spec = WorkerSpec(streamID: "s", streamName: "cam", settings: settings)
        XCTAssertEqual(spec.configHash, "cfd2c3716cc0cf45")
        XCTAssertNil(
            spec.environment(redisURL: "redis://r", metricsHost: "h", metricsPort: 1)[ZoneEnvironment.variable])
    }

    func testZonesChangeTheHashAndReachTheEnvironment() throws {
        let plain = WorkerSpec(streamID: "s", streamName: "cam", settings: settings)
        let one = WorkerSpec(streamID: "s", streamName: "cam", settings: settings, zones: [zone(5)])
        let other = WorkerSpec(streamID: "s", streamName: "cam", settings: settings, zones: [zone(6)])
        XCTAssertNotEqual(one.configHash, plain.configHash)
        XCTAssertNotEqual(one.configHash, other.configHash)
        let env = one.environment(redisURL: "redis://r", metricsHost: "h", metricsPort: 1)
        let text = try XCTUnwrap(env[ZoneEnvironment.variable])
        XCTAssertEqual(try ZoneEnvironment.decode(text).map(\.rule), [zone(5).rule])
    }

    /// The process runtime's records keep the zones (a worker restarted by the supervisor gets
    /// them again); records of earlier versions have none.
    func testRecordsKeepTheZones() throws {
        let spec = WorkerSpec(streamID: "s", streamName: "cam", settings: settings, zones: [zone(5)])
        let data = try JSONEncoder().encode(spec)
        let back = try JSONDecoder().decode(WorkerSpec.self, from: data)
        XCTAssertEqual(back.configHash, spec.configHash)
        XCTAssertEqual(back.zones.map(\.polygon), spec.zones.map(\.polygon))
        let old = #"{"streamID":"s","streamName":"cam","sourceURL":"rtsp://cam/1","gridSize":16,"threshold":1.2}"#
        let oldSpec = try JSONDecoder().decode(WorkerSpec.self, from: Data(old.utf8))
        XCTAssertEqual(oldSpec.zones, [])
        XCTAssertEqual(oldSpec.configHash, "cfd2c3716cc0cf45")
    }
}

/// The swarm service body carries ZONES like the other runtimes (they share `environment`), and
/// its config-hash label changes with the zones.
final class SwarmZonesTests: XCTestCase {
    func testServiceEnvironmentCarriesTheZones() throws {
        let zone = Zone(
            id: "z1", streamID: "s-1", name: "door",
            polygon: [ZonePoint(x: 0, y: 0), ZonePoint(x: 1, y: 0), ZonePoint(x: 1, y: 1)], rule: ZoneRule(),
            createdAt: "")
        let spec = WorkerSpec(
            streamID: "s-1", streamName: "Gate", settings: StreamSettings(source: "file:///samples/vtest.avi"),
            zones: [zone])
        let c = SwarmRuntimeConfiguration(redisURL: "redis://198.18.0.1:6379/0")
        let body = SwarmRuntime.serviceSpec(
            spec, configuration: c, image: "w", metricsPort: 19123, hostNetwork: "hostid")
        let task = try XCTUnwrap(body["TaskTemplate"] as? [String: Any])
        let container = try XCTUnwrap(task["ContainerSpec"] as? [String: Any])
        let env = try XCTUnwrap(container["Env"] as? [String])
        XCTAssertTrue(env.contains("ZONES=" + ZoneEnvironment.encode([zone])), "\(env)")
        let labels = try XCTUnwrap(body["Labels"] as? [String: String])
        XCTAssertEqual(labels["vectorflow.config_hash"], spec.configHash)
    }
}

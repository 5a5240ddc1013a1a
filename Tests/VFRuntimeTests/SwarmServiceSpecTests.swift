import VFCore
import XCTest

@testable import VFRuntime
import VFCore

/// The service body the swarm runtime sends: what the engine reads from it is checked against
/// the Engine API's field names, since a misspelt field is silently ignored by the engine.
final class SwarmServiceSpecTests: XCTestCase {
    private let spec = WorkerSpec(
        streamID: "s-1", streamName: "Gate", settings: StreamSettings(source: "file:///samples/vtest.avi"))

    func testServiceSpecCarriesLabelsLimitsHardeningAndPlacement() throws {
        let c = SwarmRuntimeConfiguration(
            redisURL: "redis://198.18.0.1:6379/0", constraints: ["node.role==worker"], spreadOver: "node.labels.zone")
        let body = SwarmRuntime.serviceSpec(
            spec, configuration: c, image: "r:5000/w@sha256:ab", metricsPort: 19123, hostNetwork: "hostid",
            forceUpdate: 3)
        XCTAssertEqual(body["Name"] as? String, "vector-worker-s-1")
        let labels = try XCTUnwrap(body["Labels"] as? [String: String])
        XCTAssertEqual(labels["vectorflow.managed"], "true")
        XCTAssertEqual(labels["vectorflow.stream_id"], "s-1")
        XCTAssertEqual(labels["vectorflow.config_hash"], spec.configHash)
        XCTAssertEqual(labels["vectorflow.metrics_port"], "19123")
        let task = try XCTUnwrap(body["TaskTemplate"] as? [String: Any])
        let container = try XCTUnwrap(task["ContainerSpec"] as? [String: Any])
        XCTAssertEqual(container["Image"] as? String, "r:5000/w@sha256:ab")
        XCTAssertEqual(container["ReadOnly"] as? Bool, true)
        XCTAssertEqual(container["CapabilityDrop"] as? [String], ["ALL"])
        XCTAssertEqual(container["Init"] as? Bool, true)
        XCTAssertEqual(container["User"] as? String, "10001:10001")
        let env = try XCTUnwrap(container["Env"] as? [String])
        XCTAssertTrue(env.contains("METRICS_HOST=0.0.0.0") && env.contains("METRICS_PORT=19123"), "\(env)")
        XCTAssertTrue(env.contains("REDIS_URL=redis://198.18.0.1:6379/0"), "\(env)")
        let resources = try XCTUnwrap(task["Resources"] as? [String: [String: Int]])
        XCTAssertEqual(resources["Limits"]?["NanoCPUs"], 1_000_000_000)
        XCTAssertEqual(resources["Limits"]?["Pids"], 128)
        XCTAssertEqual(resources["Reservations"]?["MemoryBytes"], 64 * 1024 * 1024)
        let restart = try XCTUnwrap(task["RestartPolicy"] as? [String: Any])
        XCTAssertEqual(restart["Condition"] as? String, "any")
        XCTAssertEqual(restart["Delay"] as? Int, 2_000_000_000)
        let placement = try XCTUnwrap(task["Placement"] as? [String: Any])
        XCTAssertEqual(placement["Constraints"] as? [String], ["node.role==worker"])
        XCTAssertEqual(
            (placement["Preferences"] as? [[String: [String: String]]])?.first?["Spread"]?["SpreadDescriptor"],
            "node.labels.zone")
        XCTAssertEqual((task["Networks"] as? [[String: String]])?.first?["Target"], "hostid")
        XCTAssertEqual(task["ForceUpdate"] as? Int, 3)
        XCTAssertEqual(
            ((body["Mode"] as? [String: Any])?["Replicated"] as? [String: Int])?["Replicas"], 1)
        // The body is valid JSON for the engine.
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(SwarmRuntime.json(body).utf8)))
    }

    /// By default no spread preference: with one (a label per node) the scheduler picks a random
    /// node for each one-replica service; without one it takes the node with the fewest tasks.
    func testDefaultPlacementHasNoSpreadPreference() throws {
        let body = SwarmRuntime.serviceSpec(
            spec, configuration: SwarmRuntimeConfiguration(), image: "w", metricsPort: 19100, hostNetwork: "h")
        let task = try XCTUnwrap(body["TaskTemplate"] as? [String: Any])
        let placement = try XCTUnwrap(task["Placement"] as? [String: Any])
        XCTAssertNil(placement["Preferences"])
        XCTAssertNil(placement["Constraints"])
        let settings = try RuntimeSettings(
            ConfigurationSource(
                arguments: [], environment: [:], settings: RuntimeSettings.declarations + LogSettings.declarations),
            redisURL: "redis://r:6379/0", apiBinaryDirectory: "/x")
        XCTAssertEqual(settings.swarmSpread, "")
    }

    func testMetricsPortIsStablePerStreamAndSkipsTakenPorts() {
        let range = 19100...19109
        let p = SwarmRuntime.metricsPort(streamID: "abc", range: range, taken: [])
        XCTAssertEqual(p, SwarmRuntime.metricsPort(streamID: "abc", range: range, taken: []))
        guard let first = p else { return XCTFail("no port") }
        XCTAssertTrue(range.contains(first))
        let next = SwarmRuntime.metricsPort(streamID: "abc", range: range, taken: [first])
        XCTAssertNotEqual(next, first)
        XCTAssertNil(SwarmRuntime.metricsPort(streamID: "abc", range: range, taken: Set(range)))
    }

    func testImageNames() {
        XCTAssertEqual(SwarmRuntime.registry(of: "198.18.0.1:5000/vf/worker:1"), "198.18.0.1:5000")
        XCTAssertNil(SwarmRuntime.registry(of: "vectorflow-worker:latest"))
        XCTAssertNil(SwarmRuntime.registry(of: "library/worker:1"))
        XCTAssertEqual(SwarmRuntime.split("h:5000/a/b:7").repository, "h:5000/a/b")
        XCTAssertEqual(SwarmRuntime.split("h:5000/a/b:7").tag, "7")
        XCTAssertEqual(SwarmRuntime.split("h:5000/a/b").tag, "latest")
    }

    func testPlacementPrefersTheTaskMeantToRunAndKeepsTheLastError() throws {
        let tasks: [[String: Any]] = [
            [
                "NodeID": "n1", "DesiredState": "shutdown", "UpdatedAt": "2026-01-01T00:00:01.5Z",
                "Status": ["State": "failed", "Err": "port in use", "Timestamp": "2026-01-01T00:00:01.5Z"],
            ],
            [
                "NodeID": "n2", "DesiredState": "running", "UpdatedAt": "2026-01-01T00:00:02.123456789Z",
                "Status": ["State": "pending", "Timestamp": "2026-01-01T00:00:02.123456789Z"],
            ],
        ]
        let nodes = SwarmRuntime.nodeInfos([
            ["ID": "n2", "Description": ["Hostname": "edge-2"], "Status": ["State": "ready", "Addr": "198.18.0.3"]]
        ])
        XCTAssertEqual(nodes["n2"], SwarmRuntime.NodeInfo(address: "198.18.0.3", state: "ready", hostname: "edge-2"))
        let p = try XCTUnwrap(SwarmRuntime.placement(tasks: tasks, nodes: nodes))
        XCTAssertEqual(p.nodeID, "n2")
        XCTAssertEqual(p.nodeName, "edge-2")
        XCTAssertEqual(p.address, "198.18.0.3")
        XCTAssertEqual(p.taskState, "pending")
        XCTAssertEqual(p.message, "port in use")
        XCTAssertEqual(try XCTUnwrap(p.since), 1_767_225_602.123, accuracy: 0.001)
        // A node the engine no longer lists: the task still shows, without a name or address.
        let gone = try XCTUnwrap(SwarmRuntime.placement(tasks: tasks, nodes: [:]))
        XCTAssertEqual(gone.nodeID, "n2")
        XCTAssertEqual(gone.nodeName, "")
        XCTAssertEqual(gone.address, "")
    }

    func testFileSDKeepsItsFormatWithoutExtraLabels() {
        let plain = String(decoding: FileSDWriter.render([FileSDTarget(target: "h:1", streamID: "a", streamName: "A")]), as: UTF8.self)
        XCTAssertEqual(plain, "[\n  {\"targets\":[\"h:1\"],\"labels\":{\"stream_id\":\"a\",\"stream_name\":\"A\"}}\n]\n")
        let noded = String(
            decoding: FileSDWriter.render([
                FileSDTarget(target: "h:1", streamID: "a", streamName: "A", extraLabels: ["node": "n1"])
            ]), as: UTF8.self)
        XCTAssertTrue(noded.contains("\"stream_name\":\"A\",\"node\":\"n1\"}"), noded)
    }
}

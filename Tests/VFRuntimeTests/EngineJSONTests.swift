import Foundation
import XCTest

@testable import VFRuntime

/// The engine's bodies go through the project's JSON writer: the same text Foundation writes
/// with sorted keys, for the value kinds the runtimes use.
final class EngineJSONTests: XCTestCase {
    func testBodiesMatchFoundationsSortedOutput() throws {
        let body: [String: Any] = [
            "Image": "vectorflow-worker@sha256:ab", "Env": ["A=1", "B=\"q\"\n"], "Labels": ["z": "1", "a": "2"],
            "HostConfig": [
                "NanoCpus": 1_000_000_000, "Memory": 536_870_912, "ReadonlyRootfs": true, "CapDrop": ["ALL"],
                "RestartPolicy": ["Name": "unless-stopped", "MaximumRetryCount": 0],
            ],
            "TaskTemplate": ["Placement": ["Preferences": [[String: Any]]()], "RestartPolicy": ["Delay": 2_000_000_000]],
            "Empty": [String: Any](), "Ratio": 0.5, "Nothing": NSNull(), "Name": "vector-worker-ü",
        ]
        let ours = String(decoding: EngineJSON.encode(body), as: UTF8.self)
        let foundation = String(
            decoding: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes]),
            as: UTF8.self)
        XCTAssertEqual(ours, foundation)
        let back = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(ours.utf8)) as? [String: Any])
        XCTAssertEqual(back["Env"] as? [String], ["A=1", "B=\"q\"\n"])
        XCTAssertEqual((back["HostConfig"] as? [String: Any])?["Memory"] as? Int, 536_870_912)
        XCTAssertEqual(String(decoding: EngineJSON.encode(["label": ["vectorflow.managed=true"]]), as: UTF8.self),
                       #"{"label":["vectorflow.managed=true"]}"#)
    }
}

import Foundation
import Glibc
import VFTestSupport
import XCTest

@testable import VFRuntime

/// The file_sd output, checked by Prometheus's own tools: `promtool check config` and a real
/// Prometheus that must pick the targets up (and drop them again).
final class FileSDWriterTests: XCTestCase {
    func testRenderIsStableAndEscaped() throws {
        let a = FileSDTarget(target: "127.0.0.1:9101", streamID: IDs.b, streamName: "Gate \"B\"\n")
        let b = FileSDTarget(target: "vector-worker-\(IDs.a):9100", streamID: IDs.a, streamName: "Lobby")
        let bytes = FileSDWriter.render([a, b])
        XCTAssertEqual(bytes, FileSDWriter.render([b, a]), "order must not matter")
        let parsed = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes)) as? [[String: Any]])
        XCTAssertEqual(parsed.count, 2)
        XCTAssertEqual(parsed[0]["targets"] as? [String], ["vector-worker-\(IDs.a):9100"])
        XCTAssertEqual((parsed[1]["labels"] as? [String: String])?["stream_name"], "Gate \"B\"\n")
        XCTAssertEqual(String(decoding: FileSDWriter.render([]), as: UTF8.self), "[]\n")
    }

    func testWritesOnlyOnChangeAndLeavesNoTempFiles() throws {
        let dir = makeTestFolder("filesd-write")
        let path = "\(dir)/nested/workers.json"
        let writer = FileSDWriter(path: path)
        let t = FileSDTarget(target: "127.0.0.1:9101", streamID: IDs.a, streamName: "a")
        XCTAssertTrue(try writer.write([t]))
        XCTAssertFalse(try writer.write([t]))
        // A new writer (API restart) sees the file already holds this set.
        XCTAssertFalse(try FileSDWriter(path: path).write([t]))
        XCTAssertTrue(try writer.write([]))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/nested"), ["workers.json"])
    }

    func testPromtoolAndARealPrometheusPickUpTheTargets() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus") else {
            throw XCTSkip("prometheus is not installed (scripts/install-deps.sh installs it)")
        }
        let dir = makeTestFolder("filesd-prometheus")
        let sdPath = "\(dir)/file_sd/workers.json"
        let writer = FileSDWriter(path: sdPath)
        let port = try XCTUnwrap(ProcessSupport.freeLoopbackPort(excluding: []))
        let unused = try XCTUnwrap(ProcessSupport.freeLoopbackPort(excluding: [port]))
        try writer.write([
            FileSDTarget(target: "127.0.0.1:\(unused)", streamID: IDs.a, streamName: "Lobby"),
            FileSDTarget(target: "127.0.0.1:\(unused + 1)", streamID: IDs.b, streamName: "Gate"),
        ])
        let config = """
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: vectorflow-workers
                file_sd_configs:
                  - files: ['\(sdPath)']
                    refresh_interval: 1s
            """
        try config.write(toFile: "\(dir)/prometheus.yml", atomically: true, encoding: .utf8)
        let check = runCommand(["/usr/bin/promtool", "check", "config", "\(dir)/prometheus.yml"])
        XCTAssertEqual(check.status, 0, check.output)
        XCTAssertTrue(check.output.contains("SUCCESS"), check.output)

        let prometheus = Process()
        prometheus.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        prometheus.arguments = [
            "--config.file=\(dir)/prometheus.yml", "--storage.tsdb.path=\(dir)/data",
            "--web.listen-address=127.0.0.1:\(port)",
        ]
        _ = FileManager.default.createFile(atPath: "\(dir)/prometheus.log", contents: nil)
        let logHandle = FileHandle(forWritingAtPath: "\(dir)/prometheus.log")
        prometheus.standardOutput = logHandle
        prometheus.standardError = logHandle
        try prometheus.run()
        defer {
            prometheus.terminate()
            prometheus.waitUntilExit()
        }
        let http = CurlHTTP(dockerHost: "http://127.0.0.1:\(port)")
        func activeTargets() -> [[String: Any]] {
            guard let r = try? http.request("GET", "/api/v1/targets", timeout: 2), r.status == 200,
                let obj = DockerEngineRuntime.jsonObject(r.body), let data = obj["data"] as? [String: Any]
            else { return [] }
            return data["activeTargets"] as? [[String: Any]] ?? []
        }
        func streamIDs() -> Set<String> {
            Set(activeTargets().compactMap { ($0["labels"] as? [String: String])?["stream_id"] })
        }
        XCTAssertTrue(waitUntil(30) { streamIDs() == [IDs.a, IDs.b] }, "targets: \(activeTargets())")
        let lobby = activeTargets().first { ($0["labels"] as? [String: String])?["stream_id"] == IDs.a }
        XCTAssertEqual((lobby?["labels"] as? [String: String])?["stream_name"], "Lobby")
        XCTAssertEqual((lobby?["discoveredLabels"] as? [String: String])?["__address__"], "127.0.0.1:\(unused)")

        // A stream goes away: the rewritten file drops it (rename, so Prometheus never reads half a file).
        try writer.write([FileSDTarget(target: "127.0.0.1:\(unused)", streamID: IDs.a, streamName: "Lobby")])
        XCTAssertTrue(waitUntil(20) { streamIDs() == [IDs.a] }, "targets: \(activeTargets())")
    }
}

import Foundation
import Glibc
import VFCore
import XCTest

@testable import VFRuntime

/// The repository root (for scripts/ and test-output/).
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// A fresh folder test-output/runtime/<name> (emptied first, kept after the test for inspection).
func makeTestFolder(_ name: String) -> String {
    let path = "\(repositoryRoot)/test-output/runtime/\(name)"
    try? FileManager.default.removeItem(atPath: path)
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// True while /proc shows `pid` as a live (not zombie) process.
func processExists(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces)
    return !state.hasPrefix("Z") && !state.hasPrefix("X")
}

/// True when /proc holds a zombie for `pid` (a child nobody reaped).
func isZombie(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
}

/// The pid of a process-runtime worker (its `identifier`), failing the test (not the run) when
/// there is no worker or no number.
func pidOf(_ info: WorkerInfo?, file: StaticString = #filePath, line: UInt = #line) throws -> Int32 {
    try XCTUnwrap(info.flatMap { Int32($0.identifier) }, "no worker pid", file: file, line: line)
}

func environmentOf(_ pid: Int32) -> [String: String] {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return [:] }
    var env: [String: String] = [:]
    for entry in data.split(separator: 0) {
        let s = String(decoding: entry, as: UTF8.self)
        if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
    }
    return env
}

func spec(
    _ id: String, name: String? = nil, url: String = "file:///videos/vtest.avi", grid: Int = 16,
    threshold: Double = 1.2
) -> WorkerSpec {
    WorkerSpec(
        streamID: id, streamName: name ?? "cam-\(id.prefix(4))",
        settings: StreamSettings(source: url, gridSize: grid, threshold: threshold))
}

/// Collects runtime log lines (thread-safe) so tests can assert on them and print them on failure.
final class LogCollector: @unchecked Sendable {
    // @unchecked: `lines` is guarded by `lock`.
    private let lock = NSLock()
    private var lines: [String] = []
    var sink: RuntimeLog {
        { [self] line in
            lock.lock()
            lines.append(line)
            lock.unlock()
        }
    }
    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }
}

/// A desired-state store backed by a JSON file, as a small stand-in for the API's PostgreSQL
/// table: a real file read on every call, so tests change it the way the API changes rows.
final class JSONFileStore: DesiredStateStore, @unchecked Sendable {
    // @unchecked: the file is read and written under `lock`; `reads` too.
    struct Row: Codable {
        var id: String
        var name: String
        var rtsp_url: String
        var grid_size: Int
        var threshold: Double
        var is_active: Bool
        var worker_container_name: String?
        var worker_started_at: Double?
    }

    let path: String
    private let lock = NSLock()
    private var readCount = 0

    init(path: String, rows: [Row]) {
        self.path = path
        save(rows)
    }

    var reads: Int {
        lock.lock()
        defer { lock.unlock() }
        return readCount
    }

    func load() throws -> [Row] {
        try JSONDecoder().decode([Row].self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func save(_ rows: [Row]) {
        // A failed write shows up as the reconciler's unreadable desired state, and fails the test.
        let data = (try? JSONEncoder().encode(rows)) ?? Data()
        try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    func update(_ change: (inout [Row]) -> Void) throws {
        lock.lock()
        defer { lock.unlock() }
        var rows = try load()
        change(&rows)
        save(rows)
    }

    func row(_ id: String) -> Row? {
        lock.lock()
        defer { lock.unlock() }
        return (try? load())?.first { $0.id == id }
    }

    func desiredWorkers() throws -> [WorkerSpec] {
        lock.lock()
        defer { lock.unlock() }
        readCount += 1
        return try load().filter(\.is_active).map {
            WorkerSpec(
                streamID: $0.id, streamName: $0.name,
                settings: StreamSettings(source: $0.rtsp_url, gridSize: $0.grid_size, threshold: $0.threshold),
                recordedContainerName: $0.worker_container_name,
                recordedStartedAt: $0.worker_started_at)
        }
    }

    func recordWorker(streamID: String, containerName: String?, startedAt: Double?) throws {
        lock.lock()
        defer { lock.unlock() }
        var rows = try load()
        if let i = rows.firstIndex(where: { $0.id == streamID }) {
            rows[i].worker_container_name = containerName
            rows[i].worker_started_at = startedAt
            save(rows)
        }
    }

    static func row(
        _ id: String, active: Bool = true, url: String = "file:///videos/vtest.avi", threshold: Double = 1.2
    ) -> Row {
        Row(
            id: id, name: "cam-\(id.prefix(4))", rtsp_url: url, grid_size: 16, threshold: threshold, is_active: active,
            worker_container_name: nil, worker_started_at: nil)
    }
}

/// Fixed UUIDs for readable tests.
enum IDs {
    static let a = "11111111-1111-4111-8111-111111111111"
    static let b = "22222222-2222-4222-8222-222222222222"
    static let c = "33333333-3333-4333-8333-333333333333"
}

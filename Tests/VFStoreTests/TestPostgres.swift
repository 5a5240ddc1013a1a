import Foundation
import VFTestSupport
import XCTest

/// A private PostgreSQL 15 cluster for the store's tests, in a temporary folder on a free port
/// (initdb refuses root, so as root it runs as the `postgres` user).
final class TestPostgres {
    let dir: URL
    let port: Int
    private let bin = "/usr/lib/postgresql/15/bin"
    var url: String { "postgresql://vectorflow:vectorflow@127.0.0.1:\(port)/vectorflow" }

    init() throws {
        guard FileManager.default.isExecutableFile(atPath: bin + "/initdb") else {
            throw XCTSkip("PostgreSQL 15 is not installed (scripts/install-deps.sh installs it)")
        }
        dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("vf-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        port = freePort()
        if getuid() == 0 { try Self.run(["/bin/chown", "postgres:postgres", dir.path]) }
        try asPostgres([
            bin + "/initdb", "-D", dir.path + "/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
        ])
        try start()
        try psql("CREATE ROLE vectorflow LOGIN PASSWORD 'vectorflow'")
        try psql("CREATE DATABASE vectorflow OWNER vectorflow")
    }

    func start() throws {
        try asPostgres([
            bin + "/pg_ctl", "-D", dir.path + "/data", "-l", dir.path + "/log", "-w", "-o",
            "-c listen_addresses=127.0.0.1 -p \(port) -k \(dir.path) -c fsync=off", "start",
        ])
    }

    func stop() throws {
        try asPostgres([bin + "/pg_ctl", "-D", dir.path + "/data", "-m", "fast", "-w", "stop"])
    }

    @discardableResult
    func psql(_ sql: String, db: String = "postgres") throws -> String {
        try Self.run([
            "/usr/bin/psql", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", db,
            "-v", "ON_ERROR_STOP=1", "-At", "-c", sql,
        ])
    }

    func close() {
        try? stop()
        try? FileManager.default.removeItem(at: dir)
    }

    private func asPostgres(_ argv: [String]) throws {
        try Self.run(getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--"] + argv : argv)
    }

    /// Runs a command and waits for it (see runCommand); its output, or an error with it.
    @discardableResult
    static func run(_ argv: [String]) throws -> String {
        let (status, output) = runCommand(argv)
        guard status == 0 else {
            throw NSError(
                domain: "TestPostgres", code: Int(status),
                userInfo: [NSLocalizedDescriptionKey: "\(argv.joined(separator: " ")): \(output)"])
        }
        return output
    }
}

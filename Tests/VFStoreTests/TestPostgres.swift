import Foundation
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
        port = Self.freePort()
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

    /// Runs a command and waits for it (posix_spawn + waitpid: Foundation's Process can miss the
    /// exit of a pg_ctl whose server child inherits its descriptors). Output goes to a file.
    @discardableResult
    static func run(_ argv: [String]) throws -> String {
        let outPath = NSTemporaryDirectory() + "vf-store-out-\(UUID().uuidString)"
        defer { unlink(outPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, &cargs, environ)
        guard rc == 0 else { throw NSError(domain: "TestPostgres", code: Int(rc)) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let exited = (status & 0x7f) == 0
        let code = (status >> 8) & 0xff
        guard exited && code == 0 else {
            throw NSError(
                domain: "TestPostgres", code: Int(code),
                userInfo: [NSLocalizedDescriptionKey: "\(argv.joined(separator: " ")): \(text)"])
        }
        return text
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

import Foundation

/// A private PostgreSQL 15 cluster for the store's tests, in a temporary folder on a free port
/// (initdb refuses root, so as root it runs as the `postgres` user).
public final class TestPostgres {
    public let dir: URL
    public let port: Int
    private let bin = "/usr/lib/postgresql/15/bin"
    public var url: String { "postgresql://vectorflow:vectorflow@127.0.0.1:\(port)/vectorflow" }

    public init() throws {
        guard FileManager.default.isExecutableFile(atPath: bin + "/initdb") else {
            throw TestSetupError("PostgreSQL 15 is not installed (scripts/install-deps.sh installs it)")
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

    public func start() throws {
        try asPostgres([
            bin + "/pg_ctl", "-D", dir.path + "/data", "-l", dir.path + "/log", "-w", "-o",
            "-c listen_addresses=127.0.0.1 -p \(port) -k \(dir.path) -c fsync=off", "start",
        ])
    }

    public func stop() throws {
        try asPostgres([bin + "/pg_ctl", "-D", dir.path + "/data", "-m", "fast", "-w", "stop"])
    }

    @discardableResult
    public func psql(_ sql: String, db: String = "postgres") throws -> String {
        try Self.run([
            "/usr/bin/psql", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", db,
            "-v", "ON_ERROR_STOP=1", "-At", "-c", sql,
        ])
    }

    /// The postmaster's pid (the first line of its pid file), or nil when it is not running.
    public var postmasterPID: pid_t? {
        guard let text = try? String(contentsOfFile: dir.path + "/data/postmaster.pid", encoding: .utf8),
            let first = text.split(separator: "\n").first
        else { return nil }
        return pid_t(first.trimmingCharacters(in: .whitespaces))
    }

    /// The postmaster's children (backends, checkpointer, ...), from /proc's parent pids.
    public func serverChildren(of postmaster: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            // "pid (comm) state ppid ...": comm may hold spaces, so read after the last ')'.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && pid_t(fields[1]) == postmaster ? pid : nil
        }
    }

    /// Freezes the whole server with SIGSTOP, the postmaster first so that it forks no child
    /// after the list is taken; the pids stopped. Pair with `thaw` in a `defer`.
    public func freeze() -> [pid_t] {
        guard let pm = postmasterPID, kill(pm, SIGSTOP) == 0 else { return [] }
        let children = serverChildren(of: pm)
        for c in children { kill(c, SIGSTOP) }
        return [pm] + children
    }

    /// Resumes what `freeze` stopped (and any child of the postmaster, to leave nothing stopped).
    public func thaw(_ pids: [pid_t]) {
        var all = Set(pids)
        if let pm = postmasterPID {
            all.insert(pm)
            all.formUnion(serverChildren(of: pm))
        }
        for p in all { kill(p, SIGCONT) }
    }

    public func close() {
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

/// A test's environment lacks something it needs (the message says what and how to get it).
public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

// Helpers the test targets share (a plain library target, without XCTest, so that it builds in
// any configuration): polling, a free loopback port, running a command, and finding the built
// worker and the sample videos.
import Foundation
import Glibc
import VFCore

/// Polls `condition` every 20 ms for at most `timeout` seconds; its last value.
@discardableResult
public func waitUntil(_ timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = monotonicNow() + timeout
    while monotonicNow() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

/// A loopback TCP port nothing listens on right now (the kernel's pick for port 0).
public func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
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

/// Runs `argv` (argv[0] an absolute path) to completion, stdin from /dev/null; its exit status
/// (128 + signal when killed, -1 when it could not start) and its stdout and stderr together.
/// posix_spawn and a blocking waitpid rather than Foundation's Process, whose exit notification
/// was seen to hang when the command leaves a daemon behind (pg_ctl, scripts/docker-engine.sh).
@discardableResult
public func runCommand(_ argv: [String]) -> (status: Int32, output: String) {
    let outPath = NSTemporaryDirectory() + "vf-test-cmd-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
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
    guard rc == 0 else { return (-1, "\(argv[0]): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let exited = (status & 0x7f) == 0
    return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), output)
}

/// The project's `vectorflow-worker`: VF_WORKER_BIN, or the one built next to the test bundle;
/// nil when there is none.
public func builtWorker() -> String? {
    let binDir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
    let worker = ProcessInfo.processInfo.environment["VF_WORKER_BIN"] ?? "\(binDir)/vectorflow-worker"
    return FileManager.default.isExecutableFile(atPath: worker) ? worker : nil
}

/// VF_SAMPLES_DIR (scripts/fetch-samples.sh), when it is set and holds `file`.
public func samplesDirectory(holding file: String) -> String? {
    guard let samples = ProcessInfo.processInfo.environment["VF_SAMPLES_DIR"],
        FileManager.default.fileExists(atPath: "\(samples)/\(file)")
    else { return nil }
    return samples
}

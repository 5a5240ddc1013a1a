import Foundation
import Glibc
import VFCore

/// Thin wrappers over the process system calls the process runtime needs (spawn, liveness,
/// /proc checks, port allocation), kept apart from the bookkeeping in `ProcessRuntime`.
enum ProcessSupport {
    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+) is not visible to Swift's Glibc
    /// module, so it is looked up once at run time. Without it the worker would inherit the API's
    /// sockets (its listening port among them) and keep them open after the API restarts.
    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
    private static let closeFrom: CloseFrom? = {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            return nil
        }
        return unsafeBitCast(sym, to: CloseFrom.self)
    }()

    /// Spawns `path` in its own process group with exactly `environment`, stdin from /dev/null and
    /// stdout+stderr appended to `logPath`. Signals are reset to their defaults and unblocked so
    /// SIGTERM works however the API set up its own signal handling.
    static func spawn(path: String, arguments: [String], environment: [String: String], logPath: String)
        throws(RuntimeError) -> pid_t
    {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attr, 0)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attr, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attr, &defaults)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        if let closeFrom { _ = closeFrom(&actions, 3) }

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] =
            environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, envp)
        guard rc == 0 else {
            throw RuntimeError(.local, "cannot start \(path): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    enum Liveness: Equatable {
        case alive
        /// `how`: "exited with code N" / "killed by signal N" for a reaped child; nil when unknown.
        case dead(how: String?)
        var isDead: Bool { self != .alive }
    }

    /// Whether `pid` still runs `binary` for `streamID`. Reaps it if it is our child (no zombies);
    /// for a process adopted from an earlier API instance (not our child), checks /proc so a
    /// recycled pid never passes for the worker.
    static func liveness(pid: pid_t, binary: String, streamID: String) -> Liveness {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid {
            let signal = status & 0x7f
            return .dead(how: signal == 0 ? "exited with code \((status >> 8) & 0xff)" : "killed by signal \(signal)")
        }
        if r == 0 { return .alive }
        // ECHILD: not our child; look at /proc.
        return matches(pid: pid, binary: binary, streamID: streamID) ? .alive : .dead(how: nil)
    }

    /// /proc/<pid>: not a zombie, argv[0] is `binary`, and (when readable) STREAM_ID is ours.
    static func matches(pid: pid_t, binary: String, streamID: String) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        {
            let rest = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces)
            if rest.hasPrefix("Z") || rest.hasPrefix("X") { return false }
        }
        guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let argv0 = String(
            decoding: cmdline.split(separator: 0, omittingEmptySubsequences: false).first ?? [], as: UTF8.self)
        guard argv0 == binary else { return false }
        if let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ"), !environ.isEmpty {
            let wanted = Array("STREAM_ID=\(streamID)".utf8)
            return environ.split(separator: 0).contains { Array($0) == wanted }
        }
        return true
    }

    /// A live worker found in /proc by the owner mark in its environment.
    struct FoundWorker: Equatable {
        var pid: pid_t
        var streamID: String
        /// argv[0]: the binary it runs (what liveness checks compare against).
        var binary: String
        /// Start time in clock ticks since boot (/proc/<pid>/stat field 22): orders duplicates.
        var startTicks: UInt64
    }

    /// Every live process whose environment holds `ownerVariable=owner` and a STREAM_ID: the
    /// workers one state folder's runtime spawned, whether or not a record of them survived.
    /// The environment read is the one the process was exec'd with, which the worker never changes.
    static func findWorkers(ownerVariable: String, owner: String) -> [FoundWorker] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        let mark = Array("\(ownerVariable)=\(owner)".utf8)
        let streamPrefix = Array("STREAM_ID=".utf8)
        var found: [FoundWorker] = []
        for entry in entries {
            guard let pid = pid_t(entry), pid > 0, pid != getpid(),
                let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ")
            else { continue }
            var owned = false
            var streamID: String?
            for variable in environ.split(separator: 0) {
                if variable.elementsEqual(mark) {
                    owned = true
                } else if variable.starts(with: streamPrefix) {
                    streamID = String(decoding: variable.dropFirst(streamPrefix.count), as: UTF8.self)
                }
            }
            guard owned, let streamID, let stat = procStat(pid), !stat.zombie,
                let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
            else { continue }
            let argv0 = String(
                decoding: cmdline.split(separator: 0, omittingEmptySubsequences: false).first ?? [], as: UTF8.self)
            found.append(FoundWorker(pid: pid, streamID: streamID, binary: argv0, startTicks: stat.startTicks))
        }
        return found.sorted { ($0.streamID, $0.startTicks, $0.pid) < ($1.streamID, $1.startTicks, $1.pid) }
    }

    /// The state letter and start time of /proc/<pid>/stat (fields after the command's ")").
    private static func procStat(_ pid: pid_t) -> (zombie: Bool, startTicks: UInt64)? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); start time is field 22.
        guard fields.count > 19 else { return nil }
        return (fields[0] == "Z" || fields[0] == "X", UInt64(fields[19]) ?? 0)
    }

    /// An exclusive `flock` on `path`, held as long as the returned descriptor stays open (the
    /// kernel drops it when the process dies, however it dies). The file holds the holder's pid,
    /// for the error message of the next one that tries.
    static func lockExclusively(_ path: String) throws(RuntimeError) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw RuntimeError(.local, "cannot open the lock file \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            let reason = String(cString: strerror(errno))
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 32, 0) }
            close(fd)
            let holder = String(decoding: buffer.prefix(max(0, n)), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if busy {
                throw RuntimeError(
                    .local,
                    "the worker state folder \((path as NSString).deletingLastPathComponent) is in use by another "
                        + "vectorflow-api (pid \(holder.isEmpty ? "unknown" : holder)); give each API its own VF_STATE_DIR")
            }
            throw RuntimeError(.local, "cannot lock \(path): \(reason)")
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, text.count, 0) }
        return fd
    }

    /// SIGTERM to the worker's process group, SIGKILL after `grace` seconds, then wait until
    /// it is gone (reaped when it is our child). Bounded: returns after grace + 3 s at most.
    static func terminate(pid: pid_t, grace: Double, binary: String, streamID: String) {
        guard pid > 0 else { return }
        if kill(-pid, SIGTERM) != 0 { _ = kill(pid, SIGTERM) }
        if waitGone(pid: pid, seconds: grace, binary: binary, streamID: streamID) { return }
        if kill(-pid, SIGKILL) != 0 { _ = kill(pid, SIGKILL) }
        _ = waitGone(pid: pid, seconds: 3, binary: binary, streamID: streamID)
    }

    private static func waitGone(pid: pid_t, seconds: Double, binary: String, streamID: String) -> Bool {
        let deadline = monotonicNow() + seconds
        repeat {
            if liveness(pid: pid, binary: binary, streamID: streamID).isDead { return true }
            usleep(10_000)
        } while monotonicNow() < deadline
        return liveness(pid: pid, binary: binary, streamID: streamID).isDead
    }

    /// A TCP port free on 127.0.0.1 right now (bind to port 0, read it back, close).
    static func freeLoopbackPort(excluding taken: Set<Int>) -> Int? {
        for _ in 0..<20 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = 0
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0 else { continue }
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let got = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
            guard got == 0 else { continue }
            let port = Int(UInt16(bigEndian: addr.sin_port))
            if !taken.contains(port) { return port }
        }
        return nil
    }
}


import Foundation
import Glibc
import VFSync

/// One Prometheus scrape target of a worker.
public struct FileSDTarget: Sendable, Equatable {
    public var target: String
    public var streamID: String
    public var streamName: String
    /// More labels after the two above (`node` for the swarm runtime); none for the local runtimes.
    public var extraLabels: [String: String]

    public init(target: String, streamID: String, streamName: String, extraLabels: [String: String] = [:]) {
        self.target = target
        self.streamID = streamID
        self.streamName = streamName
        self.extraLabels = extraLabels
    }
}

/// Writes Prometheus `file_sd_configs` JSON
/// (`[{"targets":["host:port"],"labels":{"stream_id":…,"stream_name":…}}]`).
/// Prometheus watches the file and may read it at any moment, so each write goes to a temporary
/// file in the same folder, is fsynced, then renamed over the old one: readers see either the
/// old or the new set, never half a file. Unchanged sets are not rewritten.
public final class FileSDWriter: @unchecked Sendable {
    // @unchecked: `lastWritten` is only touched under `lock`.
    public let path: String
    private let lock = Lock()
    private var lastWritten: [UInt8]?

    public init(path: String) {
        self.path = path
    }

    /// The file's bytes for `targets`, sorted by stream id so equal sets give equal bytes.
    public static func render(_ targets: [FileSDTarget]) -> [UInt8] {
        let sorted = targets.sorted { ($0.streamID, $0.target) < ($1.streamID, $1.target) }
        var out = "["
        for (i, t) in sorted.enumerated() {
            if i > 0 { out += "," }
            out += "\n  {\"targets\":[\(jsonString(t.target))],\"labels\":{\"stream_id\":\(jsonString(t.streamID)),"
            out += "\"stream_name\":\(jsonString(t.streamName))"
            for (k, v) in t.extraLabels.sorted(by: { $0.key < $1.key }) { out += ",\(jsonString(k)):\(jsonString(v))" }
            out += "}}"
        }
        out += sorted.isEmpty ? "]\n" : "\n]\n"
        return Array(out.utf8)
    }

    /// Writes the set if it differs from what the file holds. Returns true when the file changed.
    @discardableResult
    public func write(_ targets: [FileSDTarget]) throws(RuntimeError) -> Bool {
        let bytes = Self.render(targets)
        lock.lock()
        defer { lock.unlock() }
        if lastWritten == nil, let existing = FileManager.default.contents(atPath: path) {
            lastWritten = Array(existing)  // after an API restart: no rewrite if nothing changed
        }
        if lastWritten == bytes { return false }
        try Self.atomicWrite(bytes, to: path)
        lastWritten = bytes
        return true
    }

    /// temp file + fsync + rename + fsync of the folder (so the rename itself survives a crash).
    /// `mode` applies from the first byte written (the temp file is created with it).
    static func atomicWrite(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(RuntimeError) {
        let dir = (path as NSString).deletingLastPathComponent
        let folder = dir.isEmpty ? "." : dir
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw RuntimeError(.local, "cannot create \(folder): \(error)")
        }
        let tmp = "\(folder)/.\((path as NSString).lastPathComponent).tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw RuntimeError(.local, "cannot write \(tmp): \(String(cString: strerror(errno)))") }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(tmp)
                throw RuntimeError(.local, "cannot write \(tmp): \(reason)")
            }
            offset += n
        }
        if fsync(fd) != 0 {
            let reason = String(cString: strerror(errno))
            close(fd)
            unlink(tmp)
            throw RuntimeError(.local, "fsync \(tmp): \(reason)")
        }
        close(fd)
        if rename(tmp, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw RuntimeError(.local, "rename to \(path): \(reason)")
        }
        let dfd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }
}

/// A JSON string literal for `s` (quotes, backslashes and control characters escaped).
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

import Foundation
import Glibc

/// A minimal ustar writer: enough to send a folder as the Docker `/build` context
/// (regular files, folders, symbolic links; names up to 255 bytes through the prefix field).
struct TarArchive {
    private(set) var bytes: [UInt8] = []
    /// `.dockerignore` rules of the folder being added (the engine does not apply them itself:
    /// the client must leave excluded files out of the context, or a repository's build folders
    /// would be sent along).
    private var ignore = DockerIgnore(text: "")

    enum Failure: Error, CustomStringConvertible {
        case nameTooLong(String)
        case unreadable(String)
        var description: String {
            switch self {
            case .nameTooLong(let n): "path too long for a tar header: \(n)"
            case .unreadable(let n): "cannot read \(n)"
            }
        }
    }

    /// Adds every entry under `folder` (names relative to it), in sorted order so equal folders
    /// give equal archives.
    mutating func addFolder(_ folder: String) throws(Failure) {
        let rules = (try? String(contentsOfFile: folder + "/.dockerignore", encoding: .utf8)) ?? ""
        ignore = DockerIgnore(text: rules)
        try walk(folder: folder, relative: "")
    }

    private mutating func walk(folder: String, relative: String) throws(Failure) {
        let here = relative.isEmpty ? folder : folder + "/" + relative
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: here) else { throw .unreadable(here) }
        for name in names.sorted() {
            let rel = relative.isEmpty ? name : relative + "/" + name
            let full = folder + "/" + rel
            var st = stat()
            guard lstat(full, &st) == 0 else { throw .unreadable(full) }
            if ignore.excludes(rel) {
                // A negation rule may re-include something below an excluded folder: look inside then.
                if (st.st_mode & S_IFMT) == S_IFDIR && ignore.hasNegations { try walk(folder: folder, relative: rel) }
                continue
            }
            let mode = Int(st.st_mode & 0o7777)
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                try addEntry(name: rel + "/", type: "5", mode: mode, size: 0)
                try walk(folder: folder, relative: rel)
            case S_IFLNK:
                var buf = [CChar](repeating: 0, count: 4096)
                let n = readlink(full, &buf, buf.count - 1)
                guard n >= 0 else { throw .unreadable(full) }
                let target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                try addEntry(name: rel, type: "2", mode: mode, size: 0, linkName: target)
            case S_IFREG:
                guard let data = FileManager.default.contents(atPath: full) else { throw .unreadable(full) }
                try addFile(name: rel, contents: Array(data), mode: mode)
            default:
                continue  // sockets, fifos, devices have no place in a build context
            }
        }
    }

    mutating func addFile(name: String, contents: [UInt8], mode: Int = 0o644, uid: Int = 0, gid: Int = 0)
        throws(Failure)
    {
        try addEntry(name: name, type: "0", mode: mode, size: contents.count, uid: uid, gid: gid)
        bytes.append(contentsOf: contents)
        let pad = (512 - contents.count % 512) % 512
        bytes.append(contentsOf: [UInt8](repeating: 0, count: pad))
    }

    /// Two zero blocks end the archive.
    mutating func finish() -> [UInt8] {
        bytes.append(contentsOf: [UInt8](repeating: 0, count: 1024))
        return bytes
    }

    private mutating func addEntry(
        name: String, type: Character, mode: Int, size: Int, linkName: String = "", uid: Int = 0, gid: Int = 0
    ) throws(Failure) {
        var header = [UInt8](repeating: 0, count: 512)
        let (prefix, shortName) = try Self.split(name)
        Self.put(shortName, at: 0, width: 100, in: &header)
        Self.putOctal(mode, at: 100, width: 8, in: &header)
        Self.putOctal(uid, at: 108, width: 8, in: &header)  // root by default, as Docker expects of a context
        Self.putOctal(gid, at: 116, width: 8, in: &header)
        Self.putOctal(size, at: 124, width: 12, in: &header)
        Self.putOctal(0, at: 136, width: 12, in: &header)  // mtime 0: reproducible archives
        header[156] = type.asciiValue!
        guard linkName.utf8.count <= 100 else { throw .nameTooLong(linkName) }
        Self.put(linkName, at: 157, width: 100, in: &header)
        Self.put("ustar", at: 257, width: 6, in: &header)  // "ustar\0"
        Self.put("00", at: 263, width: 2, in: &header)
        Self.put(prefix, at: 345, width: 155, in: &header)
        // The checksum is computed with its own field read as eight spaces.
        for i in 148..<156 { header[i] = 0x20 }
        let sum = header.reduce(0) { $0 + Int($1) }
        Self.putOctal(sum, at: 148, width: 7, in: &header)
        header[155] = 0x20
        bytes.append(contentsOf: header)
    }

    /// ustar stores long names as prefix (155) + "/" + name (100), split at a slash.
    private static func split(_ name: String) throws(Failure) -> (String, String) {
        let utf8 = Array(name.utf8)
        if utf8.count <= 100 { return ("", name) }
        for i in stride(from: min(utf8.count - 1, 155), through: 1, by: -1) where utf8[i] == UInt8(ascii: "/") {
            let rest = utf8.count - i - 1
            if rest > 0 && rest <= 100 {
                return (String(decoding: utf8[..<i], as: UTF8.self), String(decoding: utf8[(i + 1)...], as: UTF8.self))
            }
        }
        throw .nameTooLong(name)
    }

    private static func put(_ s: String, at offset: Int, width: Int, in header: inout [UInt8]) {
        for (i, b) in s.utf8.prefix(width).enumerated() { header[offset + i] = b }
    }

    /// Zero-padded octal digits followed by a NUL, as ustar readers expect.
    private static func putOctal(_ value: Int, at offset: Int, width: Int, in header: inout [UInt8]) {
        let digits = String(value, radix: 8)
        let padded = String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits
        put(padded, at: offset, width: width - 1, in: &header)
        header[offset + width - 1] = 0
    }
}

/// The subset of `.dockerignore` semantics a build context needs: one pattern per line, `#`
/// comments, `!` re-includes, the last matching rule wins, a rule that matches a folder covers
/// everything below it, `**/` matches any depth (including none).
struct DockerIgnore {
    private var rules: [(pattern: String, include: Bool)] = []
    var hasNegations: Bool { rules.contains { $0.include } }

    init(text: String) {
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            var line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            var include = false
            if line.hasPrefix("!") {
                include = true
                line = String(line.dropFirst()).trimmingCharacters(in: .whitespaces)
            }
            while line.hasPrefix("/") { line.removeFirst() }
            while line.hasSuffix("/") { line.removeLast() }
            if !line.isEmpty { rules.append((line, include)) }
        }
    }

    func excludes(_ path: String) -> Bool {
        var excluded = false
        for rule in rules where Self.matches(rule.pattern, path) { excluded = !rule.include }
        return excluded
    }

    /// The pattern matches the path itself or one of its parent folders.
    private static func matches(_ pattern: String, _ path: String) -> Bool {
        var candidates = [pattern]
        if pattern.hasPrefix("**/") { candidates.append(String(pattern.dropFirst(3))) }
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix = prefix.isEmpty ? String(part) : prefix + "/" + part
            for p in candidates
            where fnmatch(p, prefix, FNM_PATHNAME) == 0 || (p.contains("**") && fnmatch(p, prefix, 0) == 0) {
                return true
            }
        }
        return false
    }
}

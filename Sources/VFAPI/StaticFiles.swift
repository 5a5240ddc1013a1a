import Foundation

/// Serves the dashboard's files from `VF_STATIC_DIR` at `/`. Paths are resolved segment by segment
/// (no `..`, no hidden files, no NUL), and the final real path must still lie inside the folder,
/// so neither `../` nor a symlink can reach outside it.
struct StaticFiles: Sendable {
    let root: String  // real path, no trailing slash

    init?(directory: String) {
        guard let real = realpath(directory, nil) else { return nil }
        root = String(cString: real)
        free(real)
    }

    static let contentTypes: [String: String] = [
        "html": "text/html; charset=utf-8", "htm": "text/html; charset=utf-8",
        "js": "text/javascript; charset=utf-8", "mjs": "text/javascript; charset=utf-8",
        "css": "text/css; charset=utf-8", "json": "application/json", "map": "application/json",
        "svg": "image/svg+xml", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
        "gif": "image/gif", "webp": "image/webp", "ico": "image/x-icon", "txt": "text/plain; charset=utf-8",
        "woff": "font/woff", "woff2": "font/woff2", "wasm": "application/wasm",
    ]

    /// The file for a request path, or nil (answer 404). Blocking: call off the event loop.
    func load(path: String) -> (body: [UInt8], contentType: String)? {
        var segments: [Substring] = []
        for seg in path.split(separator: "/", omittingEmptySubsequences: true) {
            if seg.hasPrefix(".") || seg.contains("\0") || seg.contains("\\") { return nil }
            segments.append(seg)
        }
        var candidate = root + (segments.isEmpty ? "" : "/" + segments.joined(separator: "/"))
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: candidate, isDirectory: &isDir) else { return nil }
        if isDir.boolValue { candidate += "/index.html" }
        guard let real = realpath(candidate, nil) else { return nil }
        let resolved = String(cString: real)
        free(real)
        guard resolved.hasPrefix(root + "/") else { return nil }
        // Only web assets: the folder may hold other files (an nginx.conf beside the pages) that
        // are nobody's business.
        let ext = resolved.split(separator: ".").last.map { $0.lowercased() } ?? ""
        guard let type = Self.contentTypes[ext], let data = FileManager.default.contents(atPath: resolved) else {
            return nil
        }
        return ([UInt8](data), type)
    }
}

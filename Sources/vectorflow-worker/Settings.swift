import Foundation
import VFCore
import VFFlow

/// The source kinds the worker reads; anything else is a configuration error (exit 2).
enum SourceKind: Equatable {
    case file, http, rtsp

    /// Classifies a source: a scheme-less string is a file path.
    static func of(_ source: String) throws(ConfigurationError) -> SourceKind {
        guard !source.isEmpty else { throw ConfigurationError("SOURCE_URL is empty") }
        guard let r = source.range(of: "://") else { return .file }
        switch source[..<r.lowerBound].lowercased() {
        case "file":
            // file:///absolute/path: `file://http://…` and the like are not file sources.
            guard source[r.upperBound...].hasPrefix("/") else {
                throw ConfigurationError("file URLs need an absolute path (file:///...), got \"\(source)\"")
            }
            return .file
        case "http", "https": return .http
        case "rtsp", "rtsps": return .rtsp
        case let s:
            throw ConfigurationError("unsupported source URL scheme \"\(s)\" (use rtsp, rtsps, http, https or file)")
        }
    }
}

/// Options shared by every subcommand that computes flow.
struct FlowSettings {
    var gridSize: Int
    var threshold: Double
    /// Lucas-Kanade on every grid point (`--exact` or EXACT_FLOW=true) instead of only on the
    /// points whose neighbourhood changed; kept to check the fast path against it.
    var exact: Bool
    /// The fast path's reliability filter (VECTOR_FILTER, default true; `--no-filter` or
    /// `--vector-filter false` turn it off): which checks a vector above the threshold must pass
    /// to be reported. FILTER_CHECKS (a comma-separated list of `VectorFilter.names`, `all`,
    /// `none`) picks other checks, for measuring them. Empty on the exact path, which never filters.
    var vectorFilter: VectorFilter

    init(_ c: ConfigurationSource) throws(ConfigurationError) {
        gridSize = try c.int("GRID_SIZE", default: 16, range: 4...256)
        threshold = try c.double("THRESHOLD", default: 1.2, range: 0...1000)
        let exactFlag = try c.bool("EXACT", default: false)
        let exactEnv = try c.bool("EXACT_FLOW", default: false)
        exact = exactFlag || exactEnv
        let filterSetting = try c.bool("VECTOR_FILTER", default: true)
        let noFilter = try c.bool("NO_FILTER", default: false)
        let filterOn = filterSetting && !noFilter
        var checks = VectorFilter.standard
        if let list = c.raw("FILTER_CHECKS") {
            guard let parsed = VectorFilter.parse(list) else {
                throw ConfigurationError(
                    "FILTER_CHECKS must list checks among \(VectorFilter.names.joined(separator: ", ")), got \"\(list)\"")
            }
            checks = parsed
        }
        vectorFilter = filterOn && !exact ? checks : .none
    }

    /// Sets up a stream for these settings: the path, and the filter with the threshold.
    func configure(_ stream: VideoStream) {
        stream.exactFlow = exact
        stream.setVectorFilter(vectorFilter, minMagnitude: threshold)
    }
}

/// `vectorflow-worker run` configuration (environment or `--kebab-flags`).
struct WorkerSettings {
    var streamID: String
    var streamName: String
    var source: String
    var sourceKind: SourceKind
    var flow: FlowSettings
    var redisURL: String
    var metricsHost: String
    var metricsPort: Int
    var loop: Bool
    var previewFPS: Double
    var previewMaxWidth: Int
    var previewAlways: Bool
    var jpegQuality: Int
    var threads: Int
    /// VF_SOURCE_ALLOW / VF_SOURCE_DENY, with the worker's own Redis always denied.
    var sourcePolicy: SourcePolicy

    /// `SOURCE_URL_FILE`: the URL in a file (the Docker runtime's way to keep camera credentials
    /// out of the container's inspectable environment); surrounding whitespace is dropped.
    static func sourceURLFromFile(_ c: ConfigurationSource) throws(ConfigurationError) -> String? {
        guard let path = c.raw("SOURCE_URL_FILE") else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("SOURCE_URL_FILE \(path) cannot be read")
        }
        let url = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !url.isEmpty else { throw ConfigurationError("SOURCE_URL_FILE \(path) is empty") }
        return url
    }

    init(_ c: ConfigurationSource) throws(ConfigurationError) {
        streamID = c.string("STREAM_ID", default: "default")
        streamName = c.string("STREAM_NAME", default: streamID)
        let fromFile = c.raw("SOURCE_URL") == nil ? try Self.sourceURLFromFile(c) : nil
        guard let src = c.raw("SOURCE_URL") ?? fromFile else {
            throw ConfigurationError("SOURCE_URL (or SOURCE_URL_FILE) is required")
        }
        source = src
        sourceKind = try SourceKind.of(src)
        flow = try FlowSettings(c)
        redisURL = c.string("REDIS_URL", default: "redis://localhost:6379/0")
        metricsHost = c.string("METRICS_HOST", default: "0.0.0.0")
        metricsPort = try c.int("METRICS_PORT", default: 9100, range: 0...65535)
        loop = try c.bool("LOOP", default: true)
        previewFPS = try c.double("PREVIEW_FPS", default: 10, range: 0.1...120)
        previewMaxWidth = try c.int("PREVIEW_MAX_WIDTH", default: 640, range: 16...7680)
        previewAlways = try c.bool("PREVIEW_ALWAYS", default: false)
        jpegQuality = try c.int("JPEG_QUALITY", default: 80, range: 1...100)
        threads = try c.int("VF_THREADS", default: 1, range: 1...64)
        sourcePolicy = try SourcePolicy(c, services: [SourceEndpoint(redisURL, defaultPort: 6379)?.rule].compactMap { $0 })
    }
}

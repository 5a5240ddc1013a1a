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
    /// `--vector-filter=false` turn it off): which checks a vector above the threshold must pass
    /// to be reported. FILTER_CHECKS (a comma-separated list of `VectorFilter.names`, `all`,
    /// `none`) picks other checks, for measuring them. Empty on the exact path, which never filters.
    var vectorFilter: VectorFilter
    /// The fast path's grey image from the BGR frame as the exact path makes it (GREY_FROM_BGR),
    /// not from the decoder's luma plane: for comparing the two paths' answers.
    var greyFromBGR: Bool

    /// The settings of every subcommand that computes flow.
    static let declarations: [Setting] = StreamSettings.samplingDeclarations + [
        .bool("EXACT", false, "Lucas-Kanade on every grid point (OpenCV's own unfiltered answer), as EXACT_FLOW"),
        .bool("EXACT_FLOW", false, "same as EXACT"),
        .bool("VECTOR_FILTER", true, "report only vectors whose tracking can be trusted (fast path)"),
        .bool("NO_FILTER", false, "report every tracked vector (VECTOR_FILTER=false)"),
        .bool(
            "GREY_FROM_BGR", false,
            "fast path: the grey image from OpenCV's BGR frame, the exact path's pixels, not the decoder's luma plane (for comparing the paths)"
        ),
        .string(
            "FILTER_CHECKS", nil, shown: "standard",
            "the filter's checks: a comma-separated list of \(VectorFilter.names.joined(separator: ", ")), all or none"),
    ]

    init(_ c: ConfigurationSource) throws(ConfigurationError) {
        // The stream's own settings codec: the API's rules, read from the environment it wrote.
        let sampling = try StreamSettings(c, requireSource: false)
        gridSize = sampling.gridSize
        threshold = sampling.threshold
        let exactFlag = try c.bool("EXACT")
        let exactEnv = try c.bool("EXACT_FLOW")
        exact = exactFlag || exactEnv
        let filterSetting = try c.bool("VECTOR_FILTER")
        let noFilter = try c.bool("NO_FILTER")
        let filterOn = filterSetting && !noFilter
        var checks = VectorFilter.standard
        if let list = c.raw("FILTER_CHECKS") {
            guard let parsed = VectorFilter.parse(list) else {
                throw ConfigurationError(
                    "FILTER_CHECKS must list checks among \(VectorFilter.names.joined(separator: ", ")), got \"\(list)\""
                )
            }
            checks = parsed
        }
        vectorFilter = filterOn && !exact ? checks : .none
        greyFromBGR = try c.bool("GREY_FROM_BGR")
    }

    /// Sets up a stream for these settings, once: the grid, the path, and the filter with the threshold.
    func configure(_ stream: VideoStream) {
        // Validated (StreamSettings.gridSizeRange): the shim refuses only sizes below 1.
        try? stream.setGridSize(gridSize)
        stream.exactFlow = exact
        stream.greyFromBGR = greyFromBGR
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
    /// The stream's zones (ZONES): motion events are detected in them.
    var zones: [Zone]
    /// The approximate length the worker trims `RedisKeys.events` to (XADD MAXLEN ~).
    var eventsStreamMaxLen: Int
    /// Entries waiting for Redis, at most; more are dropped (and counted).
    var eventsQueueSize: Int

    /// Settings of `run` and `bench` alike.
    static let encodingDeclarations: [Setting] = [
        .int("JPEG_QUALITY", 80, "preview JPEG quality (1-100)"),
        .int("VF_THREADS", 1, "threads for OpenCV, the tracker and the video decoder (1-64)"),
    ]

    /// The settings of `run` besides the flow's and `encodingDeclarations`.
    static let declarations: [Setting] =
        [
            .string("STREAM_ID", "default", "the stream, as a metric label, in frames and in the status key"),
            .string("STREAM_NAME", nil, shown: "STREAM_ID", "the stream's name, as a metric label and in frames"),
        ] + StreamSettings.sourceDeclarations + [
            .string("REDIS_URL", "redis://localhost:6379/0", "where frames and status go"),
            .string("METRICS_HOST", "0.0.0.0", "listen address of /metrics and /health"),
            .int("METRICS_PORT", 9100, "port of /metrics and /health (0: a free port)"),
            .bool("LOOP", true, "reopen finite sources at their end; false: stop with state ended"),
            .double("PREVIEW_FPS", 10, "cap of the live preview's rate (0.1-120)"),
            .int("PREVIEW_MAX_WIDTH", 640, "cap of the live preview's width (16-7680)"),
            .bool("PREVIEW_ALWAYS", false, "encode previews even when nobody watches"),
        ] + ZoneEnvironment.declarations + [
            .int(
                "EVENTS_STREAM_MAXLEN", 10000,
                "motion-event entries the events stream keeps (XADD MAXLEN ~): what a long API outage can keep (100-10000000)"),
            .int(
                "EVENTS_QUEUE_SIZE", 1000,
                "motion-event entries waiting while Redis is down, at most; more are dropped and counted (1-100000)"),
        ] + SourcePolicy.declarations

    init(_ c: ConfigurationSource) throws(ConfigurationError) {
        streamID = c.string("STREAM_ID")
        streamName = c.string("STREAM_NAME", default: streamID)
        source = try StreamSettings(c).source  // SOURCE_URL, else the file SOURCE_URL_FILE names
        sourceKind = try SourceKind.of(source)
        flow = try FlowSettings(c)
        redisURL = c.string("REDIS_URL")
        metricsHost = c.string("METRICS_HOST")
        metricsPort = try c.int("METRICS_PORT", range: 0...65535)
        loop = try c.bool("LOOP")
        previewFPS = try c.double("PREVIEW_FPS", range: 0.1...120)
        previewMaxWidth = try c.int("PREVIEW_MAX_WIDTH", range: 16...7680)
        previewAlways = try c.bool("PREVIEW_ALWAYS")
        jpegQuality = try c.int("JPEG_QUALITY", range: 1...100)
        threads = try c.int("VF_THREADS", range: 1...64)
        zones = try ZoneEnvironment.zones(c, streamID: streamID)
        eventsStreamMaxLen = try c.int("EVENTS_STREAM_MAXLEN", range: 100...10_000_000)
        eventsQueueSize = try c.int("EVENTS_QUEUE_SIZE", range: 1...100_000)
        sourcePolicy = try SourcePolicy(c, services: [SourceEndpoint(redisURL, defaultPort: 6379)?.rule].compactMap { $0 })
    }
}

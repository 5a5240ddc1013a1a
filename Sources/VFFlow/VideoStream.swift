import CVFOpenCV
import Logging
import VFSync

/// What one `VideoStream.read()` produced.
public enum ReadResult: Sendable, Equatable {
    case frame
    /// The decoder returned an unusable frame; skip it (and count it).
    case corrupt
    /// No frame: the end of a finite source, or the connection is gone.
    case end
    case failed(String)
}

/// One video source and its optical-flow state, over the C shim's `cvf_stream` handle.
///
/// `@unchecked Sendable`: the handle is not thread-safe, and this class is owned by exactly one
/// thread (the worker's capture loop, or `bench`/`flow` on the main thread); it is only handed
/// over, never shared.
public final class VideoStream: @unchecked Sendable {
    private let handle: OpaquePointer
    public private(set) var isOpen = false

    public init() {
        guard let h = cvf_stream_new() else { fatalError("out of memory creating a cvf_stream") }
        handle = h
    }

    deinit { cvf_stream_free(handle) }

    /// The threads the whole process gives OpenCV's parallel loops and, in captures opened from
    /// now on, the video decoder (OpenCV alone would give the decoder one per CPU of the machine).
    public static func setThreads(_ n: Int) {
        cvf_set_num_threads(Int32(n))
        cvf_set_decoder_threads(Int32(n))
    }
    /// The decoder's thread count set by `setThreads` (0: not set).
    public static var decoderThreads: Int { Int(cvf_decoder_threads()) }
    public static var openCVVersion: String { String(cString: cvf_opencv_version()) }

    /// Limits the TCP connections FFmpeg may make on the calling thread to these peers (address of
    /// 4 or 16 bytes, port), redirects included; nil lifts the limit. At most `CVF_GUARD_MAX` peers.
    public static func guardConnections(_ peers: [(address: [UInt8], port: Int)]?) {
        guard let peers else { return cvf_guard_connections(nil, nil, nil, -1) }
        let kept = peers.prefix(Int(CVF_GUARD_MAX))
        var bytes = [UInt8](repeating: 0, count: 16 * max(kept.count, 1))
        var lengths = [Int32]()
        var ports = [Int32]()
        for (i, p) in kept.enumerated() {
            for (j, b) in p.address.prefix(16).enumerated() { bytes[16 * i + j] = b }
            lengths.append(Int32(p.address.count))
            ports.append(Int32(p.port))
        }
        cvf_guard_connections(bytes, lengths, ports, Int32(kept.count))
    }

    /// The peer ("addr:port") the calling thread's guard last refused, or nil.
    public static var refusedConnection: String? {
        let s = String(cString: cvf_guard_refused())
        return s.isEmpty ? nil : s
    }

    /// Sends FFmpeg's own messages (why a source fails: refused, 401, no such stream) to `log`,
    /// one event per line at the matching level, instead of FFmpeg's raw stderr lines.
    public static func routeFFmpegLog(to log: Logger) {
        ffmpegLog.withLock { $0 = log }
        cvf_set_ffmpeg_log_sink { level, line in
            guard let line else { return }
            let text = String(cString: line)
            // FFmpeg's levels: 8 fatal, 16 error, 24 warning, 32 info, 40 verbose, 48 debug.
            let mapped: Logger.Level =
                level <= 8 ? .critical : level <= 16 ? .error : level <= 24 ? .warning : level <= 32 ? .info : .debug
            ffmpegLog.withLock { $0 }?.log(level: mapped, "ffmpeg: \(text)")
        }
    }

    private var lastError: String { String(cString: cvf_last_error(handle)) }

    /// Opens a source (path, file://, http(s)://, rtsp(s)://); forgets the previous frame.
    /// `httpProxy`: an http:// proxy every connection of an HTTP(S) source goes through.
    public func open(
        _ source: String, openTimeout: Double = 5, readTimeout: Double = 5, httpProxy: String? = nil
    ) throws(FlowError) {
        isOpen = false
        if cvf_open(handle, source, Int32(openTimeout * 1000), Int32(readTimeout * 1000), httpProxy) != 0 {
            throw FlowError(lastError)
        }
        isOpen = true
    }

    public func close() {
        cvf_close(handle)
        isOpen = false
    }

    /// The frame rate the source announces, 0 when unknown.
    public var sourceFPS: Double { cvf_source_fps(handle) }
    /// The number of frames the source announces; <= 0 for live or unknown.
    public var sourceFrameCount: Double { cvf_source_frame_count(handle) }
    public var width: Int { Int(cvf_frame_width(handle)) }
    public var height: Int { Int(cvf_frame_height(handle)) }

    public func read() -> ReadResult {
        switch cvf_read(handle) {
        case CVF_READ_FRAME: return .frame
        case CVF_READ_CORRUPT: return .corrupt
        case CVF_READ_END: return .end
        default: return .failed(lastError)
        }
    }

    /// Whether the current frame came as the decoder's own picture (the fast path's reads of a
    /// common 8-bit YUV or grey format) rather than through OpenCV's read and its BGR conversion.
    public var frameFromDecoder: Bool { cvf_frame_from_decoder(handle) != 0 }

    /// The current frame in BGR, as OpenCV's capture delivers it (the fast path's reads keep the
    /// decoder's own picture and convert it only for what draws or keeps it: this converts it now).
    /// `body` gets the pixels (`height` rows of `width` × 3 bytes, `step` bytes apart), valid only
    /// inside it.
    public func withBGR<R>(_ body: (_ pixels: UnsafeRawBufferPointer, _ step: Int) -> R) throws(FlowError) -> R {
        var data: UnsafePointer<UInt8>?
        var step = 0
        guard cvf_frame_bgr(handle, &data, &step) == 0, let data else { throw FlowError(lastError) }
        return body(UnsafeRawBufferPointer(start: data, count: step * height), step)
    }

    /// Loads a still image as the current frame.
    public func loadImage(_ path: String) throws(FlowError) {
        if cvf_load_image(handle, path) != 0 { throw FlowError(lastError) }
    }

    /// Grey conversion + pyramidal Lucas-Kanade from the previous frame at the grid points.
    /// Calls `body` with the tracked vectors (x, y, dx, dy quadruples; empty on the first frame),
    /// valid only inside `body`: no copy is made.
    /// The grid's spacing in pixels, handed to the shim once (and again only when it changes).
    public private(set) var gridSize = 0

    public func setGridSize(_ size: Int) throws(FlowError) {
        guard size != gridSize else { return }
        if cvf_set_grid_size(handle, Int32(size)) != 0 { throw FlowError(lastError) }
        gridSize = size
    }

    /// The flow on the grid (`setGridSize`) from the previous frame into the current one.
    public func flow<R>(_ body: (UnsafeBufferPointer<Float>) -> R) throws(FlowError) -> R {
        let n = cvf_flow(handle)
        if n < 0 { throw FlowError(lastError) }
        if n == 0 { return body(UnsafeBufferPointer(start: nil, count: 0)) }
        return body(UnsafeBufferPointer(start: cvf_vectors(handle), count: Int(n) * 4))
    }

    /// `flow` after `setGridSize(gridSize)`, for callers that vary the grid (tests, tools).
    public func flow<R>(gridSize: Int, _ body: (UnsafeBufferPointer<Float>) -> R) throws(FlowError) -> R {
        try setGridSize(gridSize)
        return try flow(body)
    }

    public func resetFlow() { cvf_reset_flow(handle) }

    /// `true`: every grid point goes through Lucas-Kanade (the reference path). `false` (the
    /// default): only points whose neighbourhood changed since the previous frame, or whose flat
    /// texture makes even a small change count, do; the others get a zero vector.
    public var exactFlow = false {
        didSet { cvf_set_exact_flow(handle, exactFlow ? 1 : 0) }
    }

    /// The fast path's grey image from OpenCV's BGR frame (the exact path's very pixels) instead of
    /// the decoder's luma plane: for comparing the two paths' answers. From the next read.
    public var greyFromBGR = false {
        didSet { cvf_set_grey_from_bgr(handle, greyFromBGR ? 1 : 0) }
    }

    /// How many grid points the last `flow` call ran Lucas-Kanade on.
    public var lastActivePoints: Int { Int(cvf_flow_active_points(handle)) }

    /// The fast path's reliability filter: the checks that a vector tracked above `minMagnitude`
    /// px must pass to be kept (`VectorFilter.none`: no filter, the default of a new stream).
    /// The exact path never filters.
    public func setVectorFilter(_ checks: VectorFilter, minMagnitude: Double) {
        cvf_set_vector_filter(handle, checks.rawValue, Float(minMagnitude))
    }

    /// Vectors the last `flow` call rejected, per reason (indexed like `VectorFilter.reasons`).
    public func lastRejected(_ reason: Int) -> Int { Int(cvf_flow_rejected(handle, Int32(reason))) }

    /// Seconds the last `flow` call spent in the filter.
    public var lastFilterSeconds: Double { cvf_flow_filter_seconds(handle) }

    /// Draws `vectors` on the current frame scaled to at most `maxWidth` px (0 = full size);
    /// returns the preview size. Call after `flow`: at full size it draws on the frame itself.
    public func annotate(vectors: [Float], maxWidth: Int, arrowScale: Float = 3, colourMax: Float = 8) throws(FlowError)
        -> (width: Int, height: Int)
    {
        var w: Int32 = 0
        var h: Int32 = 0
        let rc = vectors.withUnsafeBufferPointer {
            cvf_annotate(handle, $0.baseAddress, Int32($0.count / 4), Int32(maxWidth), arrowScale, colourMax, &w, &h)
        }
        if rc != 0 { throw FlowError(lastError) }
        return (Int(w), Int(h))
    }

    /// JPEG bytes of the last annotated preview, appended to `out`.
    public func encodeJPEG(quality: Int, into out: inout [UInt8]) throws(FlowError) {
        var data: UnsafePointer<UInt8>?
        var length = 0
        if cvf_encode_jpeg(handle, Int32(quality), &data, &length) != 0 { throw FlowError(lastError) }
        if let data { out.append(contentsOf: UnsafeBufferPointer(start: data, count: length)) }
    }

    /// How many snapshot slots a stream has (one per zone: ZoneRules.maxZonesPerStream).
    public static let snapshotSlots = Int(CVF_SNAPSHOT_SLOTS)

    /// Keeps the current frame annotated like the preview (`annotate`'s drawing, at most
    /// `maxWidth` wide) in `slot`, for a motion event's snapshot; the preview is untouched.
    public func holdSnapshot(slot: Int, vectors: [Float], maxWidth: Int, arrowScale: Float = 3, colourMax: Float = 8)
        throws(FlowError)
    {
        let rc = vectors.withUnsafeBufferPointer {
            cvf_snapshot_hold(handle, Int32(slot), $0.baseAddress, Int32($0.count / 4), Int32(maxWidth), arrowScale, colourMax)
        }
        if rc != 0 { throw FlowError(lastError) }
    }

    /// The JPEG of the snapshot held in `slot`.
    public func encodeSnapshot(slot: Int, quality: Int) throws(FlowError) -> [UInt8] {
        var data: UnsafePointer<UInt8>?
        var length = 0
        if cvf_snapshot_encode(handle, Int32(slot), Int32(quality), &data, &length) != 0 { throw FlowError(lastError) }
        guard let data else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: length))
    }
}

public struct FlowError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The checks of the fast path's reliability filter (see docs/notes/flow-quality.md), in the
/// order they run. A rejected vector is counted under the first check it fails.
public struct VectorFilter: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The window's weakest structure-tensor eigenvalue against the frame's noise.
    public static let texture = VectorFilter(rawValue: CVF_CHECK_TEXTURE)
    /// Lucas-Kanade stopped on epsilon, not on the iteration cap.
    public static let convergence = VectorFilter(rawValue: CVF_CHECK_CONVERGENCE)
    /// The final window's mismatch against the frame's noise.
    public static let residual = VectorFilter(rawValue: CVF_CHECK_RESIDUAL)
    /// Tracked back, the endpoint lands within 0.5 px of its grid point.
    public static let forwardBackward = VectorFilter(rawValue: CVF_CHECK_FORWARD_BACKWARD)
    /// One of the eight neighbouring grid points also passed and moves alike.
    public static let neighbours = VectorFilter(rawValue: CVF_CHECK_NEIGHBOURS)

    public static let none: VectorFilter = []
    /// The checks the worker runs by default: the ones that paid off in the measurements.
    public static let standard = VectorFilter(rawValue: CVF_CHECKS_DEFAULT)

    /// The reasons a vector is rejected for, one per check, as metric label values.
    public static let reasons: [String] = (0..<Int(CVF_REJECT_REASONS)).map {
        String(cString: cvf_reject_reason_name(Int32($0)))
    }
    /// The check names accepted by `parse`, in bit order.
    public static let names = ["texture", "convergence", "residual", "forward_backward", "neighbours"]

    /// A comma-separated list of check names (`names`), or `all` / `none`; nil when a name is unknown.
    public static func parse(_ list: String) -> VectorFilter? {
        switch list {
        case "all": return VectorFilter(rawValue: 31)
        case "none", "": return VectorFilter.none
        default: break
        }
        var checks = VectorFilter.none
        for part in list.split(separator: ",") {
            guard let i = names.firstIndex(of: String(part)) else { return nil }
            checks.insert(VectorFilter(rawValue: 1 << Int32(i)))
        }
        return checks
    }
}

/// Where `VideoStream.routeFFmpegLog` sends FFmpeg's lines (FFmpeg calls from any thread).
private let ffmpegLog = Locked<Logger?>(nil)

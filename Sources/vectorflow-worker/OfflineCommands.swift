import Foundation
import VFText
import Glibc
import Logging
import VFCore
import VFFlow

/// The log of `bench` and `flow` (made after `Log.bootstrap`: globals start lazily).
private let offlineLog = Logger(label: "vectorflow-worker")

/// `vectorflow-worker flow IMAGE1 IMAGE2`: every tracked grid point between two stills, as JSON.
func flowCommand(_ c: ConfigurationSource) throws(ConfigurationError) -> Int32 {
    try c.expectPositional(atMost: 3)
    let settings = try FlowSettings(c)
    guard c.positional.count == 3 else {
        throw ConfigurationError("usage: vectorflow-worker flow IMAGE1 IMAGE2 [options] (see vectorflow-worker --help)")
    }
    let stream = VideoStream()
    settings.configure(stream)
    do {
        try stream.loadImage(c.positional[1])
        _ = try stream.flow { _ in 0 }
        try stream.loadImage(c.positional[2])
    } catch {
        offlineLog.error("\(Credentials.maskText("\(error)"))")
        return 1
    }
    var w = JSONWriter()
    w.raw("{\"width\":")
    w.int(stream.width)
    w.raw(",\"height\":")
    w.int(stream.height)
    w.raw(",\"vectors\":[")
    do {
        try stream.flow { v in
            var i = 0
            while i + 3 < v.count {
                if i > 0 { w.bytes.append(0x2C) }
                w.vector(v, at: i, decimals: 5)
                i += 4
            }
        }
    } catch {
        offlineLog.error("\(Credentials.maskText("\(error)"))")
        return 1
    }
    w.raw("]}")
    printLine(w.bytes)
    return 0
}

/// The settings of `bench` besides the flow's and `WorkerSettings.encodingDeclarations`.
let benchDeclarations: [Setting] = [
    .int("FRAMES", nil, shown: "all", "frames to analyse (at least 1)"),
    .bool("PREVIEW", false, "annotate and JPEG-encode every frame too"),
    .bool("DECODE_ONLY", false, "time OpenCV's read alone: decoding and the BGR conversion (the seed's cost of a frame)"),
    .bool("DECODE_RAW", false, "time the decoder alone (its own picture, no BGR conversion)"),
    .string("DUMP_VECTORS", nil, "write each frame's reported vectors to this file, one JSON line per frame"),
    .string("ZONES_FILE", nil, "a file holding ZONES (the zones' JSON, as run reads it): detect motion events in them too"),
]

/// `vectorflow-worker bench SOURCE`: the analysis loop unpaced and without Redis, timed per stage.
/// `--decode-only` times OpenCV's read alone (decoding and the BGR conversion), `--decode-raw` the
/// decoder alone; `--dump-vectors FILE` writes each frame's reported vectors
/// above the threshold, its `magnitude_max` and the vectors the filter rejected as one JSON line
/// (`{"frame":N,"vectors":[[x,y,dx,dy],…],"magnitude_max":M,"rejected":R}`) for comparing paths.
func benchCommand(_ c: ConfigurationSource) throws(ConfigurationError) -> Int32 {
    try c.expectPositional(atMost: 2)
    // Settings first: a value given to the wrong flag (`--frames clip.mp4`) is named as such.
    let settings = try FlowSettings(c)
    let maxFrames = try c.int("FRAMES", default: Int.max, range: 1...Int.max)
    let preview = try c.bool("PREVIEW")
    let decodeRaw = try c.bool("DECODE_RAW")
    let decodeOnly = try c.bool("DECODE_ONLY") || decodeRaw
    let quality = try c.int("JPEG_QUALITY", range: 1...100)
    let threads = try c.int("VF_THREADS", range: 1...64)
    let dumpPath = c.raw("DUMP_VECTORS")
    var zones: [Zone] = []
    if let path = c.raw("ZONES_FILE") {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("ZONES_FILE \(path) cannot be read")
        }
        zones = try ZoneEnvironment.decode(String(decoding: data, as: UTF8.self), streamID: "bench")
    }
    guard c.positional.count == 2 else {
        throw ConfigurationError("usage: vectorflow-worker bench SOURCE [options] (see vectorflow-worker --help)")
    }
    let source = c.positional[1]
    _ = try SourceKind.of(source)
    if let dumpPath, dumpPath.isEmpty || dumpPath == "true" {
        throw ConfigurationError("--dump-vectors needs a file name")
    }
    VideoStream.setThreads(threads)

    var dump: UnsafeMutablePointer<FILE>?
    if let dumpPath {
        guard let f = fopen(dumpPath, "w") else {
            offlineLog.error("cannot write \(dumpPath)")
            return 1
        }
        dump = f
    }
    defer { if let dump { fclose(dump) } }
    let stream = VideoStream()
    settings.configure(stream)
    // OpenCV's own read (decode, BGR conversion, copy), as the exact path reads: the seed's cost of a frame.
    if decodeOnly && !decodeRaw { stream.exactFlow = true }
    do {
        try stream.open(source)
    } catch {
        offlineLog.error("\(Credentials.maskText("\(error)"))")
        return 1
    }
    var decode = 0.0
    var flow = 0.0
    var annotate = 0.0
    var encode = 0.0
    var filter = 0.0
    var rejected = [Int](repeating: 0, count: VectorFilter.reasons.count)
    var frames = 0
    var decoderFrames = 0  // frames that came as the decoder's own picture (no BGR conversion at read)
    var activePoints = 0
    var kept: [Float] = []
    var jpeg: [UInt8] = []
    var line = JSONWriter()
    var checksum = 0
    var frameStats = FlowStats.zero
    // The worker's zone work per frame: detection, the snapshot copies of rising peaks and the
    // JPEGs of the entries that carry one (capture time: the frame's place in the file).
    var detector = ZoneDetector(zones: zones, streamID: "bench", streamName: "bench")
    var zoneTime = 0.0
    var detectTime = 0.0
    var entries = 0
    var zoneSnapshots = ZoneSnapshots(zoneCount: zones.count)
    let frameInterval = 1 / ((1...240).contains(stream.sourceFPS) ? stream.sourceFPS : 25)
    let start = monotonicNow()
    while frames < maxFrames {
        let t0 = monotonicNow()
        let r = stream.read()
        let t1 = monotonicNow()
        decode += t1 - t0
        if r == .corrupt { continue }
        guard r == .frame else { break }
        frames += 1
        if stream.frameFromDecoder { decoderFrames += 1 }
        if decodeOnly { continue }
        do {
            var stats = try stream.flow { v in
                FlowStats.analyse(v, threshold: settings.threshold, kept: &kept)
            }
            checksum &+= stats.vectorCount
            activePoints += stream.lastActivePoints
            filter += stream.lastFilterSeconds
            for r in rejected.indices {
                let n = stream.lastRejected(r)
                rejected[r] += n
                stats.rejected += n
            }
            frameStats = stats
            var t2 = monotonicNow()
            flow += t2 - t1
            if !detector.isEmpty {
                detector.prepare(width: stream.width, height: stream.height, gridSize: settings.gridSize)
                detector.process(kept: kept, at: Double(frames) * frameInterval)
                let td = monotonicNow()
                detectTime += td - t2
                zoneSnapshots.keepRisingPeaks(of: detector, stream: stream, kept: kept, maxWidth: 640)
                for entry in detector.entries where entry.needsSnapshot {
                    _ = zoneSnapshots.jpeg(zone: entry.zoneIndex, stream: stream, quality: quality)
                }
                entries += detector.entries.count
                let t = monotonicNow()
                zoneTime += t - t2
                t2 = t
            }
            if preview {
                _ = try stream.annotate(vectors: kept, maxWidth: 0)
                let t3 = monotonicNow()
                annotate += t3 - t2
                jpeg.removeAll(keepingCapacity: true)
                try stream.encodeJPEG(quality: quality, into: &jpeg)
                encode += monotonicNow() - t3
            }
        } catch {
            offlineLog.error("\(Credentials.maskText("\(error)"))")
            return 1
        }
        if let dump {
            writeVectorLine(&line, frame: frames, kept: kept, stats: frameStats, to: dump)
        }
    }
    let seconds = monotonicNow() - start
    let n = Double(max(frames, 1))
    var w = JSONWriter()
    w.raw("{\"frames\":")
    w.int(frames)
    w.raw(",\"frames_from_decoder\":")
    w.int(decoderFrames)
    w.raw(",\"seconds\":")
    w.number(seconds, decimals: 4)
    w.raw(",\"fps\":")
    w.number(seconds > 0 ? Double(frames) / seconds : 0, decimals: 2)
    w.raw(",\"mode\":\"")
    w.raw(decodeRaw ? "decode-raw" : decodeOnly ? "decode-only" : (settings.exact ? "exact" : "fast"))
    w.raw("\",\"vector_filter\":")
    w.bool(!decodeOnly && !settings.vectorFilter.isEmpty)
    w.raw(",\"threads\":")
    w.int(threads)
    w.raw(",\"stages\":{\"decode_ms\":")
    w.number(decode / n * 1000, decimals: 4)
    w.raw(",\"flow_ms\":")
    w.number(flow / n * 1000, decimals: 4)
    w.raw(",\"filter_ms\":")
    w.number(filter / n * 1000, decimals: 4)
    w.raw(",\"annotate_ms\":")
    w.number(annotate / n * 1000, decimals: 4)
    w.raw(",\"encode_ms\":")
    w.number(encode / n * 1000, decimals: 4)
    w.raw(",\"zones_ms\":")
    w.number(zoneTime / n * 1000, decimals: 4)
    w.raw(",\"zone_detect_ms\":")
    w.number(detectTime / n * 1000, decimals: 4)
    w.raw("},\"lk_points_per_frame\":")
    w.number(Double(activePoints) / n, decimals: 1)
    w.raw(",\"vectors_above_threshold\":")
    w.int(checksum)
    w.raw(",\"zones\":")
    w.int(zones.count)
    w.raw(",\"event_entries\":")
    w.int(entries)
    w.raw(",\"snapshot_holds\":")
    w.int(zoneSnapshots.holds)
    w.raw(",\"snapshot_jpegs\":")
    w.int(zoneSnapshots.encodes)
    w.raw(",\"rejected\":{")
    for (r, name) in VectorFilter.reasons.enumerated() {
        if r > 0 { w.bytes.append(0x2C) }
        w.string(name)
        w.bytes.append(0x3A)
        w.int(rejected[r])
    }
    w.raw("}}")
    printLine(w.bytes)
    return 0
}

/// One `--dump-vectors` line: the frame number (1-based), its reported vectors above the threshold,
/// its `magnitude_max` and how many vectors the filter rejected.
private func writeVectorLine(
    _ w: inout JSONWriter, frame: Int, kept: [Float], stats: FlowStats, to file: UnsafeMutablePointer<FILE>
) {
    w.bytes.removeAll(keepingCapacity: true)
    w.raw("{\"frame\":")
    w.int(frame)
    w.raw(",\"vectors\":[")
    var i = 0
    while i + 3 < kept.count {
        if i > 0 { w.bytes.append(0x2C) }
        w.vector(kept, at: i, decimals: 4)
        i += 4
    }
    w.raw("],\"magnitude_max\":")
    w.number(stats.magnitudeMax, decimals: 4)
    w.raw(",\"rejected\":")
    w.int(stats.rejected)
    w.raw("}\n")
    _ = w.bytes.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
}

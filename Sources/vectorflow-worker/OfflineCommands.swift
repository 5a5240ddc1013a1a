import VFCore
import VFFlow

/// `vectorflow-worker flow IMAGE1 IMAGE2`: every tracked grid point between two stills, as JSON.
func flowCommand(_ c: ConfigurationSource) throws(ConfigurationError) -> Int32 {
    guard c.positional.count == 3 else {
        throw ConfigurationError("usage: vectorflow-worker flow IMAGE1 IMAGE2 [--grid-size N] [--threshold X]")
    }
    let settings = try FlowSettings(c)
    let stream = VideoStream()
    do {
        try stream.loadImage(c.positional[1])
        _ = try stream.flow(gridSize: settings.gridSize) { _ in 0 }
        try stream.loadImage(c.positional[2])
    } catch {
        printError("vectorflow-worker: \(error)")
        return 1
    }
    var w = JSONWriter()
    w.raw("{\"width\":")
    w.int(stream.width)
    w.raw(",\"height\":")
    w.int(stream.height)
    w.raw(",\"vectors\":[")
    do {
        try stream.flow(gridSize: settings.gridSize) { v in
            var i = 0
            while i + 3 < v.count {
                if i > 0 { w.bytes.append(0x2C) }
                w.bytes.append(0x5B)
                for j in 0..<4 {
                    if j > 0 { w.bytes.append(0x2C) }
                    w.number(Double(v[i + j]), decimals: 5)
                }
                w.bytes.append(0x5D)
                i += 4
            }
        }
    } catch {
        printError("vectorflow-worker: \(error)")
        return 1
    }
    w.raw("]}")
    printLine(w.bytes)
    return 0
}

/// `vectorflow-worker bench SOURCE`: the analysis loop unpaced and without Redis, timed per stage.
func benchCommand(_ c: ConfigurationSource) throws(ConfigurationError) -> Int32 {
    guard c.positional.count == 2 else {
        throw ConfigurationError(
            "usage: vectorflow-worker bench SOURCE [--frames N] [--grid-size N] [--threshold X] [--preview]")
    }
    let source = c.positional[1]
    _ = try SourceKind.of(source)
    let settings = try FlowSettings(c)
    let maxFrames = try c.int("FRAMES", default: Int.max, range: 1...Int.max)
    let preview = try c.bool("PREVIEW", default: false)
    let quality = try c.int("JPEG_QUALITY", default: 80, range: 1...100)
    VideoStream.setThreads(try c.int("VF_THREADS", default: 1, range: 1...64))

    let stream = VideoStream()
    do {
        try stream.open(source)
    } catch {
        printError("vectorflow-worker: \(error)")
        return 1
    }
    var decode = 0.0
    var flow = 0.0
    var annotate = 0.0
    var encode = 0.0
    var frames = 0
    var kept: [Float] = []
    var jpeg: [UInt8] = []
    var checksum = 0
    let start = monotonicNow()
    while frames < maxFrames {
        let t0 = monotonicNow()
        let r = stream.read()
        let t1 = monotonicNow()
        decode += t1 - t0
        if r == .corrupt { continue }
        guard r == .frame else { break }
        frames += 1
        do {
            let stats = try stream.flow(gridSize: settings.gridSize) { v in
                FlowStats.analyse(v, threshold: settings.threshold, kept: &kept)
            }
            checksum &+= stats.vectorCount
            let t2 = monotonicNow()
            flow += t2 - t1
            if preview {
                _ = try stream.annotate(vectors: kept, maxWidth: 0)
                let t3 = monotonicNow()
                annotate += t3 - t2
                jpeg.removeAll(keepingCapacity: true)
                try stream.encodeJPEG(quality: quality, into: &jpeg)
                encode += monotonicNow() - t3
            }
        } catch {
            printError("vectorflow-worker: \(error)")
            return 1
        }
    }
    let seconds = monotonicNow() - start
    let n = Double(max(frames, 1))
    var w = JSONWriter()
    w.raw("{\"frames\":")
    w.int(frames)
    w.raw(",\"seconds\":")
    w.number(seconds, decimals: 4)
    w.raw(",\"fps\":")
    w.number(seconds > 0 ? Double(frames) / seconds : 0, decimals: 2)
    w.raw(",\"stages\":{\"decode_ms\":")
    w.number(decode / n * 1000, decimals: 4)
    w.raw(",\"flow_ms\":")
    w.number(flow / n * 1000, decimals: 4)
    w.raw(",\"annotate_ms\":")
    w.number(annotate / n * 1000, decimals: 4)
    w.raw(",\"encode_ms\":")
    w.number(encode / n * 1000, decimals: 4)
    w.raw("},\"vectors_above_threshold\":")
    w.int(checksum)
    w.raw("}")
    printLine(w.bytes)
    return 0
}

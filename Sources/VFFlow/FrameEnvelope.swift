import VFText

/// The JSON header of one live-frame message (see docs/frame-envelope.md).
public struct FrameHeader: Sendable, Equatable {
    public var streamID: String
    public var streamName: String
    public var seq: UInt64
    /// Unix time in seconds at which the frame was read from the source.
    public var capturedAt: Double
    public var width: Int
    public var height: Int
    public var fps: Double
    public var stats: FlowStats
    /// Above-threshold vectors, x, y, dx, dy quadruples (at most `FrameEnvelope.maxVectors` are sent).
    public var vectors: [Float]
    public var jpeg: Bool
    public var previewWidth: Int
    public var previewHeight: Int

    public init(
        streamID: String, streamName: String, seq: UInt64, capturedAt: Double, width: Int, height: Int,
        fps: Double, stats: FlowStats, vectors: [Float], jpeg: Bool, previewWidth: Int, previewHeight: Int
    ) {
        self.streamID = streamID
        self.streamName = streamName
        self.seq = seq
        self.capturedAt = capturedAt
        self.width = width
        self.height = height
        self.fps = fps
        self.stats = stats
        self.vectors = vectors
        self.jpeg = jpeg
        self.previewWidth = previewWidth
        self.previewHeight = previewHeight
    }
}

/// One binary live-frame message: a 4-byte big-endian header length N, N bytes of UTF-8 JSON
/// header, then the JPEG bytes (none when `jpeg` is false). The API forwards it verbatim.
public enum FrameEnvelope {
    /// Vectors beyond this many are thinned by an even stride so the header stays small.
    public static let maxVectors = 2000

    public static func encode(_ h: FrameHeader, jpeg: [UInt8]) -> [UInt8] {
        var w = JSONWriter(capacity: 256 + min(h.vectors.count / 4, maxVectors) * 28)
        w.bytes.append(contentsOf: [0, 0, 0, 0])  // length, patched below
        w.raw("{\"stream_id\":")
        w.string(h.streamID)
        w.raw(",\"stream_name\":")
        w.string(h.streamName)
        w.raw(",\"seq\":")
        w.int(Int(h.seq))
        w.raw(",\"captured_at\":")
        w.number(h.capturedAt, decimals: 3)
        w.raw(",\"width\":")
        w.int(h.width)
        w.raw(",\"height\":")
        w.int(h.height)
        w.raw(",\"fps\":")
        w.number(h.fps, decimals: 2)
        w.raw(",\"stats\":{\"vector_count\":")
        w.int(h.stats.vectorCount)
        w.raw(",\"magnitude_avg\":")
        w.number(h.stats.magnitudeAvg, decimals: 3)
        w.raw(",\"magnitude_max\":")
        w.number(h.stats.magnitudeMax, decimals: 3)
        w.raw(",\"rejected\":")
        w.int(h.stats.rejected)
        w.raw(",\"directions\":{")
        for k in 0..<8 {
            if k > 0 { w.bytes.append(0x2C) }
            w.string(FlowStats.directionNames[k])
            w.bytes.append(0x3A)
            w.int(h.stats.directions[k])
        }
        w.raw("},\"mean_vector\":[")
        w.number(h.stats.meanDX, decimals: 3)
        w.bytes.append(0x2C)
        w.number(h.stats.meanDY, decimals: 3)
        w.raw("]},\"vectors\":[")
        let n = h.vectors.count / 4
        let sent = min(n, maxVectors)
        for k in 0..<sent {
            let i = (n <= maxVectors ? k : k * n / maxVectors) * 4
            if k > 0 { w.bytes.append(0x2C) }
            w.vector(h.vectors, at: i, decimals: 2)
        }
        w.raw("],\"jpeg\":")
        w.bool(h.jpeg)
        w.raw(",\"preview_width\":")
        w.int(h.previewWidth)
        w.raw(",\"preview_height\":")
        w.int(h.previewHeight)
        w.raw("}")
        let length = UInt32(w.bytes.count - 4)
        w.bytes[0] = UInt8(length >> 24)
        w.bytes[1] = UInt8(length >> 16 & 0xFF)
        w.bytes[2] = UInt8(length >> 8 & 0xFF)
        w.bytes[3] = UInt8(length & 0xFF)
        w.bytes.append(contentsOf: jpeg)
        return w.bytes
    }

    /// Splits a message into its JSON header bytes and JPEG bytes; nil when malformed.
    public static func split(_ message: [UInt8]) -> (header: ArraySlice<UInt8>, jpeg: ArraySlice<UInt8>)? {
        guard message.count >= 4 else { return nil }
        let n = Int(message[0]) << 24 | Int(message[1]) << 16 | Int(message[2]) << 8 | Int(message[3])
        guard n <= message.count - 4 else { return nil }
        return (message[4..<(4 + n)], message[(4 + n)...])
    }
}

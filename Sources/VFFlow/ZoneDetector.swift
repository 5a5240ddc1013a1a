import Foundation
import VFCore

/// Motion events of a stream's zones, from the reliable above-threshold vectors of each frame.
///
/// Which zones each grid point lies in (a bitmask per grid point; a stream has at most 64
/// zones, `ZoneRules.maxZonesPerStream`) is computed once per frame size and grid, by
/// point-in-polygon on the point's normalised position. Per frame, each kept vector adds to the
/// zones of its grid point whose direction rule it passes; a zone's rule holds on a frame when
/// at least `minVectors` vectors count and their mean speed reaches `minMeanSpeed` (if any).
/// Hysteresis on capture time: an event starts once the rule has held on every frame for
/// `minDurationS` (its frames from the first one on are the event's), and ends once it has not
/// held for `quietTimeS`. Entries follow MotionEvent's contract: start, updates at most once a
/// second and only when something changed, end; each with the whole state so far and `seq`.
///
/// The per-frame path allocates nothing: fixed per-zone accumulators, the reused `entries`.
public struct ZoneDetector {
    /// One entry to append; `needsSnapshot` when the frame at the peak goes with it: the end entry
    /// always; an update when the peak changed and `snapshotInterval` has passed since the event's
    /// start or its last snapshot (a long event's picture is refreshed); a start never (its peak
    /// is seconds old at most: the end's snapshot follows). Each snapshot is a JPEG encoded on
    /// the analysis thread, so they are kept few (bench/worker: 8 zones within 5% of none).
    public struct Entry: Sendable {
        public var zoneIndex: Int
        public var event: MotionEvent
        public var needsSnapshot: Bool
    }

    public let zones: [Zone]
    let streamID: String
    let streamName: String
    /// Entries made by the last `process` or `finish`, in order (storage reused).
    public private(set) var entries: [Entry] = []
    /// Bit k: zone k's peak rose on the last processed frame (the caller keeps that frame).
    public private(set) var peakRose: UInt64 = 0

    /// At most one update entry per this many seconds while an event goes on.
    public static let updateInterval = 1.0
    /// At most one snapshot per event per this many seconds before its end.
    public static let snapshotInterval = 5.0

    // The grid the membership was computed for.
    private var builtWidth = -1
    private var builtHeight = -1
    private var builtGrid = -1
    private var gridCols = 0
    private var gridRows = 0
    private var membership: [UInt64] = []

    // Direction rules: unit vector and the cosine of the tolerance; `checksDirection` false when
    // any direction passes.
    private let dirX: [Double]
    private let dirY: [Double]
    private let cosTolerance: [Double]
    private let checksDirection: [Bool]

    // This frame's sums per zone.
    private var frameCount: [Int]
    private var frameSpeed: [Double]
    private var frameDX: [Double]
    private var frameDY: [Double]

    private var states: [ZoneState]

    struct ZoneState {
        /// When the rule began to hold without a break; nil when it does not hold.
        var holdingSince: Double?
        var active = false
        var id = ""
        var seq = 0
        var lastMotionAt = 0.0
        var peakSpeed = 0.0
        var peakAt = 0.0
        var speedSum = 0.0
        var sumDX = 0.0
        var sumDY = 0.0
        var vectorCount = 0
        var peakVectors = 0
        var frames = 0
        var lastEntryAt = 0.0
        var changedSinceEntry = false
        var peakChangedSinceSnapshot = false
        var lastSnapshotAt = 0.0

        mutating func reset(at t: Double) {
            self = ZoneState()
            holdingSince = t
        }
    }

    public init(zones: [Zone], streamID: String, streamName: String) {
        let zones = Array(zones.prefix(ZoneRules.maxZonesPerStream))
        self.zones = zones
        self.streamID = streamID
        self.streamName = streamName
        var dx: [Double] = []
        var dy: [Double] = []
        var cosT: [Double] = []
        var checks: [Bool] = []
        for z in zones {
            let deg = z.rule.directionDeg ?? 0
            let tol = z.rule.directionToleranceDeg ?? ZoneRule.toleranceDefault
            dx.append(cos(deg * .pi / 180))
            dy.append(sin(deg * .pi / 180))
            cosT.append(cos(min(tol, 180) * .pi / 180))
            checks.append(z.rule.directionDeg != nil && tol < 180)
        }
        dirX = dx
        dirY = dy
        cosTolerance = cosT
        checksDirection = checks
        let n = zones.count
        frameCount = Array(repeating: 0, count: n)
        frameSpeed = Array(repeating: 0, count: n)
        frameDX = Array(repeating: 0, count: n)
        frameDY = Array(repeating: 0, count: n)
        states = Array(repeating: ZoneState(), count: n)
        entries.reserveCapacity(2 * n)
    }

    public var isEmpty: Bool { zones.isEmpty }

    /// Whether zone `k`'s event is going on (for the `zone_active` gauge).
    public func isActive(_ k: Int) -> Bool { states[k].active }

    /// The zones (bitmask) of the grid point nearest (x, y) px, for tests and tools.
    public func zonesAt(x: Float, y: Float) -> UInt64 {
        guard let i = gridIndex(x: x, y: y) else { return 0 }
        return membership[i]
    }

    /// Computes which zones each grid point lies in, when the frame size or the grid changed
    /// since the last call (the same grid as the flow's: points at g/2 + i·g).
    public mutating func prepare(width: Int, height: Int, gridSize: Int) {
        guard width != builtWidth || height != builtHeight || gridSize != builtGrid else { return }
        builtWidth = width
        builtHeight = height
        builtGrid = gridSize
        let g = max(1, gridSize)
        gridCols = width > g / 2 ? (width - g / 2 + g - 1) / g : 0
        gridRows = height > g / 2 ? (height - g / 2 + g - 1) / g : 0
        membership = Array(repeating: 0, count: gridCols * gridRows)
        guard width > 0, height > 0 else { return }
        for r in 0..<gridRows {
            let y = Double(g / 2 + r * g) / Double(height)
            for c in 0..<gridCols {
                let x = Double(g / 2 + c * g) / Double(width)
                var mask: UInt64 = 0
                for (k, z) in zones.enumerated() where Self.contains(z.polygon, x: x, y: y) {
                    mask |= 1 << UInt64(k)
                }
                membership[r * gridCols + c] = mask
            }
        }
    }

    /// Even-odd ray casting; a point on the boundary may fall either way.
    public static func contains(_ polygon: [ZonePoint], x: Double, y: Double) -> Bool {
        var inside = false
        var j = polygon.count - 1
        for i in polygon.indices {
            let a = polygon[i]
            let b = polygon[j]
            if (a.y > y) != (b.y > y) && x < (b.x - a.x) * (y - a.y) / (b.y - a.y) + a.x { inside.toggle() }
            j = i
        }
        return inside
    }

    private func gridIndex(x: Float, y: Float) -> Int? {
        let g = builtGrid
        guard g > 0 else { return nil }
        let c = (Int(x.rounded()) - g / 2 + g / 2) / g
        let r = (Int(y.rounded()) - g / 2 + g / 2) / g
        guard c >= 0, r >= 0, c < gridCols, r < gridRows else { return nil }
        return r * gridCols + c
    }

    /// One frame: `kept` holds its reliable above-threshold vectors (x, y, dx, dy quadruples),
    /// `t` its capture time (seconds). Fills `entries` and `peakRose`. Call `prepare` first.
    public mutating func process(kept: UnsafeBufferPointer<Float>, at t: Double) {
        entries.removeAll(keepingCapacity: true)
        peakRose = 0
        let n = zones.count
        guard n > 0 else { return }
        for k in 0..<n {
            frameCount[k] = 0
            frameSpeed[k] = 0
            frameDX[k] = 0
            frameDY[k] = 0
        }
        var i = 0
        while i + 3 < kept.count {
            defer { i += 4 }
            guard let gi = gridIndex(x: kept[i], y: kept[i + 1]) else { continue }
            var mask = membership[gi]
            if mask == 0 { continue }
            let dx = Double(kept[i + 2])
            let dy = Double(kept[i + 3])
            let m = (dx * dx + dy * dy).squareRoot()
            while mask != 0 {
                let k = mask.trailingZeroBitCount
                mask &= mask - 1
                if checksDirection[k] && dx * dirX[k] + dy * dirY[k] < m * cosTolerance[k] { continue }
                frameCount[k] += 1
                frameSpeed[k] += m
                frameDX[k] += dx
                frameDY[k] += dy
            }
        }
        for k in 0..<n { step(k, at: t) }
    }

    /// `process` for an array.
    public mutating func process(kept: [Float], at t: Double) {
        kept.withUnsafeBufferPointer { process(kept: $0, at: t) }
    }

    private mutating func step(_ k: Int, at t: Double) {
        let rule = zones[k].rule
        let count = frameCount[k]
        let mean = count > 0 ? frameSpeed[k] / Double(count) : 0
        let holds = count >= rule.minVectors && count > 0 && (rule.minMeanSpeed.map { mean >= $0 } ?? true)
        var s = states[k]
        defer { states[k] = s }
        if holds {
            if !s.active && s.holdingSince == nil { s.reset(at: t) }
            s.lastMotionAt = t
            s.frames += 1
            s.vectorCount += count
            s.speedSum += frameSpeed[k]
            s.sumDX += frameDX[k]
            s.sumDY += frameDY[k]
            s.peakVectors = max(s.peakVectors, count)
            if mean > s.peakSpeed || s.frames == 1 {
                s.peakSpeed = mean
                s.peakAt = t
                s.peakChangedSinceSnapshot = true
                peakRose |= 1 << UInt64(k)
            }
            s.changedSinceEntry = true
            if !s.active, let since = s.holdingSince, t - since >= rule.minDurationS {
                s.active = true
                s.id = UUID().uuidString.lowercased()
                emit(k, &s, .start, at: t)
            } else if s.active && t - s.lastEntryAt >= Self.updateInterval {
                emit(k, &s, .update, at: t)
            }
        } else if s.active {
            if t - s.lastMotionAt >= rule.quietTimeS {
                emit(k, &s, .end, at: t)
                s = ZoneState()
            } else if s.changedSinceEntry && t - s.lastEntryAt >= Self.updateInterval {
                emit(k, &s, .update, at: t)
            }
        } else {
            s.holdingSince = nil
        }
    }

    private mutating func emit(_ k: Int, _ s: inout ZoneState, _ phase: MotionEvent.Phase, at t: Double) {
        s.seq += 1
        let z = zones[k]
        let direction: Double?
        if s.sumDX == 0 && s.sumDY == 0 {
            direction = nil
        } else {
            let d = atan2(s.sumDY, s.sumDX) * 180 / .pi
            direction = d < 0 ? d + 360 : d
        }
        let event = MotionEvent(
            id: s.id, seq: s.seq, phase: phase, streamID: streamID, streamName: streamName, zoneID: z.id,
            zoneName: z.name, startedAt: s.holdingSince ?? s.lastMotionAt, lastMotionAt: s.lastMotionAt,
            endedAt: phase == .end ? t : nil, peakSpeed: s.peakSpeed, peakAt: s.peakAt,
            meanSpeed: s.vectorCount > 0 ? s.speedSum / Double(s.vectorCount) : 0, meanDirectionDeg: direction,
            vectorCount: s.vectorCount, peakVectors: s.peakVectors, frames: s.frames)
        if phase == .start { s.lastSnapshotAt = t }
        let snapshot =
            phase == .end
            || (phase == .update && s.peakChangedSinceSnapshot && t - s.lastSnapshotAt >= Self.snapshotInterval)
        entries.append(Entry(zoneIndex: k, event: event, needsSnapshot: snapshot))
        s.lastEntryAt = t
        s.changedSinceEntry = false
        if snapshot {
            s.peakChangedSinceSnapshot = false
            s.lastSnapshotAt = t
        }
    }

    /// Ends every event going on (a clean stop, or the source's end): fills `entries`.
    public mutating func finish(at t: Double) {
        entries.removeAll(keepingCapacity: true)
        peakRose = 0
        for k in states.indices {
            if states[k].active {
                var s = states[k]
                emit(k, &s, .end, at: t)
            }
            states[k] = ZoneState()
        }
    }
}

/// The snapshots of a stream's zones: the frame of each zone's peak is kept (copied into the
/// shim's slot, `VideoStream.holdSnapshot`) when the peak rises, and JPEG-encoded only when an
/// entry needs it; the JPEG is kept too, so an entry whose peak has not moved since the last one
/// (an end entry, most often) reuses it instead of encoding the same frame again.
public struct ZoneSnapshots {
    private var jpegs: [[UInt8]?]
    /// Frames kept and JPEGs encoded so far (the bench reports them).
    public private(set) var holds = 0
    public private(set) var encodes = 0

    public init(zoneCount: Int) { jpegs = Array(repeating: nil, count: zoneCount) }

    /// After `detector.process`: keeps the current frame for every zone whose peak rose.
    public mutating func keepRisingPeaks(of detector: ZoneDetector, stream: VideoStream, kept: [Float], maxWidth: Int) {
        var rose = detector.peakRose
        while rose != 0 {
            let k = rose.trailingZeroBitCount
            rose &= rose - 1
            jpegs[k] = nil
            if (try? stream.holdSnapshot(slot: k, vectors: kept, maxWidth: maxWidth)) != nil { holds += 1 }
        }
    }

    /// The JPEG of zone `k`'s peak frame; nil when none could be made.
    public mutating func jpeg(zone k: Int, stream: VideoStream, quality: Int) -> [UInt8]? {
        if let cached = jpegs[k] { return cached }
        guard let data = try? stream.encodeSnapshot(slot: k, quality: quality) else { return nil }
        encodes += 1
        jpegs[k] = data
        return data
    }
}

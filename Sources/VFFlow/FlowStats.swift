import Glibc

/// The per-frame statistics the worker publishes and exports to Prometheus.
///
/// The vectors they are computed from are the *reported* ones: on the fast path with the
/// reliability filter on (the default), the vectors that failed a check are not among them.
/// - `vectorCount`: how many tracked grid points moved more than the threshold
///   (magnitude `sqrt(dx² + dy²)` strictly greater than `THRESHOLD` px between two frames).
/// - `magnitudeAvg`: the mean magnitude of exactly those vectors, in px per frame; 0 when none.
/// - `magnitudeMax`: the largest magnitude among all *reliable* tracked grid points (above the
///   threshold or not), in px per frame; 0 when nothing was tracked. So it is never below
///   `magnitudeAvg`, and it still shows the residual motion of a scene where nothing passes the
///   threshold.
/// - `rejected`: vectors above the threshold that the filter dropped (set by the caller).
/// - `directions`: the above-threshold vectors by octant of their direction, in the order of
///   `FlowStats.directionNames` (image axes: `n` is up, i.e. dy < 0).
/// - `meanDX`, `meanDY`: the mean motion vector of the above-threshold vectors (px per frame).
public struct FlowStats: Sendable, Equatable {
    public var vectorCount: Int
    public var magnitudeAvg: Double
    public var magnitudeMax: Double
    public var rejected: Int
    public var directions: SIMD8<Int>
    public var meanDX: Double
    public var meanDY: Double

    /// The octants, counter-clockwise from east as seen on the screen.
    public static let directionNames = ["e", "ne", "n", "nw", "w", "sw", "s", "se"]

    public init(
        vectorCount: Int = 0, magnitudeAvg: Double = 0, magnitudeMax: Double = 0, rejected: Int = 0,
        directions: SIMD8<Int> = .zero, meanDX: Double = 0, meanDY: Double = 0
    ) {
        self.vectorCount = vectorCount
        self.magnitudeAvg = magnitudeAvg
        self.magnitudeMax = magnitudeMax
        self.rejected = rejected
        self.directions = directions
        self.meanDX = meanDX
        self.meanDY = meanDY
    }

    public static let zero = FlowStats()

    /// The octant (index into `directionNames`) of a motion (dx, dy) in image coordinates.
    public static func octant(dx: Double, dy: Double) -> Int {
        // atan2 of (-dy, dx): counter-clockwise on the screen, where y grows downwards.
        let eighths = atan2(-dy, dx) / (Double.pi / 4)
        return Int((eighths + 8.5).rounded(.down)) % 8
    }

    /// Computes the statistics of `vectors` (x, y, dx, dy quadruples) and appends the vectors
    /// above `threshold` to `kept` (which is emptied first, its storage reused).
    public static func analyse(_ vectors: UnsafeBufferPointer<Float>, threshold: Double, kept: inout [Float])
        -> FlowStats
    {
        kept.removeAll(keepingCapacity: true)
        let t2 = threshold * threshold
        var sum = 0.0
        var max2 = 0.0
        var count = 0
        var sx = 0.0
        var sy = 0.0
        var directions = SIMD8<Int>.zero
        var i = 0
        while i + 3 < vectors.count {
            let dx = Double(vectors[i + 2])
            let dy = Double(vectors[i + 3])
            let m2 = dx * dx + dy * dy
            if m2 > max2 { max2 = m2 }
            if m2 > t2 {
                count += 1
                sum += m2.squareRoot()
                sx += dx
                sy += dy
                directions[octant(dx: dx, dy: dy)] += 1
                kept.append(vectors[i])
                kept.append(vectors[i + 1])
                kept.append(vectors[i + 2])
                kept.append(vectors[i + 3])
            }
            i += 4
        }
        let n = Double(max(count, 1))
        return FlowStats(
            vectorCount: count, magnitudeAvg: count > 0 ? sum / Double(count) : 0, magnitudeMax: max2.squareRoot(),
            directions: directions, meanDX: count > 0 ? sx / n : 0, meanDY: count > 0 ? sy / n : 0)
    }

    public static func analyse(_ vectors: [Float], threshold: Double) -> (stats: FlowStats, kept: [Float]) {
        var kept: [Float] = []
        let stats = vectors.withUnsafeBufferPointer { analyse($0, threshold: threshold, kept: &kept) }
        return (stats, kept)
    }
}

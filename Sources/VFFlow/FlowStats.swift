/// The per-frame statistics the worker publishes and exports to Prometheus.
///
/// - `vectorCount`: how many tracked grid points moved more than the threshold
///   (magnitude `sqrt(dx² + dy²)` strictly greater than `THRESHOLD` px between two frames).
/// - `magnitudeAvg`: the mean magnitude of exactly those vectors, in px per frame; 0 when none.
/// - `magnitudeMax`: the largest magnitude among *all* tracked grid points (above the threshold
///   or not), in px per frame; 0 when nothing was tracked. So it is never below `magnitudeAvg`,
///   and it still shows the residual motion of a scene where nothing passes the threshold.
public struct FlowStats: Sendable, Equatable {
    public var vectorCount: Int
    public var magnitudeAvg: Double
    public var magnitudeMax: Double

    public init(vectorCount: Int = 0, magnitudeAvg: Double = 0, magnitudeMax: Double = 0) {
        self.vectorCount = vectorCount
        self.magnitudeAvg = magnitudeAvg
        self.magnitudeMax = magnitudeMax
    }

    public static let zero = FlowStats()

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
        var i = 0
        while i + 3 < vectors.count {
            let dx = Double(vectors[i + 2])
            let dy = Double(vectors[i + 3])
            let m2 = dx * dx + dy * dy
            if m2 > max2 { max2 = m2 }
            if m2 > t2 {
                count += 1
                sum += m2.squareRoot()
                kept.append(vectors[i])
                kept.append(vectors[i + 1])
                kept.append(vectors[i + 2])
                kept.append(vectors[i + 3])
            }
            i += 4
        }
        return FlowStats(
            vectorCount: count, magnitudeAvg: count > 0 ? sum / Double(count) : 0, magnitudeMax: max2.squareRoot())
    }

    public static func analyse(_ vectors: [Float], threshold: Double) -> (stats: FlowStats, kept: [Float]) {
        var kept: [Float] = []
        let stats = vectors.withUnsafeBufferPointer { analyse($0, threshold: threshold, kept: &kept) }
        return (stats, kept)
    }
}

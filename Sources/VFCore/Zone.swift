import VFText

/// A point of a zone's polygon in normalised image coordinates: (0,0) top left, (1,1) bottom right.
public struct ZonePoint: Sendable, Equatable {
    public var x: Double
    public var y: Double
    public init(x: Double, y: Double) {
        self.x = x
        self.y = y
    }
}

/// When a zone's motion counts: how many reliable vectors inside it, how fast, which way, and for
/// how long (hysteresis). The rules' limits are its constants, the only ones: the validator and
/// the OpenAPI document are built from them.
public struct ZoneRule: Sendable, Equatable {
    public var minVectors: Int
    /// Pixels per frame; nil: any speed above the stream's threshold.
    public var minMeanSpeed: Double?
    /// Degrees in image axes (0 = +x, 90 = +y, i.e. down); nil: any direction.
    public var directionDeg: Double?
    /// Degrees either side of `directionDeg`; only with a direction.
    public var directionToleranceDeg: Double?
    public var minDurationS: Double
    public var quietTimeS: Double

    public static let minVectorsRange = 1...10000
    public static let minVectorsDefault = 5
    public static let minMeanSpeedRange = 0.0...1000.0
    public static let directionRange = 0.0...360.0
    public static let toleranceRange = 0.0...180.0
    /// The tolerance a direction gets when none is sent.
    public static let toleranceDefault = 45.0
    public static let durationRange = 0.0...3600.0
    public static let minDurationDefault = 0.5
    public static let quietTimeDefault = 2.0

    public init(
        minVectors: Int = minVectorsDefault, minMeanSpeed: Double? = nil, directionDeg: Double? = nil,
        directionToleranceDeg: Double? = nil, minDurationS: Double = minDurationDefault,
        quietTimeS: Double = quietTimeDefault
    ) {
        self.minVectors = minVectors
        self.minMeanSpeed = minMeanSpeed
        self.directionDeg = directionDeg
        self.directionToleranceDeg = directionToleranceDeg
        self.minDurationS = minDurationS
        self.quietTimeS = quietTimeS
    }

    /// Writes the rule's members (`,"min_vectors":5,...`) into an open JSON object: the API's zone
    /// JSON and the worker's ZONES share this one spelling.
    public func writeMembers(to w: inout JSONWriter) {
        func key(_ f: Field) { w.raw(Array(",\"\(f.rawValue)\":".utf8)) }
        func number(_ v: Double?) {
            if let v { w.raw(Array(JSONSerializer.number(v).utf8)) } else { w.raw("null") }
        }
        key(.minVectors)
        w.int(minVectors)
        key(.minMeanSpeed)
        number(minMeanSpeed)
        key(.directionDeg)
        number(directionDeg)
        key(.directionToleranceDeg)
        number(directionToleranceDeg)
        key(.minDurationS)
        number(minDurationS)
        key(.quietTimeS)
        number(quietTimeS)
    }

    /// The members of a zone's JSON that hold the rule.
    public enum Field: String, CaseIterable, Sendable {
        case minVectors = "min_vectors"
        case minMeanSpeed = "min_mean_speed"
        case directionDeg = "direction_deg"
        case directionToleranceDeg = "direction_tolerance_deg"
        case minDurationS = "min_duration_s"
        case quietTimeS = "quiet_time_s"
    }
}

/// A zone of a stream, as stored (`stream_zones`) and as the API returns it.
public struct Zone: Sendable, Equatable {
    public var id: String
    public var streamID: String
    public var name: String
    public var polygon: [ZonePoint]
    public var rule: ZoneRule
    public var createdAt: String

    public init(id: String, streamID: String, name: String, polygon: [ZonePoint], rule: ZoneRule, createdAt: String) {
        self.id = id
        self.streamID = streamID
        self.name = name
        self.polygon = polygon
        self.rule = rule
        self.createdAt = createdAt
    }

    /// The polygon as JSON text, `[[x,y],...]` (the API's shape and the JSONB column's).
    public static func polygonJSON(_ points: [ZonePoint]) -> String {
        "[" + points.map { "[\(JSONSerializer.number($0.x)),\(JSONSerializer.number($0.y))]" }.joined(separator: ",")
            + "]"
    }

    /// Reads `polygonJSON`'s text back (as PostgreSQL prints JSONB); nil when it is not such a list.
    public static func polygon(json: String) -> [ZonePoint]? {
        guard case .array(let items)? = try? JSONParser.parse(Array(json.utf8)) else { return nil }
        var out: [ZonePoint] = []
        for item in items {
            guard case .array(let xy) = item, xy.count == 2, case .number(let x) = xy[0], case .number(let y) = xy[1]
            else { return nil }
            out.append(ZonePoint(x: x.value, y: y.value))
        }
        return out
    }

    /// Writes the zone's JSON object (the API's response shape).
    public func write(to w: inout JSONWriter) {
        w.raw("{\"id\":")
        w.string(id)
        w.raw(",\"stream_id\":")
        w.string(streamID)
        w.raw(",\"name\":")
        w.string(name)
        w.raw(",\"polygon\":")
        w.raw(Array(Self.polygonJSON(polygon).utf8))
        rule.writeMembers(to: &w)
        w.raw(",\"created_at\":")
        w.string(createdAt)
        w.raw("}")
    }

    public var json: [UInt8] {
        var w = JSONWriter(capacity: 256 + polygon.count * 24)
        write(to: &w)
        return w.bytes
    }
}

/// The rules of a zone's name and polygon, and how many zones a stream may have.
public enum ZoneRules {
    public static let nameMaxLength = 100
    public static let pointsRange = 3...64
    /// More zones than this on one stream: 409 (a state conflict, like a duplicate name: the same
    /// body may succeed once a zone is deleted).
    public static let maxZonesPerStream = 64

    /// The polygon's edges cross (adjacent edges sharing their vertex excepted): a bow-tie.
    /// O(n²) segment tests, fine for `pointsRange`.
    public static func isSelfIntersecting(_ p: [ZonePoint]) -> Bool {
        let n = p.count
        guard n >= 4 else { return false }
        for i in 0..<n {
            let a = p[i]
            let b = p[(i + 1) % n]
            for j in (i + 1)..<n {
                // Adjacent edges share a vertex; that is not a crossing.
                if j == i + 1 || (i == 0 && j == n - 1) { continue }
                if segmentsIntersect(a, b, p[j], p[(j + 1) % n]) { return true }
            }
        }
        return false
    }

    /// Twice the signed area (shoelace).
    public static func doubleArea(_ p: [ZonePoint]) -> Double {
        var s = 0.0
        for i in p.indices {
            let a = p[i]
            let b = p[(i + 1) % p.count]
            s += a.x * b.y - b.x * a.y
        }
        return s
    }

    static func segmentsIntersect(_ p1: ZonePoint, _ p2: ZonePoint, _ p3: ZonePoint, _ p4: ZonePoint) -> Bool {
        func cross(_ o: ZonePoint, _ a: ZonePoint, _ b: ZonePoint) -> Double {
            (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x)
        }
        func onSegment(_ a: ZonePoint, _ b: ZonePoint, _ c: ZonePoint) -> Bool {
            min(a.x, b.x) <= c.x && c.x <= max(a.x, b.x) && min(a.y, b.y) <= c.y && c.y <= max(a.y, b.y)
        }
        let d1 = cross(p3, p4, p1)
        let d2 = cross(p3, p4, p2)
        let d3 = cross(p1, p2, p3)
        let d4 = cross(p1, p2, p4)
        if ((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0)) { return true }
        // Touching or collinear overlap counts too: such an outline has no well-defined inside.
        if d1 == 0 && onSegment(p3, p4, p1) { return true }
        if d2 == 0 && onSegment(p3, p4, p2) { return true }
        if d3 == 0 && onSegment(p1, p2, p3) { return true }
        if d4 == 0 && onSegment(p1, p2, p4) { return true }
        return false
    }
}

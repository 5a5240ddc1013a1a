import VFText

/// The worker's zones in its environment: `ZONES`, compact JSON written by the runtimes (from
/// WorkerSpec) and read by the worker's settings, the one codec of that variable.
///
/// `[{"id":…,"name":…,"polygon":[[x,y],…],"min_vectors":…,"min_mean_speed":…|null,
/// "direction_deg":…|null,"direction_tolerance_deg":…|null,"min_duration_s":…,"quiet_time_s":…},…]`
/// with the rule's members spelled by `ZoneRule.Field`. Coordinates are written with 6 decimals
/// (a millionth of the frame, far below a pixel) so that the largest allowed set, 64 zones of
/// 64 points with names of 100 four-byte characters, stays under `maxBytes`: Linux refuses an
/// environment string over 128 KiB.
public enum ZoneEnvironment {
    public static let variable = "ZONES"
    /// The bound `encode` keeps to (Linux's MAX_ARG_STRLEN is 131072 bytes, name and `=` included).
    public static let maxBytes = 128 * 1024 - 64
    static let decimals = 6

    public static let declarations: [Setting] = [
        .string(
            variable, nil, shown: "none",
            "the stream's zones as compact JSON (the runtimes write it from the zones of the API)")
    ]

    /// The variable's text; "" for no zones (the runtimes then leave the variable out).
    public static func encode(_ zones: [Zone]) -> String {
        guard !zones.isEmpty else { return "" }
        var w = JSONWriter(capacity: 256 * zones.count)
        w.raw("[")
        for (i, z) in zones.enumerated() {
            if i > 0 { w.raw(",") }
            write(z, to: &w)
        }
        w.raw("]")
        return String(decoding: w.bytes, as: UTF8.self)
    }

    private static func write(_ z: Zone, to w: inout JSONWriter) {
        w.raw("{\"id\":")
        w.string(z.id)
        w.raw(",\"name\":")
        w.string(z.name)
        w.raw(",\"polygon\":[")
        for (i, p) in z.polygon.enumerated() {
            w.raw(i == 0 ? "[" : ",[")
            w.number(p.x, decimals: decimals)
            w.raw(",")
            w.number(p.y, decimals: decimals)
            w.raw("]")
        }
        w.raw("]")
        z.rule.writeMembers(to: &w)
        w.raw("}")
    }

    /// Reads `encode`'s text back (the zones' `streamID` is the given one, `createdAt` empty).
    /// An empty text is no zones; anything else that is not such a list is a configuration error.
    public static func decode(_ text: String, streamID: String = "") throws(ConfigurationError) -> [Zone] {
        if text.allSatisfy({ $0 == " " || $0 == "\n" }) { return [] }
        func bad(_ why: String) -> ConfigurationError { ConfigurationError("\(variable) is not a zone list: \(why)") }
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(Array(text.utf8))
        } catch {
            throw bad("invalid JSON at byte \(error.offset) (\(error.reason))")
        }
        guard case .array(let items) = parsed else { throw bad("not a JSON array") }
        var zones: [Zone] = []
        zones.reserveCapacity(items.count)
        for (n, item) in items.enumerated() {
            func number(_ k: String) throws(ConfigurationError) -> Double? {
                switch item[k] {
                case .number(let v)?: return v.value
                case .null?, nil: return nil
                default: throw bad("zone \(n + 1): \(k) must be a number")
                }
            }
            guard case .string(let id)? = item["id"], !id.isEmpty else { throw bad("zone \(n + 1): no id") }
            guard case .string(let name)? = item["name"] else { throw bad("zone \(n + 1): no name") }
            guard case .array(let pts)? = item["polygon"] else { throw bad("zone \(n + 1): no polygon") }
            var polygon: [ZonePoint] = []
            for p in pts {
                guard case .array(let xy) = p, xy.count == 2, case .number(let x) = xy[0], case .number(let y) = xy[1]
                else { throw bad("zone \(n + 1): a polygon point is not [x,y]") }
                polygon.append(ZonePoint(x: x.value, y: y.value))
            }
            guard polygon.count >= 3 else { throw bad("zone \(n + 1): a polygon needs 3 points") }
            let field = ZoneRule.Field.self
            let d = ZoneRule()
            let minVectors = try number(field.minVectors.rawValue).map { Int($0) } ?? d.minVectors
            let rule = ZoneRule(
                minVectors: max(1, minVectors), minMeanSpeed: try number(field.minMeanSpeed.rawValue),
                directionDeg: try number(field.directionDeg.rawValue),
                directionToleranceDeg: try number(field.directionToleranceDeg.rawValue),
                minDurationS: try number(field.minDurationS.rawValue) ?? d.minDurationS,
                quietTimeS: try number(field.quietTimeS.rawValue) ?? d.quietTimeS)
            zones.append(Zone(id: id, streamID: streamID, name: name, polygon: polygon, rule: rule, createdAt: ""))
        }
        return zones
    }

    /// The worker's zones: `ZONES` (declared in `declarations`), none when it is unset.
    public static func zones(_ c: ConfigurationSource, streamID: String) throws(ConfigurationError) -> [Zone] {
        guard let text = c.raw(variable) else { return [] }
        return try decode(text, streamID: streamID)
    }
}

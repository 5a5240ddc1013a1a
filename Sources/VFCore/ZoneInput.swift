/// The writable fields of a zone as a request body carries them. For a create every field is
/// set (defaults filled in); for an update only the ones sent. The nullable rule fields are
/// `Double??`: `.some(nil)` is an explicit `null` (clear it), `nil` absent (keep it).
public struct ZoneFields: Sendable, Equatable {
    public var name: String?
    public var polygon: [ZonePoint]?
    public var minVectors: Int?
    public var minMeanSpeed: Double??
    public var directionDeg: Double??
    public var directionToleranceDeg: Double??
    public var minDurationS: Double?
    public var quietTimeS: Double?

    public init() {}

    /// The zone these fields give over `base` (an update's stored zone), before `ZoneValidator.check`.
    public func applied(to base: Zone) -> Zone {
        var z = base
        if let name { z.name = name }
        if let polygon { z.polygon = polygon }
        if let minVectors { z.rule.minVectors = minVectors }
        if let v = minMeanSpeed { z.rule.minMeanSpeed = v }
        if let v = directionDeg {
            z.rule.directionDeg = v
            // Clearing the direction clears its tolerance (unless one is sent, which `check` refuses).
            if v == nil, directionToleranceDeg == nil { z.rule.directionToleranceDeg = nil }
        }
        if let v = directionToleranceDeg { z.rule.directionToleranceDeg = v }
        if z.rule.directionDeg != nil, z.rule.directionToleranceDeg == nil {
            z.rule.directionToleranceDeg = ZoneRule.toleranceDefault
        }
        if let minDurationS { z.rule.minDurationS = minDurationS }
        if let quietTimeS { z.rule.quietTimeS = quietTimeS }
        return z
    }
}

/// Turns a zone's request body into `ZoneFields` with pydantic-shaped issues, in two steps: the
/// shape (`validate`: what the OpenAPI schema describes, generated from the same constants) and
/// the geometry and cross-field rules of the whole zone (`check`: what a schema cannot say:
/// a polygon that crosses itself or has no area, a tolerance without a direction).
public enum ZoneValidator {
    public typealias Mode = StreamValidator.Mode

    public static let knownKeys: Set<String> = Set(["name", "polygon"] + ZoneRule.Field.allCases.map(\.rawValue))

    public static func validate(_ body: [UInt8], contentType: String?, mode: Mode) -> Result<ZoneFields, APIError> {
        switch StreamValidator.decodeObject(body, contentType: contentType) {
        case .failure(let e): return .failure(e)
        case .success(let members): return validate(members: members, mode: mode)
        }
    }

    public static func validate(members: [(String, JSONValue)], mode: Mode) -> Result<ZoneFields, APIError> {
        var issues = StreamValidator.Issues()
        var seen: [String: JSONValue] = [:]
        for (k, v) in members { seen[k] = v }
        let create = mode == .create
        var f = ZoneFields()
        if let v = seen["name"] {
            f.name = name(v, &issues)
        } else if create {
            issues.add("name", "missing", "Field required")
        }
        if let v = seen["polygon"] {
            f.polygon = polygon(v, &issues)
        } else if create {
            issues.add("polygon", "missing", "Field required")
        }
        typealias F = ZoneRule.Field
        if let v = seen[F.minVectors.rawValue] {
            f.minVectors = integer(v, F.minVectors.rawValue, ZoneRule.minVectorsRange, &issues)
        } else if create {
            f.minVectors = ZoneRule.minVectorsDefault
        }
        f.minMeanSpeed = nullable(seen, F.minMeanSpeed.rawValue, ZoneRule.minMeanSpeedRange, &issues, create)
        f.directionDeg = nullable(seen, F.directionDeg.rawValue, ZoneRule.directionRange, &issues, create)
        f.directionToleranceDeg = nullable(
            seen, F.directionToleranceDeg.rawValue, ZoneRule.toleranceRange, &issues, create)
        if let v = seen[F.minDurationS.rawValue] {
            f.minDurationS = number(v, F.minDurationS.rawValue, ZoneRule.durationRange, &issues)
        } else if create {
            f.minDurationS = ZoneRule.minDurationDefault
        }
        if let v = seen[F.quietTimeS.rawValue] {
            f.quietTimeS = number(v, F.quietTimeS.rawValue, ZoneRule.durationRange, &issues)
        } else if create {
            f.quietTimeS = ZoneRule.quietTimeDefault
        }
        for (k, _) in members where !knownKeys.contains(k) {
            if issues.list.count >= StreamValidator.maxReportedIssues { break }
            issues.add(k, "extra_forbidden", "Extra inputs are not permitted")
        }
        return issues.list.isEmpty
            ? .success(f) : .failure(APIError(issues: Array(issues.list.prefix(StreamValidator.maxReportedIssues))))
    }

    /// The rules of a whole zone (a create's, or an update's result): nil when it is valid.
    /// `fields`: what the body sent, so an issue points at the member that caused it.
    public static func check(_ z: Zone, sent fields: ZoneFields) -> APIError? {
        var issues = StreamValidator.Issues()
        if fields.polygon != nil {
            if ZoneRules.isSelfIntersecting(z.polygon) {
                issues.add(
                    "polygon", "value_error", "Value error, the polygon must not intersect itself",
                    .object([("error", .string("self-intersecting polygon"))]))
            } else if ZoneRules.doubleArea(z.polygon) == 0 {
                issues.add(
                    "polygon", "value_error", "Value error, the polygon must have a non-zero area",
                    .object([("error", .string("zero-area polygon"))]))
            }
        }
        if z.rule.directionDeg == nil, z.rule.directionToleranceDeg != nil {
            issues.add(
                ZoneRule.Field.directionToleranceDeg.rawValue, "value_error",
                "Value error, a direction tolerance needs a direction (\(ZoneRule.Field.directionDeg.rawValue))",
                .object([("error", .string("tolerance without direction"))]))
        }
        return issues.list.isEmpty ? nil : APIError(issues: issues.list)
    }

    private static func name(_ v: JSONValue, _ issues: inout StreamValidator.Issues) -> String? {
        StreamValidator.text(v, "name", maxLength: ZoneRules.nameMaxLength, &issues)
    }

    private static func polygon(_ v: JSONValue, _ issues: inout StreamValidator.Issues) -> [ZonePoint]? {
        guard case .array(let items) = v else {
            issues.add("polygon", "list_type", "Input should be a valid list")
            return nil
        }
        let r = ZoneRules.pointsRange
        if items.count < r.lowerBound {
            issues.add(
                "polygon", "too_short",
                "List should have at least \(r.lowerBound) items after validation, not \(items.count)",
                .object([
                    ("field_type", .string("List")), ("min_length", .int(r.lowerBound)),
                    ("actual_length", .int(items.count)),
                ]))
            return nil
        }
        if items.count > r.upperBound {
            issues.add(
                "polygon", "too_long",
                "List should have at most \(r.upperBound) items after validation, not \(items.count)",
                .object([
                    ("field_type", .string("List")), ("max_length", .int(r.upperBound)),
                    ("actual_length", .int(items.count)),
                ]))
            return nil
        }
        var points: [ZonePoint] = []
        var ok = true
        for (k, item) in items.enumerated() {
            func add(_ loc: [LocPart], _ type: String, _ msg: String, _ ctx: JSONValue? = nil) {
                ok = false
                if issues.list.count < StreamValidator.maxReportedIssues {
                    issues.list.append(
                        ValidationIssue(
                            type: type, loc: [.key("body"), .key("polygon"), .index(k)] + loc, msg: msg, ctx: ctx))
                }
            }
            guard case .array(let xy) = item else {
                add([], "list_type", "Input should be a valid list")
                continue
            }
            guard xy.count == 2 else {
                add(
                    [], xy.count < 2 ? "too_short" : "too_long",
                    "Point should be [x, y] with 2 items, not \(xy.count)")
                continue
            }
            var c: [Double] = []
            for (j, value) in xy.enumerated() {
                guard case .number(let n) = value else {
                    add([.index(j)], "float_type", "Input should be a valid number")
                    continue
                }
                if !n.value.isFinite {
                    add([.index(j)], "finite_number", "Input should be a finite number")
                } else if n.value < 0 {
                    add(
                        [.index(j)], "greater_than_equal", "Input should be greater than or equal to 0",
                        .object([("ge", .int(0))]))
                } else if n.value > 1 {
                    add(
                        [.index(j)], "less_than_equal", "Input should be less than or equal to 1",
                        .object([("le", .int(1))]))
                } else {
                    c.append(n.value == 0 ? 0 : n.value)
                }
            }
            if c.count == 2 { points.append(ZonePoint(x: c[0], y: c[1])) }
        }
        return ok ? points : nil
    }

    private static func integer(
        _ v: JSONValue, _ field: String, _ r: ClosedRange<Int>, _ issues: inout StreamValidator.Issues
    ) -> Int? {
        StreamValidator.integer(v, field, in: r, &issues)
    }

    private static func number(
        _ v: JSONValue, _ field: String, _ r: ClosedRange<Double>, _ issues: inout StreamValidator.Issues
    ) -> Double? {
        StreamValidator.number(v, field, in: r, &issues)
    }

    /// A nullable number: absent → nil (a create: `.some(nil)`, none), `null` → `.some(nil)`.
    private static func nullable(
        _ seen: [String: JSONValue], _ field: String, _ r: ClosedRange<Double>, _ issues: inout StreamValidator.Issues,
        _ create: Bool
    ) -> Double?? {
        guard let v = seen[field] else { return create ? .some(nil) : nil }
        if case .null = v { return .some(nil) }
        guard let d = number(v, field, r, &issues) else { return nil }
        return .some(d)
    }
}

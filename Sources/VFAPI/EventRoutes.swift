import Foundation
import VFCore
import VFNet
import VFStore
import VFText

/// The motion events' routes: GET /events (filters, keyset pages), GET /events/{id} (with its
/// webhook deliveries), GET /events/{id}/snapshot.jpg. Queries run on the database pool.
enum EventRoutes {
    static let limitRange = 1...500
    static let limitDefault = 50
    /// The largest unix time `since`/`until` accept: the end of year 9999 (PostgreSQL's range).
    static let maxUnixSeconds = 253_402_300_799.0
    static let zoneMaxLength = 255

    /// The query string of GET /events as an `EventQuery`, or every problem in FastAPI's shape.
    static func query(_ q: [String: String]) -> Result<EventQuery, APIError> {
        var out = EventQuery()
        var issues: [ValidationIssue] = []
        func loc(_ name: String) -> [LocPart] { [.key("query"), .key(name)] }
        if let raw = q["stream_id"] {
            if let id = UUIDText.canonical(raw) {
                out.streamID = id
            } else {
                issues.append(
                    ValidationIssue(
                        type: "uuid_parsing", loc: loc("stream_id"),
                        msg:
                            "Input should be a valid UUID, invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-]"
                    ))
            }
        }
        if let raw = q["zone"] {
            if raw.isEmpty {
                issues.append(
                    ValidationIssue(
                        type: "string_too_short", loc: loc("zone"), msg: "String should have at least 1 character",
                        ctx: .object([("min_length", .int(1))])))
            } else if raw.count > zoneMaxLength {
                issues.append(
                    ValidationIssue(
                        type: "string_too_long", loc: loc("zone"),
                        msg: "String should have at most \(zoneMaxLength) characters",
                        ctx: .object([("max_length", .int(zoneMaxLength))])))
            } else {
                out.zone = UUIDText.canonical(raw) ?? raw
            }
        }
        for name in ["since", "until"] {
            guard let raw = q[name] else { continue }
            if let t = time(raw) {
                if name == "since" { out.since = t } else { out.until = t }
            } else {
                issues.append(
                    ValidationIssue(
                        type: "datetime_parsing", loc: loc(name),
                        msg:
                            "Input should be an ISO 8601 date-time with a time zone, or unix seconds (0-\(Int(maxUnixSeconds)))"
                    ))
            }
        }
        if let raw = q["limit"] {
            if let n = Int(raw) {
                if n < limitRange.lowerBound {
                    issues.append(
                        ValidationIssue(
                            type: "greater_than_equal", loc: loc("limit"),
                            msg: "Input should be greater than or equal to \(limitRange.lowerBound)",
                            ctx: .object([("ge", .int(limitRange.lowerBound))])))
                } else if n > limitRange.upperBound {
                    issues.append(
                        ValidationIssue(
                            type: "less_than_equal", loc: loc("limit"),
                            msg: "Input should be less than or equal to \(limitRange.upperBound)",
                            ctx: .object([("le", .int(limitRange.upperBound))])))
                } else {
                    out.limit = n
                }
            } else {
                issues.append(
                    ValidationIssue(
                        type: "int_parsing", loc: loc("limit"),
                        msg: "Input should be a valid integer, unable to parse string as an integer"))
            }
        }
        if let raw = q["cursor"] {
            if let c = EventCursor(token: raw) {
                out.cursor = c
            } else {
                issues.append(
                    ValidationIssue(
                        type: "value_error", loc: loc("cursor"),
                        msg: "Value error, not a cursor of this API (use next_cursor of a previous page)"))
            }
        }
        return issues.isEmpty ? .success(out) : .failure(APIError(issues: issues))
    }

    /// Unix seconds (0 up to the end of 9999), or an RFC 3339 date-time with its zone
    /// (`2026-12-03T14:05:06Z`, `...06.5+01:00`); nil otherwise.
    static func time(_ s: String) -> Double? {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= 64 else { return nil }
        if u.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: ".") }) {
            guard let v = Double(s), v.isFinite, v >= 0, v <= maxUnixSeconds else { return nil }
            return v
        }
        var k = 0
        func digits(_ n: Int) -> Int? {
            guard k + n <= u.count else { return nil }
            var v = 0
            for c in u[k..<(k + n)] {
                guard c >= 0x30 && c <= 0x39 else { return nil }
                v = v * 10 + Int(c - 0x30)
            }
            k += n
            return v
        }
        func expect(_ chars: String) -> Bool {
            guard k < u.count, chars.utf8.contains(u[k]) else { return false }
            k += 1
            return true
        }
        guard let year = digits(4), expect("-"), let month = digits(2), expect("-"), let day = digits(2),
            expect("Tt "), let hour = digits(2), expect(":"), let minute = digits(2), expect(":"),
            let second = digits(2)
        else { return nil }
        guard (1...12).contains(month), (1...31).contains(day), hour <= 23, minute <= 59, second <= 60 else {
            return nil
        }
        var fraction = 0.0
        if k < u.count && u[k] == UInt8(ascii: ".") {
            k += 1
            var scale = 0.1
            let start = k
            while k < u.count && u[k] >= 0x30 && u[k] <= 0x39 {
                fraction += Double(u[k] - 0x30) * scale
                scale /= 10
                k += 1
            }
            guard k > start else { return nil }
        }
        var offset = 0
        if expect("Zz") {
        } else if k < u.count && (u[k] == UInt8(ascii: "+") || u[k] == UInt8(ascii: "-")) {
            let sign = u[k] == UInt8(ascii: "-") ? -1 : 1
            k += 1
            guard let oh = digits(2), expect(":"), let om = digits(2), oh <= 23, om <= 59 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return nil
        }
        guard k == u.count else { return nil }
        // Days since 1970 (proleptic Gregorian; Howard Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let t = Double(days * 86400 + hour * 3600 + minute * 60 + second - offset) + fraction
        guard t <= maxUnixSeconds, t >= -62_135_596_800 else { return nil }  // years 1 to 9999
        return t
    }

    static func listAnswer(_ events: [StoredEvent], next: EventCursor?) -> HTTPResponse {
        var w = JSONWriter(capacity: events.count * 640 + 64)
        w.raw("{\"events\":[")
        for (k, e) in events.enumerated() {
            if k > 0 { w.raw(",") }
            e.write(to: &w)
        }
        w.raw("],\"next_cursor\":")
        if let next { w.string(next.token) } else { w.raw("null") }
        w.raw("}")
        return .json(raw: w.bytes)
    }

    static func eventAnswer(_ e: StoredEvent, deliveries: [EventDelivery]) -> HTTPResponse {
        var w = JSONWriter(capacity: 640 + deliveries.count * 256)
        e.write(to: &w)
        w.bytes.removeLast()  // the event's closing brace: its deliveries go inside
        w.raw(",\"deliveries\":[")
        for (k, d) in deliveries.enumerated() {
            if k > 0 { w.raw(",") }
            d.write(to: &w)
        }
        w.raw("]}")
        return .json(raw: w.bytes)
    }

    static let eventNotFound = APIError(status: 404, detail: "Event not found")
    static let snapshotNotFound = APIError(status: 404, detail: "Snapshot not found")
}

extension DatabaseError {
    /// The API's answer for a failed query.
    var apiError: APIError {
        switch self {
        case .unavailable: return .databaseUnavailable
        case .timeout: return .databaseTimeout
        case .query: return .internalError
        }
    }
}

import Foundation
import VFText

/// The writable fields of a camera stream, as a request body carries them: a partial
/// `StreamSettings` with the name and the desired state. For a create every field is set
/// (defaults filled in, see `settings`); for an update only the ones sent.
public struct StreamFields: Sendable, Equatable {
    public var name: String?
    public var source: String?
    public var gridSize: Int?
    public var threshold: Double?
    public var isActive: Bool?

    public init(
        name: String? = nil, source: String? = nil, gridSize: Int? = nil, threshold: Double? = nil,
        isActive: Bool? = nil
    ) {
        self.name = name
        self.source = source
        self.gridSize = gridSize
        self.threshold = threshold
        self.isActive = isActive
    }

    public var isEmpty: Bool { name == nil && source == nil && gridSize == nil && threshold == nil && isActive == nil }

    /// The settings these fields give over `base` (a create's: the defaults; an update's: the stored).
    public func settings(over base: StreamSettings) -> StreamSettings {
        StreamSettings(
            source: source ?? base.source, gridSize: gridSize ?? base.gridSize, threshold: threshold ?? base.threshold)
    }
}

/// The rules a stream's name and URL obey (the numbers' are StreamSettings'). The OpenAPI document is generated from the same constants and
/// patterns, and `StreamValidator` accepts exactly what those patterns describe, so that the schema
/// is an exact contract (schemathesis checks both directions).
public enum StreamRules {
    public static let nameMaxLength = 200
    public static let urlMaxLength = 2048
    public static let networkSchemes = ["rtsp", "rtsps", "http", "https"]
    /// PostgreSQL text cannot hold NUL; everything else is a valid name.
    public static let namePattern = "^[^\\x00]*$"

    /// An IPv6 literal without zone: eight groups, or one "::" standing for the missing ones.
    static let ipv6Pattern: String = {
        let h = "[0-9A-Fa-f]{1,4}"
        return [
            "(\(h):){7}\(h)", "(\(h):){1,7}:", "(\(h):){1,6}:\(h)", "(\(h):){1,5}(:\(h)){1,2}",
            "(\(h):){1,4}(:\(h)){1,3}", "(\(h):){1,3}(:\(h)){1,4}", "(\(h):){1,2}(:\(h)){1,5}",
            "\(h):(:\(h)){1,6}", ":((:\(h)){1,7}|:)",
        ].joined(separator: "|")
    }()

    /// The containers a `file://` source may be (by its name's extension, any case): video only,
    /// so a text file cannot be rendered into frames by a demuxer that reads anything.
    public static let videoExtensions = [
        "mp4", "m4v", "mov", "avi", "mkv", "webm", "ts", "mpg", "mpeg", "mjpeg", "mjpg", "flv", "wmv", "h264", "264",
    ]

    /// ECMA-262 (and Python) regular expression for `rtsp_url`, mirrored by `isValidURL`.
    /// `mediaDirectory`: where `file://` sources may lie (nil: no file sources).
    public static func urlPattern(mediaDirectory: String?) -> String {
        let visible = "[^\\x00-\\x20\\x7f"
        let net =
            "(rtsp|rtsps|http|https)://(\(visible)/?#@\\[\\]]*@)?"
            + "(\(visible)/?#@:\\[\\]]+|\\[(\(ipv6Pattern))\\])(:[0-9]{1,5})?([/?#]\(visible)]*)?"
        if let dir = mediaDirectory { return "^(\(net)|\(filePattern(mediaDirectory: dir)))$" }
        return "^\(net)$"
    }

    /// `file://` + an absolute path inside `mediaDirectory`, without `.` or `..` segments (so it
    /// cannot climb out), ending in a video extension. No lookarounds: schema-driven test
    /// generators (hypothesis) must be able to produce matching strings.
    static func filePattern(mediaDirectory dir: String) -> String {
        let c = "[^/\\x00-\\x1f\\x7f]"
        let notDot = "[^/.\\x00-\\x1f\\x7f]"
        let segment = "(\(notDot)\(c)*|\\.\(notDot)\(c)*|\\.\\.\(c)+)"
        let ext = videoExtensions.map { e in
            e.map { ch in ch.isLetter ? "[\(ch)\(ch.uppercased())]" : String(ch) }.joined()
        }.joined(separator: "|")
        return "file://\(regexEscape(mediaPrefix(dir)))(/\(segment))*/\(c)*\\.(\(ext))"
    }

    /// The media folder as the paths start: no trailing slash, "" for the root.
    static func mediaPrefix(_ dir: String) -> String {
        var d = dir
        while d.hasSuffix("/") { d.removeLast() }
        return d
    }

    private static func regexEscape(_ s: String) -> String {
        var out = ""
        for ch in s {
            if "\\^$.|?*+()[]{}".contains(ch) { out.append("\\") }
            out.append(ch)
        }
        return out
    }

    /// Whether `dir` can serve as the media folder: absolute, without `.`/`..` segments or
    /// control characters.
    public static func isValidMediaDirectory(_ dir: String) -> Bool {
        guard dir.hasPrefix("/") else { return false }
        if dir.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return false }
        return !dir.split(separator: "/").contains { $0 == "." || $0 == ".." }
    }

    /// Accepts exactly the strings `urlPattern(mediaDirectory:)` matches (as a full match).
    public static func isValidURL(_ s: String, mediaDirectory: String?) -> Bool {
        let u = Array(s.unicodeScalars)
        guard let sep = findSeparator(u) else { return false }
        let scheme = String(String.UnicodeScalarView(u[0..<sep]))
        var i = sep + 3
        if scheme == "file" {
            guard let dir = mediaDirectory else { return false }
            return isValidFilePath(String(String.UnicodeScalarView(u[i...])), mediaDirectory: dir)
        }
        guard networkSchemes.contains(scheme) else { return false }
        func visible(_ c: Unicode.Scalar) -> Bool { c.value > 0x20 && c.value != 0x7F }
        // Authority: up to the first of / ? #.
        var end = i
        while end < u.count, u[end] != "/", u[end] != "?", u[end] != "#" {
            guard visible(u[end]) else { return false }
            end += 1
        }
        guard u[end...].allSatisfy(visible) else { return false }
        var auth = Array(u[i..<end])
        let ats = auth.indices.filter { auth[$0] == "@" }
        if ats.count > 1 { return false }
        if let at = ats.first {
            // Brackets belong to IPv6 literals only (URL parsers reject them elsewhere).
            if auth[..<at].contains(where: { $0 == "[" || $0 == "]" }) { return false }
            auth = Array(auth[(at + 1)...])
        }
        i = 0
        if auth.first == "[" {
            guard let close = auth.firstIndex(of: "]"), isIPv6(auth[1..<close]) else { return false }
            i = close + 1
        } else {
            while i < auth.count, auth[i] != ":" {
                if auth[i] == "[" || auth[i] == "]" { return false }
                i += 1
            }
            guard i > 0 else { return false }
        }
        if i == auth.count { return true }
        guard auth[i] == ":" else { return false }
        let port = auth[(i + 1)...]
        return (1...5).contains(port.count) && port.allSatisfy { $0.value >= 0x30 && $0.value <= 0x39 }
    }

    /// Mirrors `filePattern`: the path after `file://`, scalar by scalar as a regex sees it.
    static func isValidFilePath(_ path: String, mediaDirectory dir: String) -> Bool {
        let prefix = Array((mediaPrefix(dir) + "/").unicodeScalars)
        let u = Array(path.unicodeScalars)
        guard u.count > prefix.count, Array(u[0..<prefix.count]) == prefix else { return false }
        if u.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return false }
        let segments = u[prefix.count...].split(separator: "/", omittingEmptySubsequences: false)
        guard let last = segments.last else { return false }
        for seg in segments.dropLast() {
            if seg.isEmpty || Array(seg) == ["."] || Array(seg) == [".", "."] { return false }
        }
        guard let dot = last.lastIndex(of: ".") else { return false }
        let ext = String(String.UnicodeScalarView(last[(dot + 1)...]))
        guard ext.unicodeScalars.allSatisfy(\.isASCII) else { return false }
        return videoExtensions.contains(ext.lowercased())
    }

    /// Mirrors `ipv6Pattern`: 8 groups of 1–4 hex digits, or one "::" with at most 7 groups around it.
    static func isIPv6(_ s: ArraySlice<Unicode.Scalar>) -> Bool {
        let text = String(String.UnicodeScalarView(s))
        func groups(_ part: Substring) -> Int? {
            if part.isEmpty { return 0 }
            var n = 0
            for g in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(g.unicodeScalars.count),
                    g.unicodeScalars.allSatisfy({ $0.properties.isASCIIHexDigit })
                else { return nil }
                n += 1
            }
            return n
        }
        let halves = text.components(separatedBy: "::")
        if halves.count == 1 { return groups(Substring(text)) == 8 }
        guard halves.count == 2, let l = groups(Substring(halves[0])), let r = groups(Substring(halves[1])) else {
            return false
        }
        return l + r <= 7
    }

    private static func findSeparator(_ u: [Unicode.Scalar]) -> Int? {
        // Schemes are short; look only at the first few characters.
        let limit = min(u.count - 2, 6)
        guard limit > 0 else { return nil }
        for k in 1..<limit where u[k] == ":" && u[k + 1] == "/" && u[k + 2] == "/" { return k }
        return nil
    }
}

/// Turns a request body into `StreamFields`, reporting every problem at once as pydantic does,
/// with pydantic's error types (`missing`, `extra_forbidden`, `string_type`, `int_from_float`, ...).
public struct StreamValidator: Sendable {
    /// Where `file://` sources may lie (`VF_MEDIA_DIR`); nil: no file sources.
    public let mediaDirectory: String?
    public var allowFileSources: Bool { mediaDirectory != nil }

    public init(mediaDirectory: String?) { self.mediaDirectory = mediaDirectory }

    public enum Mode: Sendable { case create, update }

    /// A 422 answer lists at most this many problems: a body of a million unknown keys must not
    /// turn into a ten-megabyte answer (pydantic lists them all; clients read the first ones).
    public static let maxReportedIssues = 20

    /// Checks the media type and parses the body as a JSON object.
    /// A missing Content-Type is read as JSON (FastAPI does the same).
    public static func decodeObject(_ body: [UInt8], contentType: String?) -> Result<[(String, JSONValue)], APIError> {
        if let ct = contentType {
            let media = ct.split(separator: ";", maxSplits: 1).first.map { $0.trimmingSpaces.lowercased() } ?? ""
            guard media == "application/json" else { return .failure(.unsupportedMediaType) }
        }
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            return .failure(
                APIError(issues: [ValidationIssue(type: "missing", loc: [.key("body")], msg: "Field required")]))
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch {
            return .failure(
                APIError(issues: [
                    ValidationIssue(
                        type: "json_invalid", loc: [.key("body"), .index(error.offset)], msg: "JSON decode error",
                        ctx: .object([("error", .string(error.reason))]))
                ]))
        }
        guard case .object(let members) = value else {
            return .failure(
                APIError(issues: [
                    ValidationIssue(
                        type: "model_attributes_type", loc: [.key("body")],
                        msg: "Input should be a valid dictionary or object to extract fields from")
                ]))
        }
        return .success(members)
    }

    public func validate(_ body: [UInt8], contentType: String?, mode: Mode) -> Result<StreamFields, APIError> {
        switch Self.decodeObject(body, contentType: contentType) {
        case .failure(let e): return .failure(e)
        case .success(let members): return validate(members: members, mode: mode)
        }
    }

    public func validate(members: [(String, JSONValue)], mode: Mode) -> Result<StreamFields, APIError> {
        var issues = Issues()
        var seen: [String: JSONValue] = [:]
        for (k, v) in members { seen[k] = v }
        let create = mode == .create
        let url = StreamSettings.Field.source.rawValue
        let grid = StreamSettings.Field.gridSize.rawValue
        let threshold = StreamSettings.Field.threshold.rawValue
        var f = StreamFields()
        f.name = field("name", seen, &issues, missing: create ? .required : .absent, Self.name)
        f.source = field(url, seen, &issues, missing: create ? .required : .absent, source)
        f.gridSize = field(grid, seen, &issues, missing: create ? .value(StreamSettings.gridSizeDefault) : .absent, Self.gridSize)
        f.threshold = field(
            threshold, seen, &issues, missing: create ? .value(StreamSettings.thresholdDefault) : .absent, Self.threshold)
        f.isActive = field("is_active", seen, &issues, missing: create ? .value(false) : .absent, Self.isActive)
        let known = Set(["name", "is_active"] + StreamSettings.Field.allCases.map(\.rawValue))
        for (k, _) in members where !known.contains(k) {
            if issues.list.count >= Self.maxReportedIssues { break }
            issues.add(k, "extra_forbidden", "Extra inputs are not permitted")
        }
        return issues.list.isEmpty
            ? .success(f) : .failure(APIError(issues: Array(issues.list.prefix(Self.maxReportedIssues))))
    }

    /// The problems found so far, in pydantic's shape.
    struct Issues {
        var list: [ValidationIssue] = []
        mutating func add(_ field: String, _ type: String, _ msg: String, _ ctx: JSONValue? = nil) {
            list.append(ValidationIssue(type: type, loc: [.key("body"), .key(field)], msg: msg, ctx: ctx))
        }
    }

    /// What an absent field means: an error (a create's required fields), its default (a create's
    /// other fields), or nothing (an update).
    enum Missing<T> {
        case required, value(T), absent
    }

    /// One field: absent → `missing`; present → `check`, which returns the value or records why not.
    private func field<T>(
        _ name: String, _ seen: [String: JSONValue], _ issues: inout Issues, missing: Missing<T>,
        _ check: (JSONValue, String, inout Issues) -> T?
    ) -> T? {
        guard let v = seen[name] else {
            switch missing {
            case .required:
                issues.add(name, "missing", "Field required")
                return nil
            case .value(let d): return d
            case .absent: return nil
            }
        }
        return check(v, name, &issues)
    }

    private static func name(_ v: JSONValue, _ field: String, _ issues: inout Issues) -> String? {
        text(v, field, maxLength: StreamRules.nameMaxLength, &issues)
    }

    /// A string of 1...`maxLength` scalars without NUL (PostgreSQL text cannot hold it): the
    /// names of streams and zones.
    static func text(_ v: JSONValue, _ field: String, maxLength: Int, _ issues: inout Issues) -> String? {
        guard case .string(let s) = v else {
            issues.add(field, "string_type", "Input should be a valid string")
            return nil
        }
        let n = s.unicodeScalars.count
        if n < 1 {
            issues.add(field, "string_too_short", "String should have at least 1 character", .object([("min_length", .int(1))]))
        } else if n > maxLength {
            issues.add(
                field, "string_too_long", "String should have at most \(maxLength) characters",
                .object([("max_length", .int(maxLength))]))
        } else if s.unicodeScalars.contains("\u{0}") {
            issues.add(
                field, "string_pattern_mismatch", "String should match pattern '\(StreamRules.namePattern)'",
                .object([("pattern", .string(StreamRules.namePattern))]))
        } else {
            return s
        }
        return nil
    }

    private func source(_ v: JSONValue, _ field: String, _ issues: inout Issues) -> String? {
        guard case .string(let s) = v else {
            issues.add(field, "string_type", "Input should be a valid string")
            return nil
        }
        if s.unicodeScalars.count > StreamRules.urlMaxLength {
            issues.add(
                field, "string_too_long", "String should have at most \(StreamRules.urlMaxLength) characters",
                .object([("max_length", .int(StreamRules.urlMaxLength))]))
            return nil
        }
        guard StreamRules.isValidURL(s, mediaDirectory: mediaDirectory) else {
            let schemes =
                StreamRules.networkSchemes.map { "\($0)://" }.joined(separator: ", ")
                + (mediaDirectory.map { ", file:// (a video file inside \($0))" } ?? "")
            issues.add(
                field, "value_error",
                "Value error, must be a URL with scheme \(schemes), a host for network schemes, and no spaces or control characters",
                .object([("error", .string("invalid stream URL"))]))
            return nil
        }
        return s
    }

    private static func gridSize(_ v: JSONValue, _ field: String, _ issues: inout Issues) -> Int? {
        integer(v, field, in: StreamSettings.gridSizeRange, &issues)
    }

    private static func threshold(_ v: JSONValue, _ field: String, _ issues: inout Issues) -> Double? {
        number(v, field, in: StreamSettings.thresholdRange, &issues)
    }

    /// An integer in `r`, with pydantic's types and order: an integer first (infinity counts as
    /// too large, 16.0 is one), then the bounds.
    static func integer(_ v: JSONValue, _ field: String, in r: ClosedRange<Int>, _ issues: inout Issues) -> Int? {
        guard case .number(let n) = v, !n.value.isNaN else {
            issues.add(field, "int_type", "Input should be a valid integer")
            return nil
        }
        if n.value.isFinite && n.value.rounded(.towardZero) != n.value {
            issues.add(field, "int_from_float", "Input should be a valid integer, got a number with a fractional part")
        } else if n.value.isFinite && n.value < Double(r.lowerBound) {
            issues.add(
                field, "greater_than_equal", "Input should be greater than or equal to \(r.lowerBound)",
                .object([("ge", .int(r.lowerBound))]))
        } else if !n.value.isFinite || n.value > Double(r.upperBound) {
            issues.add(
                field, "less_than_equal", "Input should be less than or equal to \(r.upperBound)",
                .object([("le", .int(r.upperBound))]))
        } else {
            return Int(n.value)
        }
        return nil
    }

    /// A finite number in `r` (whose bounds are whole numbers, as the document states them);
    /// -0 comes back as 0 (no "-0" in the database).
    static func number(_ v: JSONValue, _ field: String, in r: ClosedRange<Double>, _ issues: inout Issues) -> Double? {
        guard case .number(let n) = v else {
            issues.add(field, "float_type", "Input should be a valid number")
            return nil
        }
        if !n.value.isFinite {
            issues.add(field, "finite_number", "Input should be a finite number")
        } else if n.value < r.lowerBound {
            issues.add(
                field, "greater_than_equal", "Input should be greater than or equal to \(Int(r.lowerBound))",
                .object([("ge", .int(Int(r.lowerBound)))]))
        } else if n.value > r.upperBound {
            issues.add(
                field, "less_than_equal", "Input should be less than or equal to \(Int(r.upperBound))",
                .object([("le", .int(Int(r.upperBound)))]))
        } else {
            return n.value == 0 ? 0 : n.value
        }
        return nil
    }

    private static func isActive(_ v: JSONValue, _ field: String, _ issues: inout Issues) -> Bool? {
        guard case .bool(let b) = v else {
            issues.add(field, "bool_type", "Input should be a valid boolean")
            return nil
        }
        return b
    }
}

/// UUIDs in paths: validated before any query, like FastAPI's `uuid` path parameters.
public enum UUIDText {
    /// The canonical lower-case 8-4-4-4-12 form, or nil when `s` is not a UUID.
    /// Accepts the hyphenated form and the 32-digit form, in either case.
    public static func canonical(_ s: String) -> String? {
        var hex: [UInt8] = []
        hex.reserveCapacity(32)
        let u = Array(s.utf8)
        if u.count == 36 {
            for (k, c) in u.enumerated() {
                if k == 8 || k == 13 || k == 18 || k == 23 {
                    guard c == UInt8(ascii: "-") else { return nil }
                } else {
                    hex.append(c)
                }
            }
        } else if u.count == 32 {
            hex = u
        } else {
            return nil
        }
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for (k, c) in hex.enumerated() {
            if k == 8 || k == 12 || k == 16 || k == 20 { out.append(UInt8(ascii: "-")) }
            guard Hex.value(c) != nil else { return nil }
            out.append(c >= 0x41 && c <= 0x46 ? c + 0x20 : c)  // lower case
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func issue(_ value: String, field: String = "id") -> APIError {
        APIError(issues: [
            ValidationIssue(
                type: "uuid_parsing", loc: [.key("path"), .key(field)],
                msg:
                    "Input should be a valid UUID, invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-]"
            )
        ])
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return s
    }
}

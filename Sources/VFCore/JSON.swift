import VFText

/// A parsed JSON document. Numbers keep their source text so that integers and decimals are
/// told apart exactly as a JSON Schema validator would (`16.0` is an integer, `16.5` is not).
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    /// Members in source order; a repeated key keeps its last value (as Python's `json` does).
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let x), .number(let y)): return x.value == y.value
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// Looks a member up in an object (nil for other kinds or a missing key).
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last(where: { $0.0 == key })?.1
    }
}

/// A JSON number: the literal as written and its value as a `Double`.
public struct JSONNumber: Sendable {
    public let text: String
    public let value: Double
    /// True when the literal has neither fraction nor exponent (`12`, `-3`).
    public let isIntegerLiteral: Bool
}

/// Where and why a document is not JSON, in the words Python's `json` module uses, so that the
/// 422 body reads like FastAPI's.
public struct JSONParseError: Error, Sendable, Equatable {
    public let offset: Int
    public let reason: String
}

/// A strict RFC 8259 parser over raw bytes: rejects invalid UTF-8, lone surrogates,
/// control characters in strings, trailing garbage and nesting deeper than `maxDepth`.
public struct JSONParser {
    public static let maxDepth = 64
    private let b: [UInt8]
    private var i = 0

    public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        var p = JSONParser(b: bytes)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        if p.i != bytes.count { throw JSONParseError(offset: p.i, reason: "Extra data") }
        return v
    }

    private init(b: [UInt8]) { self.b = b }

    private mutating func skipSpace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    private func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: i, reason: reason) }

    private mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        guard i < b.count else { throw fail("Expecting value") }
        if depth > Self.maxDepth { throw fail("Nesting too deep") }
        switch b[i] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail("Expecting value")
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= b.count else { throw fail("Expecting value") }
        let p = word.utf8Start
        for k in 0..<n where b[i + k] != p[k] { throw fail("Expecting value") }
        i += n
    }

    private mutating func object(depth: Int) throws(JSONParseError) -> JSONValue {
        i += 1
        var members: [(String, JSONValue)] = []
        // Key → position, built once an object is big enough for a scan to cost: a body of many
        // distinct keys must stay linear to parse.
        var index: [String: Int] = [:]
        skipSpace()
        if i < b.count, b[i] == UInt8(ascii: "}") {
            i += 1
            return .object(members)
        }
        while true {
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: "\"") else {
                throw fail("Expecting property name enclosed in double quotes")
            }
            let key = try string()
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("Expecting ':' delimiter") }
            i += 1
            skipSpace()
            let v = try value(depth: depth + 1)
            // A repeated key keeps its first place and takes the last value, as Python's json does.
            if members.count < 16 {
                if let k = members.firstIndex(where: { $0.0 == key }) {
                    members[k].1 = v
                } else {
                    members.append((key, v))
                }
            } else {
                if index.isEmpty {
                    for (k, m) in members.enumerated() { index[m.0] = k }
                }
                if let k = index[key] {
                    members[k].1 = v
                } else {
                    index[key] = members.count
                    members.append((key, v))
                }
            }
            skipSpace()
            guard i < b.count else { throw fail("Expecting ',' delimiter") }
            if b[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if b[i] == UInt8(ascii: "}") {
                i += 1
                return .object(members)
            }
            throw fail("Expecting ',' delimiter")
        }
    }

    private mutating func array(depth: Int) throws(JSONParseError) -> JSONValue {
        i += 1
        var items: [JSONValue] = []
        skipSpace()
        if i < b.count, b[i] == UInt8(ascii: "]") {
            i += 1
            return .array(items)
        }
        while true {
            skipSpace()
            items.append(try value(depth: depth + 1))
            skipSpace()
            guard i < b.count else { throw fail("Expecting ',' delimiter") }
            if b[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if b[i] == UInt8(ascii: "]") {
                i += 1
                return .array(items)
            }
            throw fail("Expecting ',' delimiter")
        }
    }

    private mutating func number() throws(JSONParseError) -> JSONNumber {
        let start = i
        var integer = true
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count, isDigit(b[i]) else { throw fail("Expecting value") }
        if b[i] == UInt8(ascii: "0") { i += 1 } else { while i < b.count, isDigit(b[i]) { i += 1 } }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            integer = false
            i += 1
            guard i < b.count, isDigit(b[i]) else { throw fail("Expecting value") }
            while i < b.count, isDigit(b[i]) { i += 1 }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            integer = false
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, isDigit(b[i]) else { throw fail("Expecting value") }
            while i < b.count, isDigit(b[i]) { i += 1 }
        }
        let text = String(decoding: b[start..<i], as: UTF8.self)
        // Overflowing literals become ±infinity: the validators reject them as non-finite.
        let value = Double(text) ?? .infinity
        return JSONNumber(text: text, value: value, isIntegerLiteral: integer)
    }

    private func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    private mutating func string() throws(JSONParseError) -> String {
        i += 1
        var runStart = i
        var out = ""
        // Runs of plain bytes are copied in one piece; multi-byte UTF-8 is validated in place.
        func flush(_ s: inout String, _ from: Int, _ to: Int) {
            if to > from { s += String(decoding: b[from..<to], as: UTF8.self) }
        }
        while true {
            guard i < b.count else {
                throw JSONParseError(offset: runStart - 1, reason: "Unterminated string starting at")
            }
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                flush(&out, runStart, i)
                i += 1
                return out
            }
            if c < 0x20 { throw fail("Invalid control character at") }
            if c < 0x80 && c != UInt8(ascii: "\\") {
                i += 1
                continue
            }
            if c == UInt8(ascii: "\\") {
                flush(&out, runStart, i)
                i += 1
                guard i < b.count else { throw fail("Unterminated string starting at") }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out += "\""
                case UInt8(ascii: "\\"): out += "\\"
                case UInt8(ascii: "/"): out += "/"
                case UInt8(ascii: "b"): out += "\u{08}"
                case UInt8(ascii: "f"): out += "\u{0C}"
                case UInt8(ascii: "n"): out += "\n"
                case UInt8(ascii: "r"): out += "\r"
                case UInt8(ascii: "t"): out += "\t"
                case UInt8(ascii: "u"):
                    var u = try hex4()
                    if u >= 0xD800 && u < 0xDC00 {
                        guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                            throw fail("Invalid \\uXXXX escape: lone surrogate")
                        }
                        i += 2
                        let lo = try hex4()
                        guard lo >= 0xDC00 && lo < 0xE000 else { throw fail("Invalid \\uXXXX escape: lone surrogate") }
                        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    } else if u >= 0xDC00 && u < 0xE000 {
                        throw fail("Invalid \\uXXXX escape: lone surrogate")
                    }
                    out.unicodeScalars.append(Unicode.Scalar(u)!)
                default:
                    i -= 1
                    throw fail("Invalid \\escape")
                }
                runStart = i
                continue
            }
            // A multi-byte UTF-8 sequence: check it strictly (no overlongs, no surrogates).
            let n: Int
            var cp: UInt32
            if c & 0xE0 == 0xC0 {
                n = 2
                cp = UInt32(c & 0x1F)
            } else if c & 0xF0 == 0xE0 {
                n = 3
                cp = UInt32(c & 0x0F)
            } else if c & 0xF8 == 0xF0 {
                n = 4
                cp = UInt32(c & 0x07)
            } else {
                throw fail("Invalid UTF-8 byte")
            }
            guard i + n <= b.count else { throw fail("Invalid UTF-8 byte") }
            for k in 1..<n {
                let cc = b[i + k]
                guard cc & 0xC0 == 0x80 else { throw fail("Invalid UTF-8 byte") }
                cp = (cp << 6) | UInt32(cc & 0x3F)
            }
            let minimum: UInt32 = n == 2 ? 0x80 : (n == 3 ? 0x800 : 0x10000)
            guard cp >= minimum, cp <= 0x10FFFF, !(cp >= 0xD800 && cp < 0xE000) else {
                throw fail("Invalid UTF-8 byte")
            }
            i += n
        }
    }

    private mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard i + 4 <= b.count else { throw fail("Invalid \\uXXXX escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let d = Hex.value(b[i]) else { throw fail("Invalid \\uXXXX escape") }
            v = v * 16 + UInt32(d)
            i += 1
        }
        return v
    }
}

/// JSONValue as JSON text, through the one writer and escaper (VFText's JSONWriter).
public enum JSONSerializer {
    public static func appendString(_ s: String, to out: inout [UInt8]) { JSONWriter.appendString(s, to: &out) }

    /// Serialises a value (compact, members in order).
    public static func append(_ v: JSONValue, to out: inout [UInt8]) {
        switch v {
        case .null: out.append(contentsOf: Array("null".utf8))
        case .bool(let x): out.append(contentsOf: Array((x ? "true" : "false").utf8))
        case .number(let n): out.append(contentsOf: Array(n.text.utf8))
        case .string(let s): appendString(s, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (k, item) in items.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                append(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (k, (key, item)) in members.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                appendString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                append(item, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    public static func encode(_ v: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        append(v, to: &out)
        return out
    }
}

extension JSONValue {
    /// A number value from an integer.
    public static func int(_ v: Int) -> JSONValue {
        .number(JSONNumber(text: String(v), value: Double(v), isIntegerLiteral: true))
    }
    /// A number value from a finite double (Swift's shortest round-trip text is valid JSON).
    public static func double(_ v: Double) -> JSONValue {
        .number(JSONNumber(text: "\(v)", value: v, isIntegerLiteral: false))
    }
}

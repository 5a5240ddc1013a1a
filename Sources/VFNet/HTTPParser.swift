/// The parsed head of one HTTP/1.x request, with the framing and connection facts the
/// server needs already derived from the headers.
public struct HTTPRequestHead: Sendable {
    public var method: String
    public var target: String
    public var versionMinor: Int
    public var headers: HTTPHeaders
    /// Set when a (valid, non-conflicting) Content-Length was sent.
    public var contentLength: Int?
    /// `Transfer-Encoding: chunked`; never together with `contentLength`.
    public var isChunked: Bool
    public var keepAlive: Bool
    public var expectsContinue: Bool
    /// GET on HTTP/1.1 with `Upgrade: websocket` and `Connection: upgrade`.
    public var isWebSocketUpgrade: Bool

    public init(
        method: String, target: String, versionMinor: Int, headers: HTTPHeaders,
        contentLength: Int? = nil, isChunked: Bool = false, keepAlive: Bool = true,
        expectsContinue: Bool = false, isWebSocketUpgrade: Bool = false
    ) {
        self.method = method
        self.target = target
        self.versionMinor = versionMinor
        self.headers = headers
        self.contentLength = contentLength
        self.isChunked = isChunked
        self.keepAlive = keepAlive
        self.expectsContinue = expectsContinue
        self.isWebSocketUpgrade = isWebSocketUpgrade
    }
}

/// Why a request was refused; `status` is the response code to send before closing.
public enum HTTPParseError: Error, Equatable, Sendable {
    case malformed(String)  // 400
    case requestLineTooLong  // 414
    case headersTooLarge  // 431
    case bodyTooLarge  // 413
    case unsupportedTransferEncoding  // 501
    case versionNotSupported  // 505

    public var status: Int {
        switch self {
        case .malformed: return 400
        case .requestLineTooLong: return 414
        case .headersTooLarge: return 431
        case .bodyTooLarge: return 413
        case .unsupportedTransferEncoding: return 501
        case .versionNotSupported: return 505
        }
    }

    public var reason: String {
        switch self {
        case .malformed: return "Bad Request"
        case .requestLineTooLong: return "URI Too Long"
        case .headersTooLarge: return "Request Header Fields Too Large"
        case .bodyTooLarge: return "Content Too Large"
        case .unsupportedTransferEncoding: return "Not Implemented"
        case .versionNotSupported: return "HTTP Version Not Supported"
        }
    }
}

public enum HTTPHeadParseResult: Sendable {
    /// The head ends `consumed` bytes into the input; the body (if any) follows.
    case complete(HTTPRequestHead, consumed: Int)
    /// No decision yet: call again with more bytes (the same prefix plus what arrived).
    case incomplete
    case error(HTTPParseError)
}

/// A stateless, strict HTTP/1.x request-head parser (in the manner of picohttpparser).
///
/// Contract: every decision depends only on the bytes before the point where it is taken, so a
/// prefix of an input either yields `.incomplete` or exactly the result of the whole input; the
/// caller re-runs it on the grown buffer. Limits are enforced while incomplete, so a client cannot
/// make the server buffer more than `maxHeaderBytes`.
///
/// Strictness: lines end in CRLF (a bare LF or bare CR is a 400: lenient line endings are a
/// request-smuggling vector behind proxies); empty lines before the request line are skipped;
/// obs-fold, whitespace before the colon, control bytes in values, conflicting or non-digit
/// Content-Length, Content-Length with Transfer-Encoding, several Host fields, and
/// Transfer-Encoding on HTTP/1.0 are all 400.
public enum HTTPRequestParser {
    /// The whole parse, in the order of the grammar; each step is a small method of `HeadCursor`,
    /// which stops the parse (incomplete input, or an error) by throwing.
    public static func parseHead(_ bytes: UnsafeRawBufferPointer, limits: HTTPLimits) -> HTTPHeadParseResult {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return .incomplete }
        var c = HeadCursor(base.assumingMemoryBound(to: UInt8.self), count: bytes.count, limits: limits)
        do throws(HeadCursor.Stop) {
            try c.skipEmptyLines()
            let line = try c.requestLine()
            var facts = HeaderFacts()
            let fields = try c.headerFields(limits.maxHeaderCount, &facts)
            try facts.checkFraming(minor: line.minor, maxBody: limits.maxBodyBytes)
            let method = c.buffer(line.method)
            let isGet = method.count == 3 && method[0] == 0x47 && method[1] == 0x45 && method[2] == 0x54
            let head = HTTPRequestHead(
                method: makeString(method), target: makeString(c.buffer(line.target)), versionMinor: line.minor,
                headers: HTTPHeaders(fields: fields), contentLength: facts.contentLength, isChunked: facts.teCount > 0,
                keepAlive: line.minor == 1 ? !facts.connClose : (facts.connKeepAlive && !facts.connClose),
                expectsContinue: facts.expectsContinue,
                isWebSocketUpgrade: isGet && line.minor == 1 && facts.upgradeWebSocket && facts.connUpgrade)
            return .complete(head, consumed: c.i)
        } catch {
            switch error {
            case .incomplete: return .incomplete
            case .error(let e): return .error(e)
            }
        }
    }

    // MARK: - byte helpers

    @inline(__always) static func makeString(_ b: UnsafeBufferPointer<UInt8>) -> String {
        String(decoding: b, as: UTF8.self)
    }

    /// Whether some byte of `w` is below `n` (n <= 128; exact, no false positives).
    @inline(__always) static func hasByteLess(_ w: UInt64, _ n: UInt8) -> Bool {
        (w &- 0x0101_0101_0101_0101 &* UInt64(n)) & ~w & 0x8080_8080_8080_8080 != 0
    }

    /// Whether some byte of `w` equals `b`.
    @inline(__always) static func hasByte(_ w: UInt64, _ b: UInt8) -> Bool {
        let x = w ^ (0x0101_0101_0101_0101 &* UInt64(b))
        return (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080 != 0
    }

    /// RFC 9110 tchar, as two 64-bit masks over ASCII.
    @inline(__always) static func isToken(_ b: UInt8) -> Bool {
        if b < 64 { return (0x03ff_6cfa_0000_0000 as UInt64) & (1 << UInt64(b)) != 0 }
        if b < 128 { return (0x57ff_ffff_c7ff_fffe as UInt64) & (1 << UInt64(b - 64)) != 0 }
        return false
    }

    /// ASCII case-insensitive comparison with a lowercase literal.
    @inline(__always) static func equalsLower(_ b: UnsafeBufferPointer<UInt8>, _ lower: StaticString) -> Bool {
        guard b.count == lower.utf8CodeUnitCount else { return false }
        let l = lower.utf8Start
        for k in 0..<b.count {
            var c = b[k]
            if c >= 0x41 && c <= 0x5A { c |= 0x20 }
            if c != l[k] { return false }
        }
        return true
    }

    /// Calls `body` with each element of a comma-separated list, OWS trimmed, empties skipped.
    @inline(__always) static func forEachToken(
        _ v: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Void
    ) {
        var s = 0
        while s < v.count {
            var e = s
            while e < v.count && v[e] != 0x2C { e += 1 }
            var a = s
            var z = e
            while a < z && (v[a] == sp || v[a] == ht) { a += 1 }
            while z > a && (v[z - 1] == sp || v[z - 1] == ht) { z -= 1 }
            if z > a { body(UnsafeBufferPointer(rebasing: v[a..<z])) }
            s = e + 1
        }
    }

    /// 1*DIGIT; saturates at Int.max (any such value is over every body limit anyway).
    static func parseContentLength(_ v: UnsafeBufferPointer<UInt8>) -> Int? {
        if v.isEmpty { return nil }
        var n = 0
        for c in v {
            guard c >= 0x30 && c <= 0x39 else { return nil }
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int(c - 0x30))
            n = (o1 || o2) ? Int.max : s
        }
        return n
    }
}

/// A position in a request head being parsed, with the helpers the grammar is written in (as
/// picohttpparser's `CHECK_EOF` and `EXPECT_CHAR`). Running out of bytes stops the parse as
/// incomplete, or, past the head limit, as 431: a client cannot make the server buffer more.
private struct HeadCursor {
    enum Stop: Error {
        case incomplete
        case error(HTTPParseError)
    }

    let p: UnsafePointer<UInt8>
    /// The input's end or the head limit, whichever comes first.
    let bound: Int
    let headLimit: Int
    let maxRequestLine: Int
    var i = 0
    /// Where the request line's CR must be at the latest.
    var lineEnd = Int.max

    init(_ p: UnsafePointer<UInt8>, count: Int, limits: HTTPLimits) {
        self.p = p
        headLimit = max(0, limits.maxHeaderBytes)
        bound = min(count, headLimit)
        maxRequestLine = max(0, limits.maxRequestLineBytes)
    }

    func buffer(_ r: Range<Int>) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: p + r.lowerBound, count: r.count)
    }

    @inline(__always) func exhausted(_ at: Int) -> Stop { at >= headLimit ? .error(.headersTooLarge) : .incomplete }

    @inline(__always) func malformed(_ why: String) -> Stop { .error(.malformed(why)) }

    /// CHECK_EOF: the byte at the cursor.
    @inline(__always) func byte() throws(Stop) -> UInt8 {
        if i >= bound { throw exhausted(i) }
        return p[i]
    }

    /// A byte of the request line: past `lineEnd` only its CR may stand.
    @inline(__always) func lineByte() throws(Stop) -> UInt8 {
        let b = try byte()
        if i >= lineEnd && b != cr { throw .error(.requestLineTooLong) }
        return b
    }

    /// EXPECT_CHAR(LF) after the CR at the cursor (a bare CR is a smuggling vector: 400).
    @inline(__always) mutating func endOfLine() throws(Stop) {
        if i + 1 >= bound { throw exhausted(i + 1) }
        if p[i + 1] != lf { throw malformed("bare CR") }
        i += 2
    }

    /// Eight ordinary bytes at a time (none below `floor`, no DEL) up to `end`; the byte loops
    /// after it take every decision.
    @inline(__always) mutating func skipPlain(below floor: UInt8, upTo end: Int) {
        while i + 8 <= end {
            let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
            if HTTPRequestParser.hasByteLess(w, floor) || HTTPRequestParser.hasByte(w, 0x7F) { break }
            i += 8
        }
    }

    /// RFC 9112 §2.2: empty lines before the request line are ignored (within the head limit).
    mutating func skipEmptyLines() throws(Stop) {
        while try byte() == cr { try endOfLine() }
    }

    /// method SP request-target SP "HTTP/" DIGIT "." DIGIT CRLF
    mutating func requestLine() throws(Stop) -> (method: Range<Int>, target: Range<Int>, minor: Int) {
        let (limit, overflow) = i.addingReportingOverflow(maxRequestLine)
        lineEnd = overflow ? Int.max : limit
        let methodStart = i
        while case let b = try lineByte(), b != sp {
            if !HTTPRequestParser.isToken(b) { throw malformed("invalid method") }
            i += 1
        }
        if i == methodStart { throw malformed("empty method") }
        let method = methodStart..<i
        i += 1
        let targetStart = i
        skipPlain(below: 0x21, upTo: min(bound, lineEnd))
        while case let b = try lineByte(), b != sp {
            if b <= 0x20 || b == 0x7F { throw malformed("invalid request target") }
            i += 1
        }
        if i == targetStart { throw malformed("empty request target") }
        let target = targetStart..<i
        i += 1
        let (major, minor) = try version()
        if try byte() != cr { throw i >= lineEnd ? .error(.requestLineTooLong) : malformed("invalid HTTP version") }
        try endOfLine()
        guard major == 1 && minor <= 1 else { throw .error(.versionNotSupported) }
        return (method, target, minor)
    }

    /// "HTTP/" DIGIT "." DIGIT
    private mutating func version() throws(Stop) -> (major: Int, minor: Int) {
        var major = 0
        var minor = 0
        for k in 0..<8 {
            let b = try lineByte()
            switch k {
            case 0...4:
                if b != ("HTTP/" as StaticString).utf8Start[k] { throw malformed("invalid HTTP version") }
            case 5, 7:
                guard b >= 0x30 && b <= 0x39 else { throw malformed("invalid HTTP version") }
                if k == 5 { major = Int(b - 0x30) } else { minor = Int(b - 0x30) }
            default:
                if b != 0x2E { throw malformed("invalid HTTP version") }
            }
            i += 1
        }
        return (major, minor)
    }

    /// *( field-line CRLF ) CRLF, at most `maxCount` fields; what framing needs goes to `facts`.
    mutating func headerFields(_ maxCount: Int, _ facts: inout HeaderFacts) throws(Stop) -> [HTTPHeaders.Element] {
        var fields: [HTTPHeaders.Element] = []
        fields.reserveCapacity(16)
        while true {
            let first = try byte()
            if first == cr {
                try endOfLine()
                return fields
            }
            if first == sp || first == ht { throw malformed("obsolete line folding") }
            if fields.count >= maxCount { throw .error(.headersTooLarge) }
            let (name, value) = try field()
            try facts.note(buffer(name), buffer(value))
            fields.append((name: HTTPRequestParser.makeString(buffer(name)), value: HTTPRequestParser.makeString(buffer(value))))
        }
    }

    /// field-name ":" OWS field-value OWS CRLF (no whitespace before the colon, no control bytes).
    private mutating func field() throws(Stop) -> (name: Range<Int>, value: Range<Int>) {
        let nameStart = i
        while case let b = try byte(), b != colon {
            if !HTTPRequestParser.isToken(b) { throw malformed("invalid header name") }
            i += 1
        }
        if i == nameStart { throw malformed("empty header name") }
        let name = nameStart..<i
        i += 1
        while case let b = try byte(), b == sp || b == ht { i += 1 }
        let valueStart = i
        skipPlain(below: 0x20, upTo: bound)
        while case let b = try byte(), b != cr {
            if (b < 0x20 && b != ht) || b == 0x7F { throw malformed("invalid header value") }
            i += 1
        }
        var valueEnd = i
        while valueEnd > valueStart && (p[valueEnd - 1] == sp || p[valueEnd - 1] == ht) { valueEnd -= 1 }
        try endOfLine()
        return (name, valueStart..<valueEnd)
    }
}

/// What the server needs from the header fields (framing, connection, upgrade), gathered while
/// they are parsed.
private struct HeaderFacts {
    var contentLength: Int?
    var teCount = 0
    var teChunked = false
    var hostCount = 0
    var connClose = false
    var connKeepAlive = false
    var connUpgrade = false
    var upgradeWebSocket = false
    var expectsContinue = false

    mutating func note(_ name: UnsafeBufferPointer<UInt8>, _ value: UnsafeBufferPointer<UInt8>) throws(HeadCursor.Stop) {
        typealias P = HTTPRequestParser
        switch name.count {
        case 4 where P.equalsLower(name, "host"):
            hostCount += 1
            if hostCount > 1 { throw .error(.malformed("duplicate Host")) }
        case 6 where P.equalsLower(name, "expect"):
            if P.equalsLower(value, "100-continue") { expectsContinue = true }
        case 7 where P.equalsLower(name, "upgrade"):
            P.forEachToken(value) { if P.equalsLower($0, "websocket") { upgradeWebSocket = true } }
        case 10 where P.equalsLower(name, "connection"):
            P.forEachToken(value) { t in
                if P.equalsLower(t, "close") {
                    connClose = true
                } else if P.equalsLower(t, "keep-alive") {
                    connKeepAlive = true
                } else if P.equalsLower(t, "upgrade") {
                    connUpgrade = true
                }
            }
        case 14 where P.equalsLower(name, "content-length"):
            guard let v = P.parseContentLength(value) else { throw .error(.malformed("invalid Content-Length")) }
            if let old = contentLength, old != v { throw .error(.malformed("conflicting Content-Length")) }
            contentLength = v
        case 17 where P.equalsLower(name, "transfer-encoding"):
            teCount += 1
            teChunked = P.equalsLower(value, "chunked")
        default:
            break
        }
    }

    /// RFC 9112 §6: one framing, chunked only, Host on 1.1, the body within its limit.
    func checkFraming(minor: Int, maxBody: Int) throws(HeadCursor.Stop) {
        if teCount > 0 {
            if contentLength != nil { throw .error(.malformed("both Content-Length and Transfer-Encoding")) }
            if minor == 0 { throw .error(.malformed("Transfer-Encoding in HTTP/1.0")) }
            if teCount > 1 || !teChunked { throw .error(.unsupportedTransferEncoding) }
        }
        if minor == 1 && hostCount == 0 { throw .error(.malformed("missing Host")) }
        if let cl = contentLength, cl > maxBody { throw .error(.bodyTooLarge) }
    }
}

private let cr: UInt8 = 0x0D
private let lf: UInt8 = 0x0A
private let sp: UInt8 = 0x20
private let ht: UInt8 = 0x09
private let colon: UInt8 = 0x3A

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
    public static func parseHead(_ bytes: UnsafeRawBufferPointer, limits: HTTPLimits) -> HTTPHeadParseResult {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return .incomplete }
        let p = base.assumingMemoryBound(to: UInt8.self)
        let headLimit = max(0, limits.maxHeaderBytes)
        let bound = min(bytes.count, headLimit)
        // Out of bytes at index i: either the head limit or the end of the input.
        @inline(__always) func exhausted(_ i: Int) -> HTTPHeadParseResult {
            i >= headLimit ? .error(.headersTooLarge) : .incomplete
        }
        var i = 0

        // RFC 9112 §2.2: ignore empty lines before the request line (kept within the head limit).
        while true {
            if i >= bound { return exhausted(i) }
            if p[i] != cr { break }
            if i + 1 >= bound { return exhausted(i + 1) }
            if p[i + 1] != lf { return .error(.malformed("bare CR")) }
            i += 2
        }

        // ---- request line ----
        let lineStart = i
        let (rlLimit, rlOverflow) = lineStart.addingReportingOverflow(max(0, limits.maxRequestLineBytes))
        let rlEnd = rlOverflow ? Int.max : rlLimit  // index where the CR must be at the latest
        let methodStart = i
        while true {
            if i >= bound { return exhausted(i) }
            let b = p[i]
            if i >= rlEnd && b != cr { return .error(.requestLineTooLong) }
            if b == sp { break }
            if !isToken(b) { return .error(.malformed("invalid method")) }
            i += 1
        }
        if i == methodStart { return .error(.malformed("empty method")) }
        let methodEnd = i
        i += 1
        let targetStart = i
        // Eight ordinary bytes at a time; the byte loop below takes every decision.
        let fastTargetEnd = min(bound, rlEnd)
        while i + 8 <= fastTargetEnd {
            let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
            if hasByteLess(w, 0x21) || hasByte(w, 0x7F) { break }
            i += 8
        }
        while true {
            if i >= bound { return exhausted(i) }
            let b = p[i]
            if i >= rlEnd && b != cr { return .error(.requestLineTooLong) }
            if b == sp { break }
            if b <= 0x20 || b == 0x7F { return .error(.malformed("invalid request target")) }
            i += 1
        }
        if i == targetStart { return .error(.malformed("empty request target")) }
        let targetEnd = i
        i += 1
        // "HTTP/" DIGIT "." DIGIT CRLF
        var major = 0
        var minor = 0
        for k in 0..<8 {
            if i >= bound { return exhausted(i) }
            let b = p[i]
            if i >= rlEnd && b != cr { return .error(.requestLineTooLong) }
            switch k {
            case 0...4:
                if b != ("HTTP/" as StaticString).utf8Start[k] { return .error(.malformed("invalid HTTP version")) }
            case 5, 7:
                guard b >= 0x30 && b <= 0x39 else { return .error(.malformed("invalid HTTP version")) }
                if k == 5 { major = Int(b - 0x30) } else { minor = Int(b - 0x30) }
            default:
                if b != 0x2E { return .error(.malformed("invalid HTTP version")) }
            }
            i += 1
        }
        if i >= bound { return exhausted(i) }
        if p[i] != cr {
            return .error(i >= rlEnd ? .requestLineTooLong : .malformed("invalid HTTP version"))
        }
        if i + 1 >= bound { return exhausted(i + 1) }
        if p[i + 1] != lf { return .error(.malformed("bare CR")) }
        i += 2
        guard major == 1 && minor <= 1 else { return .error(.versionNotSupported) }

        // ---- header fields ----
        var fields: [HTTPHeaders.Element] = []
        fields.reserveCapacity(16)
        var contentLength: Int? = nil
        var teCount = 0
        var teChunked = false
        var hostCount = 0
        var connClose = false
        var connKeepAlive = false
        var connUpgrade = false
        var upgradeWebSocket = false
        var expectsContinue = false
        let maxCount = limits.maxHeaderCount
        while true {
            if i >= bound { return exhausted(i) }
            let first = p[i]
            if first == cr {
                if i + 1 >= bound { return exhausted(i + 1) }
                if p[i + 1] != lf { return .error(.malformed("bare CR")) }
                i += 2
                break
            }
            if first == sp || first == ht { return .error(.malformed("obsolete line folding")) }
            if fields.count >= maxCount { return .error(.headersTooLarge) }
            let nameStart = i
            while true {
                if i >= bound { return exhausted(i) }
                let b = p[i]
                if b == colon { break }
                if !isToken(b) { return .error(.malformed("invalid header name")) }
                i += 1
            }
            if i == nameStart { return .error(.malformed("empty header name")) }
            let nameEnd = i
            i += 1
            while true {
                if i >= bound { return exhausted(i) }
                let b = p[i]
                if b != sp && b != ht { break }
                i += 1
            }
            let valueStart = i
            while i + 8 <= bound {
                let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
                if hasByteLess(w, 0x20) || hasByte(w, 0x7F) { break }
                i += 8
            }
            while true {
                if i >= bound { return exhausted(i) }
                let b = p[i]
                if b == cr { break }
                if (b < 0x20 && b != ht) || b == 0x7F { return .error(.malformed("invalid header value")) }
                i += 1
            }
            var valueEnd = i
            while valueEnd > valueStart && (p[valueEnd - 1] == sp || p[valueEnd - 1] == ht) { valueEnd -= 1 }
            if i + 1 >= bound { return exhausted(i + 1) }
            if p[i + 1] != lf { return .error(.malformed("bare CR")) }
            i += 2

            let name = UnsafeBufferPointer(start: p + nameStart, count: nameEnd - nameStart)
            let value = UnsafeBufferPointer(start: p + valueStart, count: valueEnd - valueStart)
            switch name.count {
            case 4 where equalsLower(name, "host"):
                hostCount += 1
                if hostCount > 1 { return .error(.malformed("duplicate Host")) }
            case 6 where equalsLower(name, "expect"):
                if equalsLower(value, "100-continue") { expectsContinue = true }
            case 7 where equalsLower(name, "upgrade"):
                forEachToken(value) { if equalsLower($0, "websocket") { upgradeWebSocket = true } }
            case 10 where equalsLower(name, "connection"):
                forEachToken(value) { t in
                    if equalsLower(t, "close") {
                        connClose = true
                    } else if equalsLower(t, "keep-alive") {
                        connKeepAlive = true
                    } else if equalsLower(t, "upgrade") {
                        connUpgrade = true
                    }
                }
            case 14 where equalsLower(name, "content-length"):
                guard let v = parseContentLength(value) else {
                    return .error(.malformed("invalid Content-Length"))
                }
                if let old = contentLength, old != v { return .error(.malformed("conflicting Content-Length")) }
                contentLength = v
            case 17 where equalsLower(name, "transfer-encoding"):
                teCount += 1
                teChunked = equalsLower(value, "chunked")
            default:
                break
            }
            fields.append((name: makeString(name), value: makeString(value)))
        }

        // ---- framing and connection semantics (RFC 9112 §6, §9) ----
        if teCount > 0 {
            if contentLength != nil { return .error(.malformed("both Content-Length and Transfer-Encoding")) }
            if minor == 0 { return .error(.malformed("Transfer-Encoding in HTTP/1.0")) }
            if teCount > 1 || !teChunked { return .error(.unsupportedTransferEncoding) }
        }
        if minor == 1 && hostCount == 0 { return .error(.malformed("missing Host")) }
        if let cl = contentLength, cl > limits.maxBodyBytes { return .error(.bodyTooLarge) }

        let method = UnsafeBufferPointer(start: p + methodStart, count: methodEnd - methodStart)
        let isGet = method.count == 3 && method[0] == 0x47 && method[1] == 0x45 && method[2] == 0x54
        let head = HTTPRequestHead(
            method: makeString(method),
            target: makeString(UnsafeBufferPointer(start: p + targetStart, count: targetEnd - targetStart)),
            versionMinor: minor,
            headers: HTTPHeaders(fields: fields),
            contentLength: contentLength,
            isChunked: teCount > 0,
            keepAlive: minor == 1 ? !connClose : (connKeepAlive && !connClose),
            expectsContinue: expectsContinue,
            isWebSocketUpgrade: isGet && minor == 1 && upgradeWebSocket && connUpgrade
        )
        return .complete(head, consumed: i)
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

private let cr: UInt8 = 0x0D
private let lf: UInt8 = 0x0A
private let sp: UInt8 = 0x20
private let ht: UInt8 = 0x09
private let colon: UInt8 = 0x3A

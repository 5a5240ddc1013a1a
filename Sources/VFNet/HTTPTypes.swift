import Glibc
import VFText
import Synchronization

/// One parsed HTTP request with its whole body, as handlers see it.
public struct HTTPRequest: Sendable {
    public var method: String
    public var target: String
    public var path: String
    public var query: [String: String]
    public var versionMinor: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    public var pathParameters: [String: String]
    public var routePattern: String?
    public var remoteAddress: String

    public init(
        method: String, target: String, versionMinor: Int = 1, headers: HTTPHeaders = HTTPHeaders(),
        body: [UInt8] = [], remoteAddress: String = ""
    ) {
        self.method = method
        self.target = target
        let (rawPath, rawQuery) = URLComponents.split(target)
        self.path = URLComponents.percentDecode(rawPath, plusIsSpace: false)
        self.query = rawQuery.map { URLComponents.parseQuery($0) } ?? [:]
        self.versionMinor = versionMinor
        self.headers = headers
        self.body = body
        self.pathParameters = [:]
        self.routePattern = nil
        self.remoteAddress = remoteAddress
    }
}

/// A response: status, headers and the whole body. The server adds Date, Content-Length and Connection.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int = 200, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func text(_ s: String, status: Int = 200, contentType: String = "text/plain; charset=utf-8")
        -> HTTPResponse
    {
        HTTPResponse(status: status, headers: HTTPHeaders([("Content-Type", contentType)]), body: Array(s.utf8))
    }

    /// `raw` is already JSON.
    public static func json(raw: [UInt8], status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: HTTPHeaders([("Content-Type", "application/json")]), body: raw)
    }

    /// Encodes `value` with the module's own JSON encoder (no Foundation); an encoding failure is a 500.
    public static func json<T: Encodable>(_ value: T, status: Int = 200) -> HTTPResponse {
        do {
            return .json(raw: try EncodableJSON.encode(value), status: status)
        } catch {
            return .json(raw: EncodableJSON.detail("Internal Server Error: \(error)"), status: 500)
        }
    }

    /// FastAPI-style error: `{"detail": message}`.
    public static func error(_ status: Int, _ message: String? = nil) -> HTTPResponse {
        .json(raw: EncodableJSON.detail(message ?? HTTPStatus.reason(status)), status: status)
    }
}

/// Handles one request; must call `responder.respond` exactly once, from any thread.
public typealias HTTPHandler = @Sendable (HTTPRequest, HTTPResponder) -> Void

/// Completes one request exactly once, from any thread. On the loop thread it writes at once;
/// elsewhere it hops to the connection's loop. Later calls are ignored; a response for a client
/// that has gone is dropped. A responder dropped without answering answers 500, so a handler bug
/// cannot leave a connection hanging.
public final class HTTPResponder: Sendable {
    public let eventLoop: EventLoop
    private enum Target: Sendable {
        case connection(HTTPConnection, sequence: UInt64)
        /// No socket: the in-process client (RouterClient) takes the answer on the loop thread.
        case sink(@Sendable (HTTPResponse) -> Void)
    }
    private let target: Target
    private let answered = Atomic<Bool>(false)

    init(eventLoop: EventLoop, connection: HTTPConnection, sequence: UInt64) {
        self.eventLoop = eventLoop
        target = .connection(connection, sequence: sequence)
    }

    init(eventLoop: EventLoop, sink: @escaping @Sendable (HTTPResponse) -> Void) {
        self.eventLoop = eventLoop
        target = .sink(sink)
    }

    public func respond(_ response: HTTPResponse) {
        if answered.exchange(true, ordering: .acquiringAndReleasing) { return }
        deliver(response)
    }

    private func deliver(_ response: HTTPResponse) {
        // On the loop thread (the common case) a direct call, with no closure to allocate.
        if eventLoop.inEventLoop { return Self.complete(target, response) }
        let target = self.target
        eventLoop.execute { Self.complete(target, response) }
    }

    private static func complete(_ target: Target, _ response: HTTPResponse) {
        switch target {
        case .connection(let c, let sequence): c.complete(sequence: sequence, response: response)
        case .sink(let take): take(response)
        }
    }

    deinit {
        if !answered.load(ordering: .acquiring) {
            deliver(.error(500, "handler did not respond"))
        }
    }
}

/// Middleware around every routed handler and the server's own error answers.
public struct HTTPServerHooks: Sendable {
    /// Runs before routing; a response answers without calling the handler (auth, OPTIONS).
    public var before: (@Sendable (HTTPRequest) -> HTTPResponse?)?
    /// Runs on every response just before it is written; may add headers; sees the request and timing.
    public var after: (@Sendable (HTTPRequest, inout HTTPResponse, _ seconds: Double) -> Void)?

    public init(
        before: (@Sendable (HTTPRequest) -> HTTPResponse?)? = nil,
        after: (@Sendable (HTTPRequest, inout HTTPResponse, _ seconds: Double) -> Void)? = nil
    ) {
        self.before = before
        self.after = after
    }
}

/// Everything `HTTPServer` needs to start.
public struct HTTPServerConfiguration: Sendable {
    public var host: String = "0.0.0.0"
    public var port: Int = 8000
    public var loopCount: Int = System.coreCount
    public var limits = HTTPLimits()
    public var hooks = HTTPServerHooks()
    public var serverName: String = "vectorflow"
    public init() {}
}

/// Reason phrases and the rules about which statuses carry a body.
enum HTTPStatus {
    static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 410: return "Gone"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 422: return "Unprocessable Entity"
        case 426: return "Upgrade Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Status \(status)"
        }
    }

    static func hasBody(_ status: Int) -> Bool {
        !(status < 200 || status == 204 || status == 304)
    }

    /// "HTTP/1.1 200 OK\r\n" for the common statuses, built once.
    static let statusLines: [[UInt8]] = (0..<600).map { Array("HTTP/1.1 \($0) \(reason($0))\r\n".utf8) }

    static func statusLine(_ status: Int) -> [UInt8] {
        if status >= 100 && status < 600 { return statusLines[status] }
        return Array("HTTP/1.1 \(status) \(reason(status))\r\n".utf8)
    }
}

/// The `Date: ...\r\n` line, formatted at most once per second per loop.
struct HTTPDateCache {
    private var second: Int = -1
    private(set) var line: [UInt8] = []

    mutating func current() -> [UInt8] {
        let t = time(nil)
        if t != second {
            second = t
            line = Array("Date: \(HTTPDateCache.format(t))\r\n".utf8)
        }
        return line
    }

    /// IMF-fixdate (RFC 9110 §5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
    static func format(_ t: time_t) -> String {
        var tt = t
        var parts = tm()
        gmtime_r(&tt, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return
            "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}

/// Splitting and percent-decoding of request targets.
enum URLComponents {
    /// (path, query) of a request-target; the fragment, if a client sent one, is dropped.
    static func split(_ target: String) -> (Substring, Substring?) {
        // Byte search: the separators are ASCII, and UTF-8 view indices are valid string indices.
        var t = Substring(target)
        if let hash = t.utf8.firstIndex(of: UInt8(ascii: "#")) { t = t[..<hash] }
        guard let q = t.utf8.firstIndex(of: UInt8(ascii: "?")) else { return (t, nil) }
        return (t[..<q], t[t.utf8.index(after: q)...])
    }

    /// Decodes %XX (and `+` in queries); malformed escapes stay as they are; invalid UTF-8 is repaired.
    static func percentDecode(_ s: Substring, plusIsSpace: Bool) -> String {
        let utf8 = s.utf8
        if !utf8.contains(where: { $0 == 0x25 || (plusIsSpace && $0 == 0x2B) }) { return String(s) }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var it = Array(utf8)[...]
        while let b = it.popFirst() {
            if b == 0x2B && plusIsSpace {
                out.append(0x20)
            } else if b == 0x25, it.count >= 2, let h = hex(it[it.startIndex]), let l = hex(it[it.startIndex + 1]) {
                out.append(h << 4 | l)
                it = it.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func parseQuery(_ q: Substring) -> [String: String] {
        var result: [String: String] = [:]
        for pair in q.split(separator: "&", omittingEmptySubsequences: true) {
            if let eq = pair.firstIndex(of: "=") {
                result[percentDecode(pair[..<eq], plusIsSpace: true)] =
                    percentDecode(pair[pair.index(after: eq)...], plusIsSpace: true)
            } else {
                result[percentDecode(pair, plusIsSpace: true)] = ""
            }
        }
        return result
    }

    private static func hex(_ b: UInt8) -> UInt8? { Hex.value(b) }
}

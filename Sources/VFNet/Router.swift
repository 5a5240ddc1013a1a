/// Maps method + path to handlers. Patterns are split on "/"; each segment is a literal or
/// `{name}` (one whole segment); a pattern matches paths with exactly as many segments.
/// GET routes also answer HEAD (the server drops the body). Unmatched paths get `notFound`;
/// a path that matches with another method gets 405 with `Allow`.
public struct Router: Sendable {
    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    struct Route: Sendable {
        let method: String
        let pattern: String
        let segments: [Segment]
        let handler: HTTPHandler
    }

    struct WebSocketRoute: Sendable {
        let pattern: String
        let segments: [Segment]
        let accept: @Sendable (HTTPRequest) -> WebSocketHandlers?
    }

    enum Match {
        case handler(HTTPHandler)
        case webSocket(@Sendable (HTTPRequest) -> WebSocketHandlers?)
        case methodNotAllowed(allow: String)
        case notFound
    }

    private var routes: [Route] = []
    private var webSocketRoutes: [WebSocketRoute] = []
    /// Exact-path index of routes without parameters: most requests skip the segment matching.
    private var literalIndex: [String: [Int]] = [:]

    /// Called for requests no route matches (default: 404 `{"detail":"Not Found"}`).
    public var notFound: HTTPHandler = { _, responder in responder.respond(.error(404)) }

    public init() {}

    public mutating func add(_ method: String, _ pattern: String, _ handler: @escaping HTTPHandler) {
        let segments = Router.parse(pattern)
        routes.append(Route(method: method, pattern: pattern, segments: segments, handler: handler))
        if !segments.contains(where: { if case .parameter = $0 { return true } else { return false } }) {
            literalIndex[Router.normalized(pattern), default: []].append(routes.count - 1)
        }
    }

    public mutating func get(_ p: String, _ h: @escaping HTTPHandler) { add("GET", p, h) }
    public mutating func post(_ p: String, _ h: @escaping HTTPHandler) { add("POST", p, h) }
    public mutating func put(_ p: String, _ h: @escaping HTTPHandler) { add("PUT", p, h) }
    public mutating func delete(_ p: String, _ h: @escaping HTTPHandler) { add("DELETE", p, h) }
    public mutating func patch(_ p: String, _ h: @escaping HTTPHandler) { add("PATCH", p, h) }

    /// WebSocket upgrade on GET `pattern`. `accept` runs on the loop; nil refuses (400).
    public mutating func webSocket(_ pattern: String, _ accept: @escaping @Sendable (HTTPRequest) -> WebSocketHandlers?)
    {
        webSocketRoutes.append(WebSocketRoute(pattern: pattern, segments: Router.parse(pattern), accept: accept))
    }

    /// Finds the handler for `request`, filling `pathParameters` and `routePattern`.
    func match(_ request: inout HTTPRequest, upgrade: Bool) -> Match {
        let path = request.path
        if upgrade, let ws = matchWebSocket(&request) { return ws }
        let isHead = request.method == "HEAD"
        var allowed: [String] = []
        if let indices = literalIndex[Router.normalized(path)] {
            for i in indices {
                let route = routes[i]
                if route.method == request.method || (isHead && route.method == "GET") {
                    request.routePattern = route.pattern
                    return .handler(route.handler)
                }
                allowed.append(route.method)
            }
        }
        let pathSegments = Router.split(path)
        var fallbackGet: Route?
        for route in routes {
            guard route.segments.count == pathSegments.count, let params = Router.bind(route.segments, pathSegments)
            else {
                continue
            }
            if route.method == request.method {
                request.pathParameters = params
                request.routePattern = route.pattern
                return .handler(route.handler)
            }
            if isHead && route.method == "GET" && fallbackGet == nil {
                fallbackGet = route
                request.pathParameters = params
            }
            if !allowed.contains(route.method) { allowed.append(route.method) }
        }
        if let route = fallbackGet {
            request.routePattern = route.pattern
            return .handler(route.handler)
        }
        if allowed.isEmpty {
            // A plain request on a WebSocket path is answered by the upgrade check (426).
            if !upgrade, let ws = matchWebSocket(&request) { return ws }
            return .notFound
        }
        if allowed.contains("GET") && !allowed.contains("HEAD") { allowed.append("HEAD") }
        return .methodNotAllowed(allow: allowed.joined(separator: ", "))
    }

    /// Runs what `match` found: the handler, `notFound`, or 405 with `Allow`.
    func dispatch(_ match: Match, _ req: HTTPRequest, _ responder: HTTPResponder) {
        switch match {
        case .handler(let handler): handler(req, responder)
        case .notFound: notFound(req, responder)
        case .methodNotAllowed(let allow):
            var r = HTTPResponse.error(405)
            r.headers.add("Allow", allow)
            responder.respond(r)
        case .webSocket: responder.respond(.error(426))
        }
    }

    private func matchWebSocket(_ request: inout HTTPRequest) -> Match? {
        guard !webSocketRoutes.isEmpty else { return nil }
        let pathSegments = Router.split(request.path)
        for route in webSocketRoutes {
            if let params = Router.bind(route.segments, pathSegments) {
                request.pathParameters = params
                request.routePattern = route.pattern
                return .webSocket(route.accept)
            }
        }
        return nil
    }

    static func parse(_ pattern: String) -> [Segment] {
        split(pattern).map { s in
            if s.hasPrefix("{") && s.hasSuffix("}") && s.count >= 2 {
                return .parameter(String(s.dropFirst().dropLast()))
            }
            return .literal(s)
        }
    }

    /// "/a/b" → ["a", "b"]; "/" → []; a trailing slash is kept as an empty segment.
    static func split(_ path: String) -> [String] {
        var p = Substring(path)
        if p.hasPrefix("/") { p = p.dropFirst() }
        if p.isEmpty { return [] }
        return p.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    }

    private static func normalized(_ path: String) -> String {
        path.hasPrefix("/") ? path : "/" + path
    }

    private static func bind(_ segments: [Segment], _ path: [String]) -> [String: String]? {
        guard segments.count == path.count else { return nil }
        var params: [String: String] = [:]
        for (segment, value) in zip(segments, path) {
            switch segment {
            case .literal(let l): if l != value { return nil }
            case .parameter(let name):
                if value.isEmpty { return nil }
                params[name] = value
            }
        }
        return params
    }
}

import Foundation
import Logging
import VFBus
import VFControl
import VFCore
import VFNet
import VFStore
import VFText

/// Wires the service layer to VFNet: routes, CORS, bearer auth and request metrics. Handlers only
/// move bytes; every database call is queued on the `DatabasePool` and answered from its thread
/// through the `HTTPResponder`, so the event loops never wait on PostgreSQL.
public final class APIServer: Sendable {
    public let config: APIConfiguration
    public let pool: DatabasePool
    let service: StreamService
    let zones: ZoneService
    let validator: StreamValidator
    /// The API's metrics; the motion events' counters (EventMetrics) register in the same registry.
    public let metrics = APIMetrics()
    let redis: RedisHealth
    let openAPI: [UInt8]
    let staticFiles: StaticFiles?
    /// Whether the dashboard folder was found (else only the API is served).
    public var servesDashboard: Bool { staticFiles != nil }
    private let fileQueue = DispatchQueue(label: "vectorflow-api.static", attributes: .concurrent)

    /// Waits (without holding a thread) for the worker runtime's next pass after an activation and
    /// reports its error for that stream, if any; nil when no runtime is wired.
    let workerStarted: WorkerStartObserver?
    /// This instance's role among replicas for /health ("leader" or "standby"); nil leaves it out.
    let role: @Sendable () -> String?

    public init(
        config: APIConfiguration, redis: RedisClient?, observer: any DesiredStateObserver = NoDesiredStateObserver(),
        statuses: (@Sendable ([String]) -> [String: JSONValue])? = nil, workerStarted: WorkerStartObserver? = nil,
        role: @escaping @Sendable () -> String? = { nil }
    ) {
        self.role = role
        self.config = config
        self.workerStarted = workerStarted
        pool = DatabasePool(url: config.databaseURL, size: config.databasePoolSize)
        validator = StreamValidator(mediaDirectory: config.mediaDirectory)
        service = StreamService(observer: observer, statuses: statuses, log: { apiLog.error("\($0)") })
        zones = ZoneService(observer: observer, log: { apiLog.error("\($0)") })
        self.redis = RedisHealth(client: redis)
        openAPI = JSONSerializer.encode(
            OpenAPIDocument.build(
                mediaDirectory: config.mediaDirectory, authRequired: config.apiToken != nil, version: BuildInfo.version))
        staticFiles = StaticFiles(directory: config.staticDir)
    }

    /// Connects (and applies init.sql) right away rather than on the first request. Called once the
    /// port is bound; a database that is not there yet is retried by later requests.
    public func connectDatabase() {
        pool.submit { db in
            if !db.ping() { apiLog.warning("database not reachable yet; answering 503 until it is") }
        }
    }

    /// How long `POST /streams/{id}/activate` waits for the worker runtime before answering.
    static let activationWait: Double = 15

    // MARK: Routes

    /// The router: every operation of the route table (OpenAPIDocument.operations) with the
    /// handler of its id, behind the token check where the table says so; then the docs' assets.
    public func makeRouter() -> Router {
        var r = Router()
        // Swagger UI and ReDoc from the installed package's files, else the built-in page (DocsPage.swift).
        let docs = DocsAssets.load(directory: config.docsAssetsDir) { apiLog.notice("\($0)") }
        let builtIn = HTTPResponse.text(DocsPage.html, contentType: "text/html; charset=utf-8")
        let handlers = self.handlers(docsPage: docs.swaggerPage.map(DocsAssets.page) ?? builtIn)
        for op in OpenAPIDocument.operations {
            guard let h = handlers[op.id] else { preconditionFailure("no handler for operation \(op.id)") }
            r.add(op.method, op.path, op.authenticated ? authorized(h) : h)
        }
        let redocPage = docs.redocPage.map(DocsAssets.page) ?? builtIn
        r.get("/redoc") { _, res in res.respond(redocPage) }
        for (path, file) in docs.files {
            let answer = HTTPResponse(
                status: 200, headers: HTTPHeaders([("Content-Type", file.contentType)]), body: file.body)
            r.get(path) { _, res in res.respond(answer) }
        }
        r.notFound = { [self] req, res in
            guard req.method == "GET" || req.method == "HEAD", let files = staticFiles else {
                return res.respond(.json(raw: APIError.notFound.body, status: 404))
            }
            let path = req.path
            fileQueue.async {
                if let f = files.load(path: path) {
                    res.respond(
                        HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", f.contentType)]), body: f.body)
                    )
                } else {
                    res.respond(.json(raw: APIError.notFound.body, status: 404))
                }
            }
        }
        return r
    }

    /// The handler of each operation of the route table, by its id.
    private func handlers(docsPage: HTTPResponse) -> [String: HTTPHandler] {
        let service = self.service
        let validator = self.validator
        let zones = self.zones
        let spec = openAPI
        return [
            "health": { [self] _, res in database(res) { db in self.health(db) } },
            "list_streams": { [self] _, res in database(res) { db in Self.answer(service.list(db)) } },
            "create_stream": { [self] req, res in
                let body = req.body
                let ct = req.headers["Content-Type"]
                database(res) { db in
                    switch validator.validate(body, contentType: ct, mode: .create) {
                    case .failure(let e): return e.response
                    case .success(let fields): return Self.answer(service.create(fields, db), status: 201)
                    }
                }
            },
            "get_stream": { [self] req, res in
                withID(req, res) { id, db in Self.answer(service.get(id: id, db)) }
            },
            "update_stream": { [self] req, res in
                let body = req.body
                let ct = req.headers["Content-Type"]
                withID(req, res) { id, db in
                    switch validator.validate(body, contentType: ct, mode: .update) {
                    case .failure(let e): return e.response
                    case .success(let fields): return Self.answer(service.update(id: id, fields, db))
                    }
                }
            },
            "delete_stream": { [self] req, res in
                withID(req, res) { id, db in
                    switch service.delete(id: id, db) {
                    case .success: return HTTPResponse(status: 204)
                    case .failure(let e): return e.apiError.response
                    }
                }
            },
            "activate_stream": { [self] req, res in activate(req, res) },
            "deactivate_stream": { [self] req, res in
                withID(req, res) { id, db in Self.answer(service.setActive(id: id, false, db)) }
            },
            "list_zones": { [self] req, res in
                withID(req, res) { id, db in Self.answer(zones.list(streamID: id, db)) }
            },
            "create_zone": { [self] req, res in
                let body = req.body
                let ct = req.headers["Content-Type"]
                withID(req, res) { id, db in
                    switch ZoneValidator.validate(body, contentType: ct, mode: .create) {
                    case .failure(let e): return e.response
                    case .success(let fields): return Self.answer(zones.create(streamID: id, fields, db), status: 201)
                    }
                }
            },
            "get_zone": { [self] req, res in
                withZoneID(req, res) { id, zoneID, db in Self.answer(zones.get(streamID: id, id: zoneID, db)) }
            },
            "update_zone": { [self] req, res in
                let body = req.body
                let ct = req.headers["Content-Type"]
                withZoneID(req, res) { id, zoneID, db in
                    switch ZoneValidator.validate(body, contentType: ct, mode: .update) {
                    case .failure(let e): return e.response
                    case .success(let fields): return Self.answer(zones.update(streamID: id, id: zoneID, fields, db))
                    }
                }
            },
            "delete_zone": { [self] req, res in
                withZoneID(req, res) { id, zoneID, db in
                    switch zones.delete(streamID: id, id: zoneID, db) {
                    case .success: return HTTPResponse(status: 204)
                    case .failure(let e): return e.apiError.response
                    }
                }
            },
            "list_events": { [self] req, res in
                switch EventRoutes.query(req.query) {
                case .failure(let e): res.respond(e.response)
                case .success(let q):
                    database(res) { db in
                        do throws(DatabaseError) {
                            let (events, next) = try EventRepository.list(db, q)
                            return EventRoutes.listAnswer(events, next: next)
                        } catch {
                            return error.apiError.response
                        }
                    }
                }
            },
            "get_event": { [self] req, res in
                withID(req, res) { id, db in
                    do throws(DatabaseError) {
                        guard let e = try EventRepository.get(db, id: id) else {
                            return EventRoutes.eventNotFound.response
                        }
                        return EventRoutes.eventAnswer(e, deliveries: try EventRepository.deliveries(db, eventID: id))
                    } catch {
                        return error.apiError.response
                    }
                }
            },
            "get_event_snapshot": { [self] req, res in
                withID(req, res) { id, db in
                    do throws(DatabaseError) {
                        guard let jpeg = try EventRepository.snapshot(db, id: id) else {
                            return EventRoutes.snapshotNotFound.response
                        }
                        return HTTPResponse(
                            status: 200,
                            headers: HTTPHeaders([
                                ("Content-Type", "image/jpeg"), ("Cache-Control", "private, max-age=60"),
                            ]),
                            body: jpeg)
                    } catch {
                        return error.apiError.response
                    }
                }
            },
            "metrics": { [self] _, res in
                database(res) { db in
                    if let c = try? StreamRepository.counts(db) {
                        self.metrics.managedStreams.set(to: Double(c.managed))
                        self.metrics.activeStreams.set(to: Double(c.active))
                    }
                    return HTTPResponse(
                        status: 200,
                        headers: HTTPHeaders([("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]),
                        body: self.metrics.render())
                }
            },
            "openapi": { _, res in res.respond(.json(raw: spec)) },
            "docs": { _, res in res.respond(docsPage) },
        ]
    }

    /// The stream operations' answers: the stream (or the list) as JSON, a failure as its error.
    static func answer(_ r: Result<CameraStream, StreamError>, status: Int = 200) -> HTTPResponse {
        switch r {
        case .success(let s): return .json(raw: s.json, status: status)
        case .failure(let e): return e.apiError.response
        }
    }

    static func answer(_ r: Result<[CameraStream], StreamError>) -> HTTPResponse {
        switch r {
        case .failure(let e): return e.apiError.response
        case .success(let streams):
            var w = JSONWriter(capacity: streams.count * 320 + 2)
            w.raw("[")
            for (k, s) in streams.enumerated() {
                if k > 0 { w.raw(",") }
                s.write(to: &w)
            }
            w.raw("]")
            return .json(raw: w.bytes)
        }
    }

    /// The `{id}` path parameter as a canonical UUID (else FastAPI's 422, before any query), then
    /// `work` on a database pool thread.
    private func withID(
        _ req: HTTPRequest, _ res: HTTPResponder, _ work: @escaping @Sendable (String, Database) -> HTTPResponse?
    ) {
        let raw = req.pathParameters["id"] ?? ""
        guard let id = UUIDText.canonical(raw) else { return res.respond(UUIDText.issue(raw).response) }
        database(res) { db in work(id, db) }
    }

    /// `{id}` and `{zone_id}` as canonical UUIDs (both checked, both reported), then `work`.
    private func withZoneID(
        _ req: HTTPRequest, _ res: HTTPResponder, _ work: @escaping @Sendable (String, String, Database) -> HTTPResponse?
    ) {
        let raw = req.pathParameters["id"] ?? ""
        let rawZone = req.pathParameters["zone_id"] ?? ""
        let id = UUIDText.canonical(raw)
        let zoneID = UUIDText.canonical(rawZone)
        guard let id, let zoneID else {
            var issues: [ValidationIssue] = []
            if id == nil { issues += UUIDText.issue(raw).issues }
            if zoneID == nil { issues += UUIDText.issue(rawZone, field: "zone_id").issues }
            return res.respond(APIError(issues: issues).response)
        }
        database(res) { db in work(id, zoneID, db) }
    }

    static func answer(_ r: Result<Zone, ZoneError>, status: Int = 200) -> HTTPResponse {
        switch r {
        case .success(let z): return .json(raw: z.json, status: status)
        case .failure(let e): return e.apiError.response
        }
    }

    static func answer(_ r: Result<[Zone], ZoneError>) -> HTTPResponse {
        switch r {
        case .failure(let e): return e.apiError.response
        case .success(let zones):
            var w = JSONWriter(capacity: zones.count * 512 + 2)
            w.raw("[")
            for (k, z) in zones.enumerated() {
                if k > 0 { w.raw(",") }
                z.write(to: &w)
            }
            w.raw("]")
            return .json(raw: w.bytes)
        }
    }

    /// `POST /streams/{id}/activate`: answers once the runtime has acted on it: the engine's error
    /// (502/503) if it refused, else the stream. A slow engine (an image build) gets the stream
    /// after `activationWait` seconds; the worker's status then tells the rest.
    private func activate(_ req: HTTPRequest, _ res: HTTPResponder) {
        let service = self.service
        let waitForWorker = workerStarted
        withID(req, res) { id, db in
            let answer = Self.answer(service.setActive(id: id, true, db))
            guard answer.status == 200, let waitForWorker else { return answer }
            let loop = res.eventLoop
            let fallback = loop.schedule(after: Self.activationWait) { res.respond(answer) }
            waitForWorker(id) { failure in
                loop.cancel(fallback)
                if let failure {
                    let detail = Credentials.maskText(failure.message)
                    res.respond(APIError(status: failure.status, detail: detail).response)
                } else if !self.pool.submit({ db in
                    // The worker runs: answer with the row as it is now, its worker fields filled in.
                    let now = Self.answer(service.get(id: id, db))
                    res.respond(now.status == 200 ? now : answer)
                }) {
                    res.respond(answer)
                }
            }
            return nil
        }
    }

    /// Requires `Authorization: Bearer <VF_API_TOKEN>` when a token is configured: every stream
    /// read and change, and the metrics (the live frames check it in the upgrade hook). Checked in
    /// the handlers themselves (not before routing), so unknown paths and methods still get their
    /// 404/405 as in FastAPI, where auth is a dependency of the operation.
    private func authorized(_ handler: @escaping HTTPHandler) -> HTTPHandler {
        guard let token = config.apiToken.map({ Array($0.utf8) }) else { return handler }
        return { req, res in
            guard let sent = bearerToken(req.headers["Authorization"]), constantTimeEqual(sent, token) else {
                var r = HTTPResponse.json(raw: APIError.notAuthenticated.body, status: 401)
                r.headers.add("WWW-Authenticate", "Bearer")
                return res.respond(r)
            }
            handler(req, res)
        }
    }

    /// Runs `work` on a database pool thread and answers with its result; 503 when the queue is full.
    /// `work` answers, or returns nil when it answers `res` itself later.
    private func database(_ res: HTTPResponder, _ work: @escaping @Sendable (Database) -> HTTPResponse?) {
        let queued = pool.submit { db in
            if let answer = work(db) { res.respond(answer) }
        }
        if !queued { res.respond(.json(raw: APIError.busy.body, status: 503)) }
    }

    /// `database`: "ok", "down" (refused: stopped or restarting) or "timeout" (not answering within
    /// the call's bound: frozen, partitioned, overloaded); `detail` then matches the routes' 503s.
    private func health(_ db: Database) -> HTTPResponse {
        let dbState = db.state()
        let dbUp = dbState == .ok
        let redisState = redis.state()
        var members: [(String, JSONValue)] = [
            ("status", .string(dbUp ? "ok" : "unavailable")),
            ("database", .string(dbState.rawValue)),
            ("redis", .string(redisState)),
        ]
        if let role = role() { members.append(("role", .string(role))) }
        if !dbUp {
            let error: APIError = dbState == .timeout ? .databaseTimeout : .databaseUnavailable
            members.append(("detail", .string(error.detail ?? "Database unavailable")))
        }
        return .json(raw: JSONSerializer.encode(.object(members)), status: dbUp ? 200 : 503)
    }

    // MARK: Hooks

    public func makeHooks() -> HTTPServerHooks {
        let origins = config.corsOrigins
        let anyOrigin = origins.contains("*")
        let hosts = config.allowedHosts
        let token = config.apiToken.map { Array($0.utf8) }
        let metrics = self.metrics
        let accessLog = config.accessLog ? Logger(label: "vectorflow-api.access") : nil

        /// The request's own origin, as a browser on a page the API served would send it.
        @Sendable func isSameOrigin(_ origin: String, _ req: HTTPRequest) -> Bool {
            guard let host = req.headers["Host"] else { return false }
            return origin == "http://\(host)" || origin == "https://\(host)"
        }

        @Sendable func allowedOrigin(_ req: HTTPRequest) -> String? {
            guard let origin = req.headers["Origin"] else { return nil }
            if anyOrigin { return "*" }
            return origins.contains(origin) || isSameOrigin(origin, req) ? origin : nil
        }

        @Sendable func hostAllowed(_ req: HTTPRequest) -> Bool {
            guard !hosts.isEmpty else { return true }
            guard let host = req.headers["Host"]?.lowercased() else { return false }
            if hosts.contains(host) { return true }
            // Without its port (a bracketed IPv6 literal keeps its brackets).
            if let colon = host.lastIndex(of: ":"), !host[colon...].contains("]") {
                return hosts.contains(String(host[..<colon]))
            }
            return false
        }

        /// The live frames are as private as the streams: a configured token is needed, sent as a
        /// bearer header, a `bearer.<token>` WebSocket subprotocol (what a browser can send), or
        /// an `access_token` query parameter.
        @Sendable func upgradeAuthorized(_ req: HTTPRequest) -> Bool {
            guard let token else { return true }
            if let sent = bearerToken(req.headers["Authorization"]), constantTimeEqual(sent, token) { return true }
            for offered in (req.headers["Sec-WebSocket-Protocol"] ?? "").split(separator: ",") {
                let p = offered.trimmingCharacters(in: .whitespaces)
                if p.hasPrefix("bearer."), constantTimeEqual(Array(p.utf8.dropFirst(7)), token) { return true }
            }
            if let q = req.query["access_token"], constantTimeEqual(Array(q.utf8), token) { return true }
            return false
        }

        let before: @Sendable (HTTPRequest) -> HTTPResponse? = { req in
            guard hostAllowed(req) else { return .json(raw: APIError.invalidHost.body, status: 400) }
            if req.headers["Upgrade"]?.lowercased() == "websocket" {
                // Any page a user visits could open a socket to the API: only allowed origins may.
                if req.headers["Origin"] != nil, allowedOrigin(req) == nil {
                    return .json(raw: APIError.originNotAllowed.body, status: 403)
                }
                if !upgradeAuthorized(req) {
                    var r = HTTPResponse.json(raw: APIError.notAuthenticated.body, status: 401)
                    r.headers.add("WWW-Authenticate", "Bearer")
                    return r
                }
            }
            if req.method == "OPTIONS", req.headers["Access-Control-Request-Method"] != nil,
                req.headers["Origin"] != nil
            {
                var h = HTTPHeaders()
                if let o = allowedOrigin(req) {
                    h.add("Access-Control-Allow-Origin", o)
                    h.add("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
                    h.add(
                        "Access-Control-Allow-Headers",
                        req.headers["Access-Control-Request-Headers"] ?? "Authorization, Content-Type")
                    h.add("Access-Control-Max-Age", "600")
                }
                if !anyOrigin { h.add("Vary", "Origin") }
                return HTTPResponse(status: 204, headers: h)
            }
            return nil
        }
        let after: @Sendable (HTTPRequest, inout HTTPResponse, Double) -> Void = { req, res, seconds in
            if let o = allowedOrigin(req), res.headers["Access-Control-Allow-Origin"] == nil {
                res.headers.add("Access-Control-Allow-Origin", o)
                if !anyOrigin { res.headers.add("Vary", "Origin") }
            }
            metrics.observe(
                method: req.method, route: req.routePattern ?? "unmatched", status: res.status, seconds: seconds)
            // One line per request: the route pattern (never a query string, which may hold a token).
            if let accessLog {
                accessLog.info(
                    "\(req.method) \(req.routePattern ?? req.path) \(res.status) \(Self.milliseconds(seconds)) ms")
            }
        }
        return HTTPServerHooks(before: before, after: after)
    }
}

extension APIServer {
    /// `seconds` in milliseconds with three decimals, for the access log.
    static func milliseconds(_ seconds: Double) -> String {
        let micros = Int((seconds * 1e6).rounded())
        let frac = String(micros % 1000)
        return "\(micros / 1000).\(String(repeating: "0", count: 3 - frac.count))\(frac)"
    }
}

/// The credentials of `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 7235 §2.1).
func bearerToken(_ header: String?) -> [UInt8]? {
    guard let header else { return nil }
    let bytes = Array(header.utf8)
    guard bytes.count > 7, String(decoding: bytes[0..<6], as: UTF8.self).lowercased() == "bearer", bytes[6] == 0x20
    else { return nil }
    return Array(bytes[7...].drop { $0 == 0x20 })
}

/// Compares secrets without an early exit, so timing does not reveal how much of a guess matched.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var diff = UInt8(a.count == b.count ? 0 : 1)
    for i in 0..<b.count { diff |= (i < a.count ? a[i] : 0) ^ b[i] }
    return diff == 0
}

extension APIError {
    var response: HTTPResponse { .json(raw: body, status: status) }
}

extension StreamError {
    /// The API's answer for each failure of the stream service.
    var apiError: APIError {
        switch self {
        case .notFound: return .streamNotFound
        case .databaseUnavailable: return .databaseUnavailable
        case .databaseTimeout: return .databaseTimeout
        case .databaseFailed: return .internalError
        }
    }
}

extension ZoneError {
    /// The API's answer for each failure of the zone service.
    var apiError: APIError {
        switch self {
        case .streamNotFound: return .streamNotFound
        case .zoneNotFound: return APIError(status: 404, detail: "Zone not found")
        case .invalid(let e): return e
        case .nameTaken: return APIError(status: 409, detail: "A zone of this stream has this name already")
        case .tooMany:
            return APIError(
                status: 409, detail: "A stream has at most \(ZoneRules.maxZonesPerStream) zones: delete one first")
        case .database(let e): return e.apiError
        }
    }
}

/// The API's own log lines (besides the access log).
let apiLog = Logger(label: "vectorflow-api")

/// One part of a validation error's location: an object key or an array index.
public enum LocPart: Sendable, Equatable {
    case key(String)
    case index(Int)
}

/// One entry of a FastAPI-style 422 body: `{"type","loc","msg"}` (plus `ctx` when it helps).
public struct ValidationIssue: Sendable, Equatable {
    public let type: String
    public let loc: [LocPart]
    public let msg: String
    public let ctx: JSONValue?

    public init(type: String, loc: [LocPart], msg: String, ctx: JSONValue? = nil) {
        self.type = type
        self.loc = loc
        self.msg = msg
        self.ctx = ctx
    }

    var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("type", .string(type)),
            (
                "loc",
                .array(
                    loc.map { part in
                        switch part {
                        case .key(let k): return .string(k)
                        case .index(let i): return .int(i)
                        }
                    })
            ),
            ("msg", .string(msg)),
        ]
        if let ctx { members.append(("ctx", ctx)) }
        return .object(members)
    }
}

/// An error answer in FastAPI's shape, so clients of the original keep working:
/// `{"detail": "..."}`, or `{"detail": [issue, ...]}` with status 422.
/// This is the API's one error type; every handler failure becomes one of these.
public struct APIError: Error, Sendable, Equatable {
    public let status: Int
    public let detail: String?
    public let issues: [ValidationIssue]

    public init(status: Int, detail: String) {
        self.status = status
        self.detail = detail
        self.issues = []
    }

    public init(issues: [ValidationIssue]) {
        self.status = 422
        self.detail = nil
        self.issues = issues
    }

    public var body: [UInt8] {
        let d: JSONValue = detail.map { .string($0) } ?? .array(issues.map(\.json))
        return JSONSerializer.encode(.object([("detail", d)]))
    }

    public static let notFound = APIError(status: 404, detail: "Not Found")
    public static let streamNotFound = APIError(status: 404, detail: "Stream not found")
    public static let unsupportedMediaType = APIError(
        status: 415, detail: "Unsupported Media Type: use application/json")
    public static let notAuthenticated = APIError(status: 401, detail: "Not authenticated")
    public static let invalidHost = APIError(status: 400, detail: "Invalid host header")
    public static let originNotAllowed = APIError(status: 403, detail: "Origin not allowed")
    public static let databaseUnavailable = APIError(status: 503, detail: "Database unavailable")
    /// The database did not answer within its bound (see `DatabaseTimeouts`).
    public static let databaseTimeout = APIError(status: 503, detail: "Database timeout")
    /// An unexpected database failure; the details go to the log, not to the client.
    public static let internalError = APIError(status: 500, detail: "Internal Server Error")
    public static let busy = APIError(status: 503, detail: "Server busy, retry later")
}

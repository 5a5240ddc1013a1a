import Foundation
import VFControl
import VFCore
import VFRuntime

/// Settings of `vectorflow-api`, from flags or the environment (see docs/api.md).
public struct APIConfiguration: Sendable {
    public var databaseURL: String
    public var redisURL: String
    public var host: String
    public var port: Int
    public var apiToken: String?
    public var allowFileSources: Bool
    /// `VF_MEDIA_DIR`: the one folder `file://` sources may come from (required with
    /// `VF_ALLOW_FILE_SOURCES`); nil when file sources are off.
    public var mediaDirectory: String?
    public var staticDir: String
    /// `["*"]` for any origin, else the exact origins allowed besides the API's own (same origin:
    /// the scheme and `Host` of the request itself), for CORS and for WebSocket upgrades.
    public var corsOrigins: [String]
    /// `VF_ALLOWED_HOSTS`: the `Host` values (with or without port) the API answers; empty: any.
    /// Set it where a browser can reach the API, against DNS rebinding.
    public var allowedHosts: [String]
    public var databasePoolSize: Int
    /// `VF_STOP_WORKERS_ON_EXIT`: on SIGTERM/SIGINT, stop every worker before exiting (compose, so
    /// that `docker compose down` leaves none behind; the desired state restarts them at the next
    /// start). Off by default: the next API instance adopts the running workers instead.
    public var stopWorkersOnExit: Bool
    /// `VF_DOCS_ASSETS_DIR`: Swagger UI's and ReDoc's files (DocsAssets); without them, /docs and
    /// /redoc serve the built-in page.
    public var docsAssetsDir: String
    /// `VF_ACCESS_LOG`: one info line per request.
    public var accessLog: Bool
    /// The motion events' consumer, webhooks and retention (VF_EVENTS_*, VF_WEBHOOK_*, VF_EVENT_*).
    public var events: EventSettings

    /// `host:port` of the platform's own services, which the source policy always denies to
    /// workers: the database, Redis, and this API (on loopback when it listens on every address).
    public var platformServices: [String] {
        var out = [SourceEndpoint(databaseURL, defaultPort: 5432)?.rule, SourceEndpoint(redisURL, defaultPort: 6379)?.rule]
            .compactMap { $0 }
        if port != 0 {
            if host == "0.0.0.0" || host == "::" || host.isEmpty {
                out += ["127.0.0.0/8:\(port)", "[::1]:\(port)"]
            } else {
                out.append(host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
            }
        }
        return out
    }

    /// Every setting of `vectorflow-api`, declared once: `--help` lists them and the command line
    /// accepts no other flag. A new setting is one line here, read in `init` below.
    public static let declarations: [Setting] =
        LogSettings.declarations + [
            .string(
                "DATABASE_URL", "postgresql://vectorflow:vectorflow@localhost:5432/vectorflow",
                "PostgreSQL (libpq URI); init.sql is applied at start, idempotently"),
            .string("REDIS_URL", "redis://localhost:6379/0", "Redis (live frames, worker status, viewer marks)"),
            .string("VF_HOST", "0.0.0.0", "listen address"),
            .int("VF_PORT", 8000, "listen port (0: a free port)"),
            .string(
                "VF_API_TOKEN", nil,
                "when set, stream operations, /metrics and /ws/frames need `Authorization: Bearer <token>`"),
            .bool("VF_ALLOW_FILE_SOURCES", false, "accept file:// stream URLs (inside VF_MEDIA_DIR)"),
            .string("VF_MEDIA_DIR", nil, "required with VF_ALLOW_FILE_SOURCES: the folder file:// sources must be in"),
            .string("VF_STATIC_DIR", "frontend-static", "dashboard files served at /"),
            .string("VF_CORS_ORIGINS", "", "comma-separated origins allowed besides the API's own (* for any)"),
            .string("VF_ALLOWED_HOSTS", "", "comma-separated Host values the API answers (empty: any)"),
            .int("VF_DB_POOL_SIZE", 4, "database connections (one pool thread each), 1-64"),
            .bool("VF_STOP_WORKERS_ON_EXIT", false, "on SIGTERM/SIGINT, stop every worker before exiting"),
            .string(
                "VF_DOCS_ASSETS_DIR", DocsAssets.defaultDirectory, "Swagger UI's and ReDoc's files for /docs and /redoc"
            ),
            .bool("VF_ACCESS_LOG", true, "one log line per HTTP request (method, route, status, ms), at info"),
        ] + EventSettings.declarations + RuntimeSettings.declarations

    public init(_ c: ConfigurationSource) throws(ConfigurationError) {
        databaseURL = c.string("DATABASE_URL")
        guard databaseURL.hasPrefix("postgresql://") || databaseURL.hasPrefix("postgres://") else {
            throw ConfigurationError("DATABASE_URL must be a postgresql:// URL, got \"\(databaseURL)\"")
        }
        redisURL = c.string("REDIS_URL")
        guard redisURL.hasPrefix("redis://") || redisURL.hasPrefix("unix://") || redisURL.hasPrefix("rediss://") else {
            throw ConfigurationError("REDIS_URL must be a redis:// URL, got \"\(redisURL)\"")
        }
        host = c.string("VF_HOST")
        port = try c.int("VF_PORT", range: 0...65535)
        apiToken = c.raw("VF_API_TOKEN")
        if let t = apiToken, t.contains(where: { $0 == " " || $0 == "\n" || $0 == "\r" }) {
            throw ConfigurationError("VF_API_TOKEN must not contain spaces or line breaks")
        }
        allowFileSources = try c.bool("VF_ALLOW_FILE_SOURCES")
        mediaDirectory = nil
        if allowFileSources {
            guard let dir = c.raw("VF_MEDIA_DIR") else {
                throw ConfigurationError(
                    "VF_ALLOW_FILE_SOURCES needs VF_MEDIA_DIR: the folder file:// sources may come from")
            }
            guard StreamRules.isValidMediaDirectory(dir) else {
                throw ConfigurationError(
                    "VF_MEDIA_DIR must be an absolute path without . or .. segments, got \"\(dir)\"")
            }
            mediaDirectory = dir
        }
        staticDir = c.string("VF_STATIC_DIR")
        let origins = c.string("VF_CORS_ORIGINS")
            .split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for o in origins where o != "*" && !(o.hasPrefix("http://") || o.hasPrefix("https://")) {
            throw ConfigurationError(
                "VF_CORS_ORIGINS must be * or a comma-separated list of http(s) origins, got \"\(o)\"")
        }
        corsOrigins = origins
        allowedHosts = c.string("VF_ALLOWED_HOSTS")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
        databasePoolSize = try c.int("VF_DB_POOL_SIZE", range: 1...64)
        stopWorkersOnExit = try c.bool("VF_STOP_WORKERS_ON_EXIT")
        docsAssetsDir = c.string("VF_DOCS_ASSETS_DIR")
        accessLog = try c.bool("VF_ACCESS_LOG")
        events = try EventSettings(c)
    }
}

import Foundation
import VFCore

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

    public init(_ c: ConfigurationSource) throws(ConfigurationError) {
        databaseURL = c.string("DATABASE_URL", default: "postgresql://vectorflow:vectorflow@localhost:5432/vectorflow")
        guard databaseURL.hasPrefix("postgresql://") || databaseURL.hasPrefix("postgres://") else {
            throw ConfigurationError("DATABASE_URL must be a postgresql:// URL, got \"\(databaseURL)\"")
        }
        redisURL = c.string("REDIS_URL", default: "redis://localhost:6379/0")
        guard redisURL.hasPrefix("redis://") || redisURL.hasPrefix("unix://") || redisURL.hasPrefix("rediss://") else {
            throw ConfigurationError("REDIS_URL must be a redis:// URL, got \"\(redisURL)\"")
        }
        host = c.string("VF_HOST", default: "0.0.0.0")
        port = try c.int("VF_PORT", default: 8000, range: 0...65535)
        apiToken = c.raw("VF_API_TOKEN")
        if let t = apiToken, t.contains(where: { $0 == " " || $0 == "\n" || $0 == "\r" }) {
            throw ConfigurationError("VF_API_TOKEN must not contain spaces or line breaks")
        }
        allowFileSources = try c.bool("VF_ALLOW_FILE_SOURCES", default: false)
        mediaDirectory = nil
        if allowFileSources {
            guard let dir = c.raw("VF_MEDIA_DIR") else {
                throw ConfigurationError(
                    "VF_ALLOW_FILE_SOURCES needs VF_MEDIA_DIR: the folder file:// sources may come from")
            }
            guard StreamRules.isValidMediaDirectory(dir) else {
                throw ConfigurationError("VF_MEDIA_DIR must be an absolute path without . or .. segments, got \"\(dir)\"")
            }
            mediaDirectory = dir
        }
        staticDir = c.string("VF_STATIC_DIR", default: "frontend-static")
        let origins = c.string("VF_CORS_ORIGINS", default: "")
            .split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for o in origins where o != "*" && !(o.hasPrefix("http://") || o.hasPrefix("https://")) {
            throw ConfigurationError(
                "VF_CORS_ORIGINS must be * or a comma-separated list of http(s) origins, got \"\(o)\"")
        }
        corsOrigins = origins
        allowedHosts = c.string("VF_ALLOWED_HOSTS", default: "")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
        databasePoolSize = try c.int("VF_DB_POOL_SIZE", default: 4, range: 1...64)
        stopWorkersOnExit = try c.bool("VF_STOP_WORKERS_ON_EXIT", default: false)
        docsAssetsDir = c.string("VF_DOCS_ASSETS_DIR", default: DocsAssets.defaultDirectory)
    }
}

import Foundation
import VFCore

/// The settings of the motion events' consumer, webhooks and retention (part of
/// `vectorflow-api --help`; see docs/events.md). The webhook secret is read here and kept only
/// in memory: never logged, never answered.
public struct EventSettings: Sendable {
    /// `VF_EVENTS_CONSUMER`: this replica's name in the consumer group; stable across restarts
    /// (the host name by default), so a restarted API takes back its own pending entries at once.
    public var consumer: String
    public var batch: Int
    /// `VF_EVENTS_CLAIM_IDLE`: seconds an entry may stay pending with another consumer (a replica
    /// that died) before this one claims it.
    public var claimIdle: Double
    public var webhookURLs: [String]
    public var webhookSecret: [UInt8]?
    public var webhookTimeout: Double
    public var webhookMaxAttempts: Int
    public var webhookRetryInitial: Double
    public var webhookRetryMax: Double
    /// `VF_EVENT_RETENTION_HOURS`, in seconds.
    public var retention: Double
    public var sweepInterval: Double

    public static let declarations: [Setting] = [
        .string(
            "VF_EVENTS_CONSUMER", nil, shown: "the host name",
            "this replica's consumer name in the vectorflow-api group of vectorflow:events (stable across restarts)"),
        .int("VF_EVENTS_BATCH", 100, "motion-event entries read per XREADGROUP (1-1000)"),
        .double(
            "VF_EVENTS_CLAIM_IDLE", 60,
            "seconds an entry stays pending with another (dead) consumer before this one claims it (1-86400)"),
        .string("VF_WEBHOOK_URLS", "", "comma-separated http(s) URLs each motion event's start and end are POSTed to"),
        .string(
            "VF_WEBHOOK_SECRET", nil,
            "HMAC-SHA256 key of the X-VectorFlow-Signature header (required with VF_WEBHOOK_URLS)"),
        .string("VF_WEBHOOK_SECRET_FILE", nil, "a file holding VF_WEBHOOK_SECRET (used when that is not set)"),
        .double("VF_WEBHOOK_TIMEOUT", 5, "seconds one webhook POST may take (0.1-60)"),
        .int("VF_WEBHOOK_MAX_ATTEMPTS", 8, "attempts of one delivery before it is marked failed (1-100)"),
        .double("VF_WEBHOOK_RETRY_INITIAL", 1, "seconds before a failed delivery's first retry (0.01-3600)"),
        .double("VF_WEBHOOK_RETRY_MAX", 300, "longest delay between retries of a delivery, seconds (0.01-86400)"),
        .double("VF_EVENT_RETENTION_HOURS", 720, "hours motion events (snapshots, deliveries) are kept (0.0001-87600)"),
        .double("VF_EVENT_SWEEP_INTERVAL", 300, "seconds between retention sweeps, on the leader (0.1-86400)"),
    ]

    public init(_ c: ConfigurationSource) throws(ConfigurationError) {
        consumer = c.string("VF_EVENTS_CONSUMER", default: ProcessInfo.processInfo.hostName)
        guard !consumer.isEmpty, consumer.utf8.count <= 200, !consumer.contains(where: { $0.isWhitespace }) else {
            throw ConfigurationError("VF_EVENTS_CONSUMER must be a name without spaces (1-200 bytes)")
        }
        batch = try c.int("VF_EVENTS_BATCH", range: 1...1000)
        claimIdle = try c.double("VF_EVENTS_CLAIM_IDLE", range: 1...86400)
        webhookURLs = c.string("VF_WEBHOOK_URLS").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for u in webhookURLs {
            let lower = u.lowercased()
            guard
                (lower.hasPrefix("http://") || lower.hasPrefix("https://")) && u.utf8.count > 8 && u.utf8.count <= 2048,
                !u.contains(where: { $0.isWhitespace || $0 == "\"" })
            else {
                throw ConfigurationError(
                    "VF_WEBHOOK_URLS must be comma-separated http(s) URLs, got \"\(Credentials.maskURL(u))\"")
            }
        }
        if let s = c.raw("VF_WEBHOOK_SECRET") {
            webhookSecret = Array(s.utf8)
        } else if let path = c.raw("VF_WEBHOOK_SECRET_FILE") {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigurationError("VF_WEBHOOK_SECRET_FILE: cannot read \(path)")
            }
            // A trailing line break (echo > file) is not part of the secret.
            var bytes = Array(data)
            while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
            webhookSecret = bytes
        } else {
            webhookSecret = nil
        }
        if webhookSecret?.isEmpty == true { webhookSecret = nil }
        if !webhookURLs.isEmpty && webhookSecret == nil {
            throw ConfigurationError(
                "VF_WEBHOOK_URLS needs VF_WEBHOOK_SECRET or VF_WEBHOOK_SECRET_FILE (the signing key)")
        }
        webhookTimeout = try c.double("VF_WEBHOOK_TIMEOUT", range: 0.1...60)
        webhookMaxAttempts = try c.int("VF_WEBHOOK_MAX_ATTEMPTS", range: 1...100)
        webhookRetryInitial = try c.double("VF_WEBHOOK_RETRY_INITIAL", range: 0.01...3600)
        webhookRetryMax = try c.double("VF_WEBHOOK_RETRY_MAX", range: 0.01...86400)
        retention = try c.double("VF_EVENT_RETENTION_HOURS", range: 0.0001...87600) * 3600
        sweepInterval = try c.double("VF_EVENT_SWEEP_INTERVAL", range: 0.1...86400)
    }
}

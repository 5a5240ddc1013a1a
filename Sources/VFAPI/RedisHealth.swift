import VFBus

/// Redis's state for `/health`, through the bus's reconnecting client (it fails fast while
/// Redis is down, so a health check never waits longer than the client's timeout).
final class RedisHealth: Sendable {
    private let client: RedisClient?

    init(client: RedisClient?) { self.client = client }

    /// "ok" or "down" ("unknown" without a client). Blocking: called on a pool thread.
    func state() -> String {
        guard let client else { return "unknown" }
        return client.ping() ? "ok" : "down"
    }
}

/// Every limit of the HTTP/WebSocket server in one place; each comment names the answer a breach gets.
public struct HTTPLimits: Sendable {
    public var maxRequestLineBytes = 8 * 1024  // 414 URI Too Long
    public var maxHeaderBytes = 64 * 1024  // 431
    public var maxHeaderCount = 100  // 431
    public var maxBodyBytes = 1 * 1024 * 1024  // 413
    public var headerReadTimeout: Double = 10  // 408 and close (slowloris)
    public var bodyReadTimeout: Double = 30  // 408 and close
    public var idleTimeout: Double = 60  // keep-alive idle: close silently
    public var outputLowWatermark = 32 * 1024  // resume reading below this
    public var outputHighWatermark = 64 * 1024  // stop reading requests above this
    public var outputHardLimit = 8 * 1024 * 1024  // close the connection above this
    public var maxWebSocketMessageBytes = 16 * 1024 * 1024  // 1009
    public var webSocketPingInterval: Double = 20  // server pings; no pong within 2x → close
    public var maxConnections = 10_000
    public init() {}
}

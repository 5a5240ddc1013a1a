/// The Redis names workers and the API share, spelled once.
public enum RedisKeys {
    /// A stream's live frames (Pub/Sub channel); the API subscribes to `framesPattern`.
    public static let framesPrefix = "vectorflow:frames:"
    public static let framesPattern = framesPrefix + "*"
    /// A stream's worker status (hash, kept fresh by the worker, TTL'd).
    public static let statusPrefix = "vectorflow:status:"
    /// Set while somebody watches a stream's preview (TTL'd); the worker encodes previews then.
    public static let viewersPrefix = "vectorflow:viewers:"
    /// A cluster runtime's task of a stream's worker (hash, written by the leading API).
    public static let taskPrefix = "vectorflow:task:"
    /// Every worker's motion events (one Redis Stream; MotionEvent's entries), read by the API's
    /// consumer group `eventsGroup`.
    public static let events = "vectorflow:events"
    public static let eventsGroup = "vectorflow-api"

    public static func frames(_ streamID: String) -> String { framesPrefix + streamID }
    public static func status(_ streamID: String) -> String { statusPrefix + streamID }
    public static func viewers(_ streamID: String) -> String { viewersPrefix + streamID }
    public static func task(_ streamID: String) -> String { taskPrefix + streamID }
}

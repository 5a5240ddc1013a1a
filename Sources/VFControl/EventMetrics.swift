import Prometheus

/// The motion events' counters on the API's /metrics (in the API's registry). Every label value
/// comes from a closed set.
public final class EventMetrics: Sendable {
    public let ingested: Counter
    public let decodeErrors: Counter
    public let databaseErrors: Counter
    public let redisErrors: Counter
    public let swept: Counter
    private let deliveries: [String: Counter]

    public init(registry: PrometheusCollectorRegistry) {
        ingested = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "vector_flow_events_ingested_total", unitName: "",
                helpText: "Motion-event entries applied to the database and acknowledged"))
        func error(_ reason: String) -> Counter {
            registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    metricName: "vector_flow_event_ingest_errors_total", unitName: "",
                    helpText:
                        "Motion-event ingest failures: undecodable entries (dropped), database or Redis errors (retried)"
                ),
                labels: [("reason", reason)])
        }
        decodeErrors = error("decode")
        databaseErrors = error("database")
        redisErrors = error("redis")
        swept = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "vector_flow_events_expired_total", unitName: "",
                helpText: "Motion events removed by the retention sweep"))
        var d: [String: Counter] = [:]
        for result in ["delivered", "retry", "failed"] {
            d[result] = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    metricName: "vector_flow_webhook_deliveries_total", unitName: "",
                    helpText:
                        "Webhook delivery attempts by result: delivered, retry (will be tried again), failed (gave up)"),
                labels: [("result", result)])
        }
        deliveries = d
    }

    /// `result`: delivered, retry or failed.
    public func delivery(_ result: String) { deliveries[result]?.increment() }
}

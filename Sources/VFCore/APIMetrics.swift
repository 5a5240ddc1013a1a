import Prometheus

/// The API's Prometheus metrics: the seed's two stream gauges, `vector_flow_build_info`, plus
/// request counts and latency histograms by route, method and status. Routes are the matched patterns (`/streams/{id}`),
/// never raw paths, so the label set stays small whatever clients send.
public final class APIMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    public let managedStreams: Gauge
    public let activeStreams: Gauge
    private let requestsName = "vector_flow_http_requests_total"
    private let durationName = "vector_flow_http_request_duration_seconds"
    /// Tuned for an API whose typical answer takes well under a millisecond.
    private let buckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public init() {
        managedStreams = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "vector_flow_managed_streams_total", unitName: "",
                helpText: "Streams stored in the database"))
        activeStreams = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "vector_flow_active_streams_total", unitName: "",
                helpText: "Streams whose desired state is active"))
        BuildInfoMetric.register(in: registry)
    }

    /// The methods that get a label value of their own; any other token a client sends counts as
    /// `OTHER`, so no request can add label values (and memory) to the exposition.
    public static let labelledMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]

    /// Records one answered request. `route` is the route pattern, or "unmatched"; `status` is
    /// one the server itself chose. Every label comes from a closed set.
    public func observe(method: String, route: String, status: Int, seconds: Double) {
        let m = Self.labelledMethods.contains(method) ? method : "OTHER"
        let labels = [("method", m), ("route", route), ("status", String(status))]
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: requestsName, unitName: "", helpText: "HTTP requests answered, by method, route and status"),
            labels: labels
        )
        .increment()
        registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(
                metricName: durationName, unitName: "",
                helpText: "Time from request parsed to response written, in seconds"),
            labels: labels, buckets: buckets
        ).record(seconds)
    }

    /// The Prometheus text exposition of every metric.
    public func render() -> [UInt8] { registry.emitToBuffer() }
}

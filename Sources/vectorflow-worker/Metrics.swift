import Prometheus
import VFCore
import VFFlow

/// The worker's Prometheus series, labelled `stream_id` and `stream_name`.
/// swift-prometheus metrics are atomics: the capture thread updates them while the HTTP server
/// renders them, without a lock of ours.
final class WorkerMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    let magnitudeAvg: Gauge
    let magnitudeMax: Gauge
    let vectorCount: Gauge
    let fps: Gauge
    let framesProcessed: Counter
    let framesDropped: Counter
    let reconnects: Counter
    let previewsPublished: Counter
    /// One series per reason, indexed like `VectorFilter.reasons`.
    let rejected: [Counter]
    /// One series per octant, indexed like `FlowStats.directionNames`.
    let directions: [Gauge]
    /// `vector_flow_worker_state{state=...}`: 1 for the state the worker reports in its status.
    let state: StateGauge
    /// Per zone (indexed like the worker's zones): events started, and whether one goes on.
    let eventsStarted: [Counter]
    let zoneActive: [Gauge]
    /// Motion-event entries appended to Redis, and those dropped because the queue was full.
    let eventEntries: Counter
    let eventEntriesDropped: Counter

    init(streamID: String, streamName: String, zones: [Zone] = []) {
        let labels = [("stream_id", streamID), ("stream_name", streamName)]
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        func gauge(_ name: String, _ help: String) -> Gauge {
            registry.makeGauge(descriptor: Self.describe(name, help), labels: labels)
        }
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(descriptor: Self.describe(name, help), labels: labels)
        }
        magnitudeAvg = gauge(
            "vector_flow_magnitude_avg",
            "Mean magnitude (px/frame) of the flow vectors above the threshold in the last frame; 0 when none")
        magnitudeMax = gauge(
            "vector_flow_magnitude_max",
            "Largest flow magnitude (px/frame) among all reliable tracked grid points in the last frame")
        vectorCount = gauge(
            "vector_flow_vector_count",
            "Number of grid points whose flow magnitude exceeded the threshold in the last frame")
        fps = gauge("vector_flow_fps", "Frames analysed per second, measured over about one second")
        framesProcessed = counter("vector_flow_frames_processed_total", "Frames analysed since the worker started")
        framesDropped = counter(
            "vector_flow_frames_dropped_total",
            "Frames skipped because the decoder returned an unusable frame")
        reconnects = counter("vector_flow_source_reconnects_total", "Times the source was lost and reopened")
        previewsPublished = counter("vector_flow_previews_published_total", "Live-frame messages sent to Redis")
        rejected = VectorFilter.reasons.map { reason in
            registry.makeCounter(
                descriptor: Self.describe(
                    "vector_flow_vectors_rejected_total",
                    "Vectors above the threshold that the reliability filter dropped, by the first check they failed"),
                labels: labels + [("reason", reason)])
        }
        directions = FlowStats.directionNames.map { direction in
            registry.makeGauge(
                descriptor: Self.describe(
                    "vector_flow_direction_vectors",
                    "Reported vectors above the threshold in the last frame, by direction octant (image axes: n is up)"),
                labels: labels + [("direction", direction)])
        }
        state = StateGauge(
            registry: registry, name: "vector_flow_worker_state",
            help: "1 for the worker's current state (the state of its status in Redis), 0 for the others",
            states: WorkerState.allCases.map(\.rawValue), labels: labels, initial: WorkerState.connecting.rawValue)
        eventsStarted = zones.map { z in
            registry.makeCounter(
                descriptor: Self.describe("vector_flow_events_total", "Motion events started in the zone"),
                labels: labels + [("zone_id", z.id), ("zone", z.name)])
        }
        zoneActive = zones.map { z in
            registry.makeGauge(
                descriptor: Self.describe("vector_flow_zone_active", "1 while a motion event of the zone goes on, else 0"),
                labels: labels + [("zone_id", z.id), ("zone", z.name)])
        }
        eventEntries = counter(
            "vector_flow_event_entries_total", "Motion-event entries appended to the Redis events stream")
        eventEntriesDropped = counter(
            "vector_flow_event_entries_dropped_total",
            "Motion-event entries dropped because the queue for Redis was full (Redis down too long)")
        BuildInfoMetric.register(in: registry)
    }

    /// The full name as given, no unit suffix appended (the names are part of the interface).
    private static func describe(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    func render() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(4096)
        registry.emit(into: &buffer)
        return buffer
    }
}

import Prometheus
import VFSync

/// `vector_flow_build_info{version,commit} 1`, the Prometheus convention for "which build is this":
/// a constant series whose labels carry the facts, so that `* on (instance) group_left(version)`
/// can join them onto any other series. Both executables export it.
public enum BuildInfoMetric {
    public static let name = "vector_flow_build_info"
    public static let help = "Always 1; the labels say which build of Vector Flow answers"

    /// Registers the series (value 1) in `registry`, labelled with `BuildInfo`'s version and commit.
    @discardableResult
    public static func register(
        in registry: PrometheusCollectorRegistry, version: String = BuildInfo.version, commit: String = BuildInfo.commit
    ) -> Gauge {
        let gauge = registry.makeGauge(
            descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help),
            labels: [("version", version), ("commit", commit)])
        gauge.set(1.0)
        return gauge
    }
}

/// A state machine's current state as one 0/1 gauge per state (`name{state="..."}`): 1 for the
/// current state, 0 for every other. The states are a closed list fixed at creation, so the label
/// set never grows, and every state has a series from the first scrape on (an alert on
/// `state="failed" == 1` needs no `absent()`).
public final class StateGauge: Sendable {
    public let states: [String]
    private let gauges: [Gauge]
    /// Index of the current state. Writers are serialized by the lock; a scrape reads the gauges
    /// without it, so one that races a change may see no state at 1 for an instant, never two
    /// (the old state is cleared before the new one is set).
    private let current: Locked<Int>

    /// `states` must be non-empty and hold `initial`; `labels` are the labels every series shares
    /// (a `state` label is added).
    public init(
        registry: PrometheusCollectorRegistry, name: String, help: String, states: [String],
        labels: [(String, String)] = [], initial: String
    ) {
        precondition(!states.isEmpty && Set(states).count == states.count, "StateGauge needs distinct states")
        let start = states.firstIndex(of: initial) ?? 0
        precondition(states[start] == initial, "StateGauge: initial state \(initial) is not in \(states)")
        self.states = states
        let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        gauges = states.map { state in registry.makeGauge(descriptor: descriptor, labels: labels + [("state", state)]) }
        for (i, gauge) in gauges.enumerated() { gauge.set(i == start ? 1.0 : 0.0) }
        current = Locked(start)
    }

    /// The current state's name.
    public var state: String { states[current.withLock { $0 }] }

    /// Makes `state` the current one. A name outside the list is a programming error: the label
    /// set is closed.
    public func set(_ state: String) {
        guard let next = states.firstIndex(of: state) else {
            preconditionFailure("StateGauge: unknown state \(state); known: \(states)")
        }
        current.withLock { index in
            guard index != next else { return }
            gauges[index].set(0.0)
            gauges[next].set(1.0)
            index = next
        }
    }
}

import Foundation

/// Exponential backoff with full jitter, capped: the project's one retry-delay policy
/// (worker reconnects, Redis reconnects, process-runtime restarts, database reconnects).
public struct Backoff: Sendable {
    public let initial: Double
    public let maximum: Double
    public let multiplier: Double
    public private(set) var attempt: Int = 0

    public init(initial: Double = 0.5, maximum: Double = 30, multiplier: Double = 2) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
    }

    /// The delay, in seconds, before the next attempt; grows with each call.
    /// Jitter keeps many workers that lost the same source from retrying in lock step.
    public mutating func nextDelay() -> Double {
        let exp = min(maximum, initial * pow(multiplier, Double(min(attempt, 30))))
        attempt += 1
        // "Equal jitter": half fixed, half random, so the delay never collapses to ~0.
        return exp / 2 + Double.random(in: 0...(exp / 2))
    }

    /// Call after a success: the next failure starts from `initial` again.
    public mutating func reset() { attempt = 0 }
}

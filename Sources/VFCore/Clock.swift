import Glibc

/// Seconds on a clock that never jumps: for durations, timeouts, deadlines and pacing (wall-clock
/// time can).
public func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

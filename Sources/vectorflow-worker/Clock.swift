import Foundation
import VFCore

/// Unix time in seconds, for timestamps other programs read.
func unixNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Sleeps until `deadline` (monotonic seconds) or until `stop` returns true, checking it every 50 ms,
/// so a stop request is never held up by a long wait.
func sleep(until deadline: Double, unless stop: () -> Bool) {
    while !stop() {
        let left = deadline - monotonicNow()
        if left <= 0 { return }
        let chunk = min(left, 0.05)
        var ts = timespec(tv_sec: Int(chunk), tv_nsec: Int((chunk - Double(Int(chunk))) * 1e9))
        nanosleep(&ts, nil)
    }
}

/// A bad command line or configuration: one plain line on stderr before the log exists (exit 2).
func printUsageError(_ message: String) {
    Console.error(message + "\n")
}

func printLine(_ bytes: [UInt8]) {
    Console.write(1, bytes + [0x0A])
}

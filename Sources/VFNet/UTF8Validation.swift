/// UTF-8 validation (RFC 3629): rejects overlong forms, surrogates (U+D800–U+DFFF), code points
/// above U+10FFFF, stray continuation bytes and truncated sequences.
///
/// Usable in one shot (`UTF8Validator.isValid`) or incrementally across fragments, which lets a
/// WebSocket text message fail fast (RFC 6455 §8.1) instead of after it was fully buffered.
public struct UTF8Validator: Sendable {
    /// Continuation bytes still expected by the current sequence.
    var pending: UInt8 = 0
    /// Allowed range of the next continuation byte (narrower than 0x80...0xBF right after
    /// E0/ED/F0/F4 lead bytes: that is where overlongs, surrogates and > U+10FFFF are excluded).
    var low: UInt8 = 0x80
    var high: UInt8 = 0xBF

    public init() {}

    /// False once the input so far cannot be the start of valid UTF-8.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let p = base.assumingMemoryBound(to: UInt8.self)
        let n = bytes.count
        var i = 0
        while i < n {
            if pending == 0 {
                // ASCII fast path, eight bytes at a time.
                while i + 8 <= n {
                    let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
                    if w & 0x8080_8080_8080_8080 != 0 { break }
                    i += 8
                }
                if i >= n { break }
                let b = p[i]
                i += 1
                switch b {
                case 0x00...0x7F: continue
                case 0xC2...0xDF:
                    pending = 1
                    low = 0x80
                    high = 0xBF
                case 0xE0:
                    pending = 2
                    low = 0xA0
                    high = 0xBF
                case 0xE1...0xEC, 0xEE...0xEF:
                    pending = 2
                    low = 0x80
                    high = 0xBF
                case 0xED:
                    pending = 2
                    low = 0x80
                    high = 0x9F
                case 0xF0:
                    pending = 3
                    low = 0x90
                    high = 0xBF
                case 0xF1...0xF3:
                    pending = 3
                    low = 0x80
                    high = 0xBF
                case 0xF4:
                    pending = 3
                    low = 0x80
                    high = 0x8F
                default: return false  // 0x80...0xC1 (stray continuation, overlong lead), 0xF5...0xFF
                }
            } else {
                let b = p[i]
                guard b >= low && b <= high else { return false }
                i += 1
                pending -= 1
                low = 0x80
                high = 0xBF
            }
        }
        return true
    }

    /// True when no multi-byte sequence is left open (call at the end of the input).
    public var isComplete: Bool { pending == 0 }

    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var v = UTF8Validator()
        return v.feed(bytes) && v.isComplete
    }

    public static func isValid(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { isValid($0) }
    }
}

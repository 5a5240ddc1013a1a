import VFCore

/// A tiny append-only JSON writer for the per-frame messages: fixed-precision numbers without
/// Foundation's formatter or JSONEncoder, into one byte buffer reserved up front.
public struct JSONWriter {
    public var bytes: [UInt8]

    public init(capacity: Int = 4096) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func raw(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// A quoted, escaped JSON string: the project's one string escaper (VFCore).
    public mutating func string(_ s: String) {
        JSONSerializer.appendString(s, to: &bytes)
    }

    public mutating func int(_ v: Int) {
        if v < 0 { bytes.append(0x2D) }
        var m = v.magnitude
        if m == 0 {
            bytes.append(0x30)
            return
        }
        var digits:
            (
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
            ) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            while m > 0 {
                d[n] = UInt8(m % 10) + 0x30
                m /= 10
                n += 1
            }
            while n > 0 {
                n -= 1
                bytes.append(d[n])
            }
        }
    }

    public mutating func bool(_ v: Bool) {
        if v { raw("true") } else { raw("false") }
    }

    /// One flow vector `[x,y,dx,dy]` from four consecutive floats starting at `i`.
    public mutating func vector<C: RandomAccessCollection<Float>>(_ v: C, at i: C.Index, decimals: Int) {
        bytes.append(0x5B)
        var k = i
        for j in 0..<4 {
            if j > 0 { bytes.append(0x2C) }
            number(Double(v[k]), decimals: decimals)
            k = v.index(after: k)
        }
        bytes.append(0x5D)
    }

    /// `v` rounded to `decimals` places (0...6), trailing zeros dropped: 1.5 → `1.5`, 2.0 → `2`.
    /// Non-finite values, which JSON cannot carry, are written as 0.
    public mutating func number(_ v: Double, decimals: Int) {
        guard v.isFinite else {
            bytes.append(0x30)
            return
        }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (v * scale).rounded()
        guard abs(scaled) < 9.0e15 else {
            bytes.append(contentsOf: "\(v)".utf8)
            return
        }
        var units = Int(scaled)
        if units < 0 {
            bytes.append(0x2D)
            units = -units
        }
        let p = Int(scale)
        int(units / p)
        var frac = units % p
        guard frac != 0 else { return }
        var places = decimals
        while frac % 10 == 0 {
            frac /= 10
            places -= 1
        }
        bytes.append(0x2E)
        var div = 1
        for _ in 1..<max(places, 1) { div *= 10 }
        while div > 0 {
            bytes.append(UInt8(frac / div % 10) + 0x30)
            div /= 10
        }
    }
}

/// The project's one JSON writer and its one string escaper: append-only, into one byte buffer
/// reserved up front, fixed-precision numbers without Foundation's formatter. The per-frame
/// messages (FrameEnvelope), the API's bodies (CameraStream, JSONSerializer over JSONValue) and
/// VFNet's Encodable bodies all write through it.
public struct JSONWriter {
    public var bytes: [UInt8]

    public init(capacity: Int = 4096) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func raw(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    public mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }

    /// A quoted, escaped JSON string.
    public mutating func string(_ s: String) { Self.appendString(s, to: &bytes) }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends `s` as a quoted JSON string: the one string escaper. Runs of bytes that need no
    /// escape are copied in one piece (the hot path of every stream list); control characters
    /// and DEL as \u00XX.
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { buf in
            var start = 0
            for i in 0..<buf.count {
                let c = buf[i]
                if c >= 0x20 && c != 0x22 && c != 0x5C && c != 0x7F { continue }
                if i > start { out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[start..<i])) }
                start = i + 1
                switch c {
                case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
                case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
                case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
                case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
                case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
                default:
                    out.append(contentsOf: [
                        0x5C, UInt8(ascii: "u"), 0x30, 0x30, hexDigits[Int(c >> 4)], hexDigits[Int(c & 15)],
                    ])
                }
            }
            if start < buf.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[start...])) }
        }
        out.append(UInt8(ascii: "\""))
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

/// RFC 6455 frame opcodes this implementation knows; others are a protocol error (1002).
public enum WebSocketOpcode: UInt8, Sendable {
    case continuation = 0
    case text = 1
    case binary = 2
    case close = 8
    case ping = 9
    case pong = 10

    public var isControl: Bool { rawValue >= 8 }
}

/// One frame, payload already unmasked.
public struct WebSocketFrame: Sendable {
    public var fin: Bool
    public var opcode: WebSocketOpcode
    public var payload: [UInt8]

    public init(fin: Bool = true, opcode: WebSocketOpcode, payload: [UInt8]) {
        self.fin = fin
        self.opcode = opcode
        self.payload = payload
    }
}

public enum WebSocketFrameDecodeResult: Sendable {
    case frame(WebSocketFrame, consumed: Int)
    case incomplete
    /// Fail the connection: send a close frame with `code` and close.
    case error(code: UInt16, reason: String)
}

/// A protocol violation found while assembling messages; `code` goes into the close frame.
public struct WebSocketProtocolError: Error, Sendable, Equatable {
    public var code: UInt16
    public var reason: String
    public init(code: UInt16, reason: String) {
        self.code = code
        self.reason = reason
    }
}

/// Stateless frame encoding/decoding (RFC 6455 §5.2).
///
/// `decode` looks at the frame header first and rejects a frame as soon as its header is known
/// to be bad, so a peer announcing a huge payload is refused before any of it is buffered.
public enum WebSocketFrameCodec {
    public static func decode(_ bytes: UnsafeRawBufferPointer, maxPayload: Int, requireMask: Bool = true)
        -> WebSocketFrameDecodeResult
    {
        let n = bytes.count
        guard n >= 2, let base = bytes.baseAddress else { return .incomplete }
        let p = base.assumingMemoryBound(to: UInt8.self)
        let b0 = p[0]
        let b1 = p[1]
        if b0 & 0x70 != 0 { return .error(code: 1002, reason: "reserved bits set") }
        guard let opcode = WebSocketOpcode(rawValue: b0 & 0x0F) else {
            return .error(code: 1002, reason: "unknown opcode")
        }
        let fin = b0 & 0x80 != 0
        let masked = b1 & 0x80 != 0
        let len7 = Int(b1 & 0x7F)
        if opcode.isControl {
            if !fin { return .error(code: 1002, reason: "fragmented control frame") }
            if len7 > 125 { return .error(code: 1002, reason: "control frame too long") }
        }
        if requireMask && !masked { return .error(code: 1002, reason: "unmasked client frame") }
        var offset = 2
        var length: Int
        switch len7 {
        case 126:
            guard n >= 4 else { return .incomplete }
            length = Int(p[2]) << 8 | Int(p[3])
            if length < 126 { return .error(code: 1002, reason: "non-minimal length") }
            offset = 4
        case 127:
            guard n >= 10 else { return .incomplete }
            var v: UInt64 = 0
            for k in 2..<10 { v = v << 8 | UInt64(p[k]) }
            if v >> 63 != 0 { return .error(code: 1002, reason: "invalid length") }
            if v < 65536 { return .error(code: 1002, reason: "non-minimal length") }
            if v > UInt64(max(0, maxPayload)) { return .error(code: 1009, reason: "message too big") }
            length = Int(v)
            offset = 10
        default:
            length = len7
        }
        if length > maxPayload { return .error(code: 1009, reason: "message too big") }
        var key: UInt32 = 0
        if masked {
            guard n >= offset + 4 else { return .incomplete }
            key = UnsafeRawPointer(p + offset).loadUnaligned(as: UInt32.self)
            offset += 4
        }
        guard n - offset >= length else { return .incomplete }
        var payload = [UInt8](UnsafeRawBufferPointer(start: p + offset, count: length))
        if masked && length > 0 {
            payload.withUnsafeMutableBytes { unmask($0, key: key) }
        }
        return .frame(WebSocketFrame(fin: fin, opcode: opcode, payload: payload), consumed: offset + length)
    }

    /// XORs with the 4-byte key as it lies in memory (`key` is a native load of the key bytes),
    /// eight bytes at a time.
    static func unmask(_ buf: UnsafeMutableRawBufferPointer, key: UInt32) {
        guard let p = buf.baseAddress else { return }
        let n = buf.count
        let k64 = UInt64(key) | UInt64(key) << 32
        var i = 0
        while i + 8 <= n {
            let w = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            p.storeBytes(of: w ^ k64, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        let kb = withUnsafeBytes(of: key) { [$0[0], $0[1], $0[2], $0[3]] }
        while i < n {
            p.storeBytes(of: p.load(fromByteOffset: i, as: UInt8.self) ^ kb[i & 3], toByteOffset: i, as: UInt8.self)
            i += 1
        }
    }

    /// Appends one unmasked (server-to-client) frame to `out`.
    public static func encode(
        _ opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer, fin: Bool = true, into out: inout [UInt8]
    ) {
        let n = payload.count
        out.reserveCapacity(out.count + n + 10)
        out.append((fin ? 0x80 : 0) | opcode.rawValue)
        if n < 126 {
            out.append(UInt8(n))
        } else if n <= 0xFFFF {
            out.append(126)
            out.append(UInt8(n >> 8))
            out.append(UInt8(truncatingIfNeeded: n))
        } else {
            out.append(127)
            for k in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: UInt64(n) >> (UInt64(k) * 8))) }
        }
        out.append(contentsOf: payload)
    }

    public static func encode(_ opcode: WebSocketOpcode, payload: [UInt8], fin: Bool = true, into out: inout [UInt8]) {
        payload.withUnsafeBytes { encode(opcode, payload: $0, fin: fin, into: &out) }
    }

    /// A close frame: 2-byte code and the reason cut to fit the 125-byte control limit (on a
    /// character boundary, so it stays valid UTF-8).
    public static func encodeClose(code: UInt16, reason: String, into out: inout [UInt8]) {
        var payload: [UInt8] = [UInt8(code >> 8), UInt8(truncatingIfNeeded: code)]
        var used = 0
        for scalar in reason.unicodeScalars {
            let len = UTF8.width(scalar)
            if used + len > 123 { break }
            used += len
            payload.append(contentsOf: UTF8.encode(scalar)!)
        }
        encode(.close, payload: payload, into: &out)
    }
}

/// Turns frames into messages (RFC 6455 §5.4): joins fragments, lets control frames interleave,
/// enforces the message size limit and validates text as UTF-8 fragment by fragment.
public struct WebSocketMessageAssembler: Sendable {
    public enum Event: Sendable {
        case text(String)
        case binary([UInt8])
        case ping([UInt8])
        case pong([UInt8])
        /// `code` is nil when the close frame had no payload (answer with 1000 then).
        case close(code: UInt16?, reason: String)
        /// A non-final fragment was buffered.
        case none
    }

    let maxMessageBytes: Int
    var fragmentOpcode: WebSocketOpcode? = nil
    var buffer: [UInt8] = []
    var validator = UTF8Validator()

    public init(maxMessageBytes: Int) {
        self.maxMessageBytes = max(0, maxMessageBytes)
    }

    public mutating func push(_ frame: WebSocketFrame) -> Result<Event, WebSocketProtocolError> {
        switch frame.opcode {
        case .ping: return .success(.ping(frame.payload))
        case .pong: return .success(.pong(frame.payload))
        case .close: return Self.parseClose(frame.payload)
        case .continuation:
            guard let op = fragmentOpcode else { return fail(1002, "continuation without a message") }
            return append(frame.payload, opcode: op, fin: frame.fin)
        case .text, .binary:
            if fragmentOpcode != nil { return fail(1002, "new message inside a fragmented message") }
            fragmentOpcode = frame.opcode
            validator = UTF8Validator()
            if frame.fin {
                // Unfragmented: no need to copy into the buffer.
                if frame.payload.count > maxMessageBytes { return fail(1009, "message too big") }
                fragmentOpcode = nil
                if frame.opcode == .binary { return .success(.binary(frame.payload)) }
                guard UTF8Validator.isValid(frame.payload) else { return fail(1007, "invalid UTF-8") }
                return .success(.text(String(decoding: frame.payload, as: UTF8.self)))
            }
            return append(frame.payload, opcode: frame.opcode, fin: false)
        }
    }

    private mutating func append(_ payload: [UInt8], opcode: WebSocketOpcode, fin: Bool) -> Result<
        Event, WebSocketProtocolError
    > {
        if payload.count > maxMessageBytes - buffer.count { return fail(1009, "message too big") }
        if opcode == .text {
            let ok = payload.withUnsafeBytes { validator.feed($0) }
            if !ok || (fin && !validator.isComplete) { return fail(1007, "invalid UTF-8") }
        }
        buffer.append(contentsOf: payload)
        guard fin else { return .success(.none) }
        let message = buffer
        buffer = []
        fragmentOpcode = nil
        if opcode == .binary { return .success(.binary(message)) }
        return .success(.text(String(decoding: message, as: UTF8.self)))
    }

    private mutating func fail(_ code: UInt16, _ reason: String) -> Result<Event, WebSocketProtocolError> {
        fragmentOpcode = nil
        buffer = []
        return .failure(WebSocketProtocolError(code: code, reason: reason))
    }

    static func parseClose(_ payload: [UInt8]) -> Result<Event, WebSocketProtocolError> {
        if payload.isEmpty { return .success(.close(code: nil, reason: "")) }
        if payload.count == 1 {
            return .failure(WebSocketProtocolError(code: 1002, reason: "close payload of one byte"))
        }
        let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
        guard isValidCloseCode(code) else {
            return .failure(WebSocketProtocolError(code: 1002, reason: "invalid close code"))
        }
        let reasonBytes = payload[2...]
        let ok = reasonBytes.withUnsafeBytes { UTF8Validator.isValid($0) }
        guard ok else { return .failure(WebSocketProtocolError(code: 1007, reason: "invalid UTF-8 in close reason")) }
        return .success(.close(code: code, reason: String(decoding: reasonBytes, as: UTF8.self)))
    }

    /// Codes a peer may send (RFC 6455 §7.4): 1000–1003, 1007–1014 and 3000–4999.
    public static func isValidCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }
}

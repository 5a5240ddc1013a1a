// The fuzz target compiles this file with VFText's Hex.swift into one module (scripts/fuzz.sh).
#if canImport(VFText)
    import VFText
#endif

/// Incremental decoder of a `Transfer-Encoding: chunked` body (RFC 9112 §7.1).
///
/// Feed it bytes as they arrive, split anywhere; it appends the de-chunked data to `body`.
/// Chunk extensions and trailer fields are consumed and ignored. Line endings must be CRLF and
/// the CRLF after each chunk's data is required. After `.done` the decoder consumes nothing more:
/// the remaining input belongs to the next request. Errors are sticky.
public struct ChunkedBodyDecoder: Sendable {
    public enum Result: Sendable {
        case needMore
        case done
        case error(HTTPParseError)
    }

    enum State: Sendable {
        case size  // hex digits of the chunk size
        case sizeWhitespace  // BWS after the size, before ';' or CR
        case ext  // chunk extension bytes up to CR
        case sizeLF  // LF ending the size line
        case data  // `remaining` data bytes
        case dataCR, dataLF  // CRLF after the data
        case trailerStart  // start of a trailer line (CR here ends the body)
        case trailer  // inside a trailer line
        case trailerLF  // LF ending a trailer line
        case finalLF  // LF of the empty line ending the body
        case done
        case failed(HTTPParseError)
    }

    /// Trailer fields are ignored, but they still must not make the server buffer without bound.
    static let maxTrailerBytes = 16 * 1024
    /// More hex digits than this is not a size any limit could accept (and stops zero-padding games).
    static let maxSizeDigits = 16

    let maxBodyBytes: Int
    var state: State = .size
    var size = 0
    var sizeDigits = 0
    var remaining = 0
    var total = 0
    var trailerBytes = 0

    public init(maxBodyBytes: Int) {
        self.maxBodyBytes = max(0, maxBodyBytes)
    }

    public var isDone: Bool { if case .done = state { return true } else { return false } }

    /// Consumes as much of `input` as belongs to the body. `consumed` is all of `input` on
    /// `.needMore`, the body's end on `.done`, and where the error was found on `.error`.
    public mutating func feed(_ input: UnsafeRawBufferPointer, into body: inout [UInt8]) -> (
        consumed: Int, result: Result
    ) {
        switch state {
        case .done: return (0, .done)
        case .failed(let e): return (0, .error(e))
        default: break
        }
        guard let base = input.baseAddress, input.count > 0 else { return (0, .needMore) }
        let p = base.assumingMemoryBound(to: UInt8.self)
        let n = input.count
        var i = 0
        func fail(_ e: HTTPParseError) -> (consumed: Int, result: Result) {
            state = .failed(e)
            return (i, .error(e))
        }
        while i < n {
            switch state {
            case .size:
                let b = p[i]
                if let d = hexValue(b) {
                    sizeDigits += 1
                    if sizeDigits > Self.maxSizeDigits { return fail(.malformed("chunk size too long")) }
                    let (m, o1) = size.multipliedReportingOverflow(by: 16)
                    let (s, o2) = m.addingReportingOverflow(Int(d))
                    if o1 || o2 { return fail(.bodyTooLarge) }
                    size = s
                    if size > maxBodyBytes - total { return fail(.bodyTooLarge) }
                    i += 1
                } else if sizeDigits == 0 {
                    return fail(.malformed("invalid chunk size"))
                } else if b == 0x0D {
                    state = .sizeLF
                    i += 1
                } else if b == 0x3B {
                    state = .ext
                    i += 1
                } else if b == 0x20 || b == 0x09 {
                    state = .sizeWhitespace
                    i += 1
                } else {
                    return fail(.malformed("invalid chunk size"))
                }
            case .sizeWhitespace:
                let b = p[i]
                if b == 0x20 || b == 0x09 {
                    i += 1
                } else if b == 0x3B {
                    state = .ext
                    i += 1
                } else if b == 0x0D {
                    state = .sizeLF
                    i += 1
                } else {
                    return fail(.malformed("invalid chunk size line"))
                }
            case .ext:
                // Skip to CR; extensions are ignored but must not carry control bytes.
                while i < n {
                    let b = p[i]
                    if b == 0x0D {
                        state = .sizeLF
                        i += 1
                        break
                    }
                    if (b < 0x20 && b != 0x09) || b == 0x7F { return fail(.malformed("invalid chunk extension")) }
                    trailerBytes += 1
                    if trailerBytes > Self.maxTrailerBytes { return fail(.headersTooLarge) }
                    i += 1
                }
            case .sizeLF:
                if p[i] != 0x0A { return fail(.malformed("bare CR in chunk size line")) }
                i += 1
                if size == 0 {
                    state = .trailerStart
                } else {
                    total += size
                    remaining = size
                    state = .data
                }
                size = 0
                sizeDigits = 0
            case .data:
                let take = min(remaining, n - i)
                body.append(contentsOf: UnsafeRawBufferPointer(start: p + i, count: take))
                i += take
                remaining -= take
                if remaining == 0 { state = .dataCR }
            case .dataCR:
                if p[i] != 0x0D { return fail(.malformed("missing CRLF after chunk data")) }
                state = .dataLF
                i += 1
            case .dataLF:
                if p[i] != 0x0A { return fail(.malformed("missing CRLF after chunk data")) }
                state = .size
                i += 1
            case .trailerStart:
                let b = p[i]
                if b == 0x0D {
                    state = .finalLF
                    i += 1
                } else if b == 0x0A {
                    return fail(.malformed("bare LF in trailer"))
                } else {
                    state = .trailer
                }
            case .trailer:
                while i < n {
                    let b = p[i]
                    if b == 0x0D {
                        state = .trailerLF
                        i += 1
                        break
                    }
                    if (b < 0x20 && b != 0x09) || b == 0x7F { return fail(.malformed("invalid trailer field")) }
                    trailerBytes += 1
                    if trailerBytes > Self.maxTrailerBytes { return fail(.headersTooLarge) }
                    i += 1
                }
            case .trailerLF:
                if p[i] != 0x0A { return fail(.malformed("bare CR in trailer")) }
                state = .trailerStart
                i += 1
            case .finalLF:
                if p[i] != 0x0A { return fail(.malformed("bare CR at end of chunked body")) }
                i += 1
                state = .done
                return (i, .done)
            case .done, .failed:
                return (i, .done)  // unreachable: both leave the loop when entered
            }
        }
        return (i, .needMore)
    }

    @inline(__always) private func hexValue(_ b: UInt8) -> UInt8? { Hex.value(b) }
}

// libFuzzer target for WebSocketFrameCodec, WebSocketMessageAssembler and UTF8Validator.
//
// Input layout: byte 0 picks the mode (bit 0: frames need not be masked, bit 1: tiny limits,
// bit 2: differential UTF-8 check only), the rest is a stream of frames decoded one after another.

func fuzzUTF8(_ data: UnsafeRawBufferPointer) {
    let reference = String(validating: data, as: UTF8.self) != nil
    let oneShot = withExactCopy(data, 0..<data.count) { UTF8Validator.isValid($0) }
    check(oneShot == reference, "UTF8Validator disagrees with the standard library")
    // Incrementally, in pieces of 1, 2, 3, ... bytes.
    var v = UTF8Validator()
    var ok = true
    var i = 0
    var step = 1
    while i < data.count && ok {
        let j = min(data.count, i + step)
        ok = withExactCopy(data, i..<j) { v.feed($0) }
        i = j
        step = step % 7 + 1
    }
    check((ok && v.isComplete) == reference, "incremental UTF-8 validation differs")
}

func fuzzFrames(_ data: UnsafeRawBufferPointer, requireMask: Bool, maxPayload: Int) {
    var assembler = WebSocketMessageAssembler(maxMessageBytes: maxPayload * 2)
    var offset = 0
    var frames = 0
    while offset < data.count && frames < 64 {
        frames += 1
        let r = withExactCopy(data, offset..<data.count) {
            WebSocketFrameCodec.decode($0, maxPayload: maxPayload, requireMask: requireMask)
        }
        guard case .frame(let frame, let consumed) = r else {
            guard case .error(let code, _) = r else { return }
            check(code == 1002 || code == 1009, "unexpected decode error code")
            // A prefix that already fails must fail the same way.
            let rest = data.count - offset
            for k in 0..<min(rest, 16) {
                let p = withExactCopy(data, offset..<(offset + k)) {
                    WebSocketFrameCodec.decode($0, maxPayload: maxPayload, requireMask: requireMask)
                }
                switch p {
                case .incomplete: break
                case .error(let c, _): check(c == code, "prefix fails with another code")
                case .frame: check(false, "prefix of a bad frame decodes")
                }
            }
            return
        }
        check(consumed >= 2 && consumed <= data.count - offset, "consumed out of range")
        check(frame.payload.count <= maxPayload, "payload over maxPayload")
        check(!frame.opcode.isControl || (frame.fin && frame.payload.count <= 125), "bad control frame accepted")
        // One byte less is never a frame.
        let short = withExactCopy(data, offset..<(offset + consumed - 1)) {
            WebSocketFrameCodec.decode($0, maxPayload: maxPayload, requireMask: requireMask)
        }
        if case .frame = short { check(false, "frame decoded from a truncated input") }
        // Encoding the frame again gives a frame that decodes to the same thing.
        var out: [UInt8] = []
        WebSocketFrameCodec.encode(frame.opcode, payload: frame.payload, fin: frame.fin, into: &out)
        let re = out.withUnsafeBytes { WebSocketFrameCodec.decode($0, maxPayload: maxPayload, requireMask: false) }
        guard case .frame(let f2, let c2) = re else {
            check(false, "re-encoded frame does not decode")
            return
        }
        check(
            c2 == out.count && f2.payload == frame.payload && f2.fin == frame.fin && f2.opcode == frame.opcode,
            "re-encoded frame differs")
        offset += consumed
        switch assembler.push(frame) {
        case .failure(let e):
            check([1002, 1007, 1009].contains(e.code), "unexpected assembler error code")
            return
        case .success(let event):
            switch event {
            case .text(let s): check(s.utf8.count <= maxPayload * 2, "text message over limit")
            case .binary(let b): check(b.count <= maxPayload * 2, "binary message over limit")
            case .close(let code, let reason):
                if let code { check(WebSocketMessageAssembler.isValidCloseCode(code), "invalid close code accepted") }
                check(reason.utf8.count <= 123, "close reason too long")
            case .ping(let b), .pong(let b): check(b.count <= 125, "control payload too long")
            case .none: break
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ ptr: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let ptr, size >= 1 else { return 0 }
    let mode = ptr[0]
    let data = UnsafeRawBufferPointer(start: ptr + 1, count: size - 1)
    if mode & 4 != 0 {
        fuzzUTF8(data)
    } else {
        fuzzFrames(data, requireMask: mode & 1 == 0, maxPayload: mode & 2 != 0 ? 40 : 66_000)
    }
    return 0
}

// libFuzzer target for HTTPRequestParser and ChunkedBodyDecoder.
//
// Input layout: byte 0 picks the mode (bit 0: tiny limits, bit 1: the rest is a chunked body
// rather than a request, bit 2: check every prefix, not only one), byte 1 picks a split point;
// the rest is the data. Every parse runs on an exact-size heap copy so ASan reports any read past
// the end.

enum Outcome: Equatable {
    case complete(
        consumed: Int, method: String, target: String, fields: [String], cl: Int?, chunked: Bool, keepAlive: Bool)
    case incomplete
    case error(HTTPParseError)
}

func outcome(_ r: HTTPHeadParseResult) -> Outcome {
    switch r {
    case .incomplete: return .incomplete
    case .error(let e): return .error(e)
    case .complete(let h, let consumed):
        return .complete(
            consumed: consumed, method: h.method, target: h.target,
            fields: h.headers.map { $0.name + ":" + $0.value },
            cl: h.contentLength, chunked: h.isChunked, keepAlive: h.keepAlive)
    }
}

func fuzzHead(_ data: UnsafeRawBufferPointer, limits: HTTPLimits, split: Int, everyPrefix: Bool) {
    let n = data.count
    let full = withExactCopy(data, 0..<n) { outcome(HTTPRequestParser.parseHead($0, limits: limits)) }
    // A prefix either waits for more or already knows the whole input's answer.
    let cut = n == 0 ? 0 : split % (n + 1)
    let part = withExactCopy(data, 0..<cut) { outcome(HTTPRequestParser.parseHead($0, limits: limits)) }
    check(part == .incomplete || part == full, "prefix result differs from full result")
    if everyPrefix && n <= 256 {
        for k in 0..<n {
            let p = withExactCopy(data, 0..<k) { outcome(HTTPRequestParser.parseHead($0, limits: limits)) }
            check(p == .incomplete || p == full, "prefix \(k) result differs from full result")
        }
    }
    guard case .complete(let consumed, _, _, _, let cl, let chunked, _) = full else { return }
    // Every parsed field is found again by a case-insensitive lookup.
    if case .complete(let head, _) = withExactCopy(data, 0..<n, { HTTPRequestParser.parseHead($0, limits: limits) }) {
        for (name, value) in head.headers {
            check(head.headers[name.uppercased()] != nil, "field not found by name")
            check(head.headers.values(name.lowercased()).contains(value), "value not found by name")
        }
    }
    check(consumed > 0 && consumed <= n, "consumed out of range")
    check(!(cl != nil && chunked), "both Content-Length and chunked")
    if let cl { check(cl >= 0 && cl <= limits.maxBodyBytes, "Content-Length over limit") }
    check(consumed <= limits.maxHeaderBytes, "head over maxHeaderBytes")
    let exact = withExactCopy(data, 0..<consumed) { outcome(HTTPRequestParser.parseHead($0, limits: limits)) }
    check(exact == full, "head alone parses differently")
    let short = withExactCopy(data, 0..<(consumed - 1)) { outcome(HTTPRequestParser.parseHead($0, limits: limits)) }
    check(short == .incomplete, "head minus one byte is not incomplete")
    if chunked { fuzzChunked(data, from: consumed, limits: limits, split: split) }
}

struct ChunkedRun: Equatable {
    var consumed = 0
    var body: [UInt8] = []
    var state = 0  // 0 needMore, 1 done, 2 error
    var error: HTTPParseError? = nil
}

func runChunked(_ data: UnsafeRawBufferPointer, _ pieces: [Range<Int>], maxBody: Int) -> ChunkedRun {
    var d = ChunkedBodyDecoder(maxBodyBytes: maxBody)
    var run = ChunkedRun()
    for r in pieces {
        let (c, res) = withExactCopy(data, r) { d.feed($0, into: &run.body) }
        check(c >= 0 && c <= r.count, "chunked consumed out of range")
        run.consumed += c
        switch res {
        case .needMore: check(c == r.count, "needMore without consuming everything")
        case .done:
            run.state = 1
            return run
        case .error(let e):
            run.state = 2
            run.error = e
            return run
        }
    }
    return run
}

func fuzzChunked(_ data: UnsafeRawBufferPointer, from start: Int, limits: HTTPLimits, split: Int) {
    let n = data.count
    let whole = runChunked(data, [start..<n], maxBody: limits.maxBodyBytes)
    check(whole.body.count <= limits.maxBodyBytes, "chunked body over limit")
    let mid = start + (n - start == 0 ? 0 : split % (n - start + 1))
    let two = runChunked(data, [start..<mid, mid..<n], maxBody: limits.maxBodyBytes)
    check(two == whole, "two-piece split decodes differently")
    if n - start <= 512 {
        let bytewise = runChunked(data, (start..<n).map { $0..<($0 + 1) }, maxBody: limits.maxBodyBytes)
        check(bytewise == whole, "byte-by-byte decodes differently")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ ptr: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let ptr, size >= 2 else { return 0 }
    let mode = ptr[0]
    let split = Int(ptr[1])
    let data = UnsafeRawBufferPointer(start: ptr + 2, count: size - 2)
    var limits = HTTPLimits()
    if mode & 1 != 0 {
        limits.maxRequestLineBytes = 40
        limits.maxHeaderBytes = 200
        limits.maxHeaderCount = 4
        limits.maxBodyBytes = 100
    }
    if mode & 2 != 0 {
        fuzzChunked(data, from: 0, limits: limits, split: split)
    } else {
        fuzzHead(data, limits: limits, split: split, everyPrefix: mode & 4 != 0)
    }
    return 0
}

import CVFNetLinux
import Glibc
import Synchronization

/// One HTTP/1.1 connection: a state machine driven by its loop's readiness events.
///
/// Requests are handled strictly one at a time (the next pipelined request is parsed only after
/// the previous response is queued), so responses leave in request order without reordering
/// buffers. All state is touched on `loop`'s thread only; other threads reach it through
/// `loop.execute` (see `HTTPResponder`, `WebSocket`), hence `@unchecked Sendable`.
final class HTTPConnection: Selectable, @unchecked Sendable {
    /// Reads per readable event, so one busy client cannot starve the others on the loop.
    static let maxReadsPerEvent = 4
    /// Bytes written per writable event or flush, the same fairness rule for output.
    static let maxWritePerTurn = 64 * 1024
    /// Input buffered while a handler runs (pipelined requests); reading pauses beyond it.
    static let maxPipelinedInput = 64 * 1024
    /// After our last byte: how long to wait for the client's FIN, and how much input to discard.
    static let lingerNanos: UInt64 = 2_000_000_000
    static let maxLingerBytes = 1 << 20
    /// Buffers larger than this are released when empty instead of kept for the next request,
    /// so an idle keep-alive connection holds a few KiB at most.
    static let keptBufferCapacity = 16 * 1024

    enum Phase {
        case head, body, handling, upgraded
        /// The last response is queued; close once it is written.
        case draining
        /// Write side shut down; discarding input until the client closes.
        case lingering
        case closed
    }

    enum Timeout { case none, header, body, idle, linger, webSocketClosing }

    let fd: Int32
    let loop: EventLoop
    let context: ServerContext
    let remoteAddress: String
    var limits: HTTPLimits { context.limits }

    var phase: Phase = .head
    var input: [UInt8] = []
    var inputStart = 0
    var output: [UInt8] = []
    var outputStart = 0
    var readPaused = false
    var peerClosed = false
    var inProcess = false
    var lingerBytes = 0
    /// Bytes of the pending head already searched for its end (see `headTerminatorBuffered`).
    var headScanned = 0

    var head: HTTPRequestHead?
    var body: [UInt8] = []
    var bodyRemaining = 0
    var chunked: ChunkedBodyDecoder?
    var request: HTTPRequest?
    var requestStarted: UInt64 = 0
    var keepAlive = true
    var isHeadRequest = false
    var sequence: UInt64 = 0

    var deadline: UInt64 = .max
    var timeoutKind: Timeout = .none
    var timer: TimerHandle?
    var timerAt: UInt64 = .max

    var webSocket: WebSocket?

    /// Connection objects alive in the process: lets tests prove a closed connection is freed
    /// (no retain cycle through timers, responders or WebSockets). One atomic add per connection.
    static let liveObjects = Atomic<Int>(0)

    private init(fd: Int32, loop: EventLoop, context: ServerContext, remoteAddress: String) {
        self.fd = fd
        self.loop = loop
        self.context = context
        self.remoteAddress = remoteAddress
        HTTPConnection.liveObjects.add(1, ordering: .relaxed)
    }

    deinit {
        HTTPConnection.liveObjects.subtract(1, ordering: .relaxed)
    }

    /// Takes over an accepted socket on `loop` (called on that loop).
    static func open(fd: Int32, remoteAddress: String, loop: EventLoop, context: ServerContext) {
        Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        let connection = HTTPConnection(fd: fd, loop: loop, context: context, remoteAddress: remoteAddress)
        do {
            try loop.register(fd: fd, handler: connection, events: Epoll.inEvent)
        } catch {
            Socket.close(fd)
            context.connectionClosed()
            return
        }
        // A new connection gets the header timeout at once: an idle fresh socket is a slowloris.
        connection.setDeadline(after: context.limits.headerReadTimeout, .header)
    }

    var pendingOutput: Int { output.count - outputStart }

    // ---- readiness events ----

    func readable() {
        switch phase {
        case .closed, .draining: return
        case .lingering:
            discardInput()
            return
        default: break
        }
        var sawEOF = false
        var reads = 0
        let scratch = loop.readScratch
        reading: while reads < HTTPConnection.maxReadsPerEvent {
            guard let result = readOrAbort(into: scratch) else { return }
            switch result {
            case .wouldBlock:
                break reading
            case .done(0):
                sawEOF = true
                break reading
            case .done(let n):
                input.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
                reads += 1
                if n < scratch.count || !wantsRead { break reading }
            }
        }
        onInput()
        if sawEOF { peerClosedInput() }
    }

    /// One read into `scratch`; a socket error closes the connection and gives nil.
    func readOrAbort(into scratch: UnsafeMutableRawBufferPointer) -> IOResult<Int>? {
        do {
            return try Socket.read(fd, scratch)
        } catch {
            abort()
            return nil
        }
    }

    func writable() {
        flush()
    }

    func hangup() {
        abort()
    }

    func loopClosing() {
        if phase == .upgraded, let ws = webSocket, !ws.closeSent {
            ws.closeSent = true
            ws.closeCode = 1001
            WebSocketFrameCodec.encodeClose(code: 1001, reason: "server shutting down", into: &output)
            writeSome()
        }
        abort()
    }

    private func onInput() {
        inProcess = true
        if phase == .upgraded {
            webSocketInput()
        } else {
            process()
        }
        inProcess = false
        flush()
    }

    private func peerClosedInput() {
        guard phase != .closed else { return }
        peerClosed = true
        // A client may half-close after its request: answer it, then close.
        if phase == .handling || (phase == .draining && pendingOutput > 0) {
            updateInterest()
            return
        }
        if phase == .head, pendingOutput > 0 {
            phase = .draining
            updateInterest()
            return
        }
        abort()
    }

    var wantsRead: Bool {
        switch phase {
        case .closed, .draining: return false
        case .lingering: return true
        case .handling: return !peerClosed && !readPaused && input.count - inputStart < HTTPConnection.maxPipelinedInput
        case .head, .body, .upgraded: return !peerClosed && !readPaused
        }
    }

    func updateInterest() {
        guard phase != .closed else { return }
        var events: UInt32 = 0
        if wantsRead { events |= Epoll.inEvent }
        if pendingOutput > 0 { events |= Epoll.outEvent }
        loop.setInterest(fd: fd, events: events)
    }

    // ---- request parsing ----

    /// Parses and dispatches buffered requests until one is in flight or more input is needed.
    func process() {
        while true {
            switch phase {
            case .head:
                // Pipelined answers pile up within one read burst too: stop parsing above the mark.
                if readPaused || pendingOutput > limits.outputHighWatermark {
                    readPaused = true
                    pauseReadDeadline()
                    return
                }
                let pending = input.count - inputStart
                if pending == 0 {
                    compactInput()
                    return
                }
                if timeoutKind == .idle { setDeadline(after: limits.headerReadTimeout, .header) }
                // A head dripped in byte by byte must not be re-parsed from its start on every
                // read (quadratic): parse only once the blank line is in, or the size limit hit.
                if pending < limits.maxHeaderBytes && !headTerminatorBuffered() {
                    compactInput()
                    return
                }
                headScanned = 0
                let start = inputStart
                let limits = self.limits
                let result = input.withUnsafeBytes {
                    HTTPRequestParser.parseHead(UnsafeRawBufferPointer(rebasing: $0[start...]), limits: limits)
                }
                switch result {
                case .incomplete:
                    compactInput()
                    return
                case .error(let e):
                    failRequest(e.status, e.reason)
                    return
                case .complete(let h, let consumed):
                    inputStart += consumed
                    beginBody(h)
                }
            case .body:
                if !readBody() {
                    compactInput()
                    return
                }
            case .upgraded:
                webSocketInput()
                return
            case .handling, .draining, .lingering, .closed:
                compactInput()
                return
            }
        }
    }

    /// Searches the unscanned part of the pending head for the blank line that ends it.
    private func headTerminatorBuffered() -> Bool {
        let from = inputStart + max(0, headScanned - 3)
        let end = input.count
        headScanned = end - inputStart
        guard end - from >= 4 else { return false }
        return input.withUnsafeBytes { raw -> Bool in
            let p = raw.bindMemory(to: UInt8.self)
            var i = from + 3
            while i < end {
                // An empty line however it ends (bare LF included: the parser then answers 400).
                if p[i] == 0x0A && (p[i - 1] == 0x0A || (p[i - 1] == 0x0D && p[i - 2] == 0x0A)) { return true }
                i += 1
            }
            return false
        }
    }

    private func beginBody(_ h: HTTPRequestHead) {
        requestStarted = loop.now
        if h.isChunked {
            chunked = ChunkedBodyDecoder(maxBodyBytes: limits.maxBodyBytes)
            bodyRemaining = 0
        } else {
            chunked = nil
            bodyRemaining = h.contentLength ?? 0
        }
        head = h
        if chunked == nil && bodyRemaining == 0 {
            dispatchRequest()
            return
        }
        // The parser already refused a declared body over the limit (413), so the client that
        // waits for "100 Continue" gets the 413 instead and never sends the body.
        if h.expectsContinue && h.versionMinor >= 1 && inputStart == input.count {
            output.append(contentsOf: HTTPConnection.continueLine)
        }
        if bodyRemaining > 0 { body.reserveCapacity(bodyRemaining) }
        phase = .body
        setDeadline(after: limits.bodyReadTimeout, .body)
    }

    private static let continueLine: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// Moves buffered body bytes into `body`; true when the request was dispatched or failed.
    private func readBody() -> Bool {
        let pending = input.count - inputStart
        if pending == 0 { return false }
        if chunked != nil {
            let start = inputStart
            var decoder = chunked!
            let (consumed, result) = input.withUnsafeBytes { raw in
                decoder.feed(UnsafeRawBufferPointer(rebasing: raw[start...]), into: &body)
            }
            chunked = decoder
            inputStart += consumed
            switch result {
            case .needMore: return false
            case .done:
                dispatchRequest()
                return true
            case .error(let e):
                failRequest(e.status, e.reason)
                return true
            }
        }
        let take = min(pending, bodyRemaining)
        body.append(contentsOf: input[inputStart..<(inputStart + take)])
        inputStart += take
        bodyRemaining -= take
        if bodyRemaining > 0 { return false }
        dispatchRequest()
        return true
    }

    private func dispatchRequest() {
        guard let h = head else { return }
        head = nil
        chunked = nil
        phase = .handling
        setDeadline(after: nil, .none)
        keepAlive = h.keepAlive
        isHeadRequest = h.method == "HEAD"
        var req = HTTPRequest(
            method: h.method, target: h.target, versionMinor: h.versionMinor, headers: h.headers,
            body: body, remoteAddress: remoteAddress)
        body = []
        sequence &+= 1
        let match = context.router.match(&req, upgrade: h.isWebSocketUpgrade)
        request = req
        if case .webSocket(let accept) = match {
            handleUpgrade(req, h, accept)
            return
        }
        if let before = context.hooks.before, let early = before(req) {
            complete(sequence: sequence, response: early)
            return
        }
        context.router.dispatch(match, req, HTTPResponder(eventLoop: loop, connection: self, sequence: sequence))
    }

    /// The server's own error answer (400/408/413/414/431/501/505): always closes the connection.
    func failRequest(_ status: Int, _ reason: String) {
        guard phase != .closed, phase != .draining, phase != .lingering else { return }
        let h = head
        head = nil
        chunked = nil
        body = []
        phase = .handling
        keepAlive = false
        isHeadRequest = false
        request = HTTPRequest(
            method: h?.method ?? "", target: h?.target ?? "", versionMinor: h?.versionMinor ?? 1,
            headers: h?.headers ?? HTTPHeaders(), remoteAddress: remoteAddress)
        if requestStarted == 0 { requestStarted = loop.now }
        sequence &+= 1
        complete(sequence: sequence, response: .error(status, reason))
    }

    // ---- responses ----

    /// Queues the response for request `sequence`; stale or late answers are dropped.
    func complete(sequence: UInt64, response: HTTPResponse) {
        guard sequence == self.sequence, phase == .handling else { return }
        var response = response
        if let after = context.hooks.after, let req = request {
            let seconds = Double(System.monotonicNanos() &- requestStarted) / 1e9
            after(req, &response, seconds)
        }
        request = nil
        requestStarted = 0
        writeResponse(response)
        if !keepAlive || peerClosed {
            phase = .draining
            // A client that never reads its last answer must not hold the connection forever.
            setDeadline(after: limits.idleTimeout, .idle)
        } else {
            phase = .head
            if input.count > inputStart {
                setDeadline(after: limits.headerReadTimeout, .header)
            } else {
                setDeadline(after: limits.idleTimeout, .idle)
            }
        }
        if !inProcess {
            inProcess = true
            process()
            inProcess = false
            flush()
        }
    }

    private static let headerSeparator: [UInt8] = [0x3A, 0x20]
    private static let crlf: [UInt8] = [0x0D, 0x0A]
    private static let contentLengthPrefix: [UInt8] = Array("Content-Length: ".utf8)
    private static let keepAliveLine: [UInt8] = Array("Connection: keep-alive\r\n".utf8)
    private static let closeLine: [UInt8] = Array("Connection: close\r\n".utf8)

    /// A CR or LF in a handler's header would split the response (header injection): such fields are dropped.
    @inline(__always)
    static func isSafeField(_ s: String) -> Bool {
        !s.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 }
    }

    private func writeResponse(_ response: HTTPResponse) {
        var r = response
        if r.status < 100 || r.status > 999 { r = .error(500, "invalid status \(r.status)") }
        output.append(contentsOf: HTTPStatus.statusLine(r.status))
        for (name, value) in r.headers {
            if !HTTPConnection.isSafeField(name) || !HTTPConnection.isSafeField(value) { continue }
            if HTTPHeaders.namesEqual(name, "Content-Length") || HTTPHeaders.namesEqual(name, "Date") { continue }
            if HTTPHeaders.namesEqual(name, "Connection") {
                if value.lowercased().contains("close") { keepAlive = false }
                continue
            }
            output.append(contentsOf: name.utf8)
            output.append(contentsOf: HTTPConnection.headerSeparator)
            output.append(contentsOf: value.utf8)
            output.append(contentsOf: HTTPConnection.crlf)
        }
        output.append(contentsOf: loop.dateCache.current())
        let hasBody = HTTPStatus.hasBody(r.status)
        if hasBody {
            output.append(contentsOf: HTTPConnection.contentLengthPrefix)
            output.append(contentsOf: String(r.body.count).utf8)
            output.append(contentsOf: HTTPConnection.crlf)
        }
        if peerClosed { keepAlive = false }
        output.append(contentsOf: keepAlive ? HTTPConnection.keepAliveLine : HTTPConnection.closeLine)
        output.append(contentsOf: HTTPConnection.crlf)
        if hasBody && !isHeadRequest { output.append(contentsOf: r.body) }
    }

    /// Writes the 101 answer by hand: no Content-Length, `Connection: Upgrade`.
    func writeSwitchingProtocols(_ r: HTTPResponse) {
        output.append(contentsOf: HTTPStatus.statusLine(101))
        for (name, value) in r.headers where HTTPConnection.isSafeField(name) && HTTPConnection.isSafeField(value) {
            output.append(contentsOf: name.utf8)
            output.append(contentsOf: HTTPConnection.headerSeparator)
            output.append(contentsOf: value.utf8)
            output.append(contentsOf: HTTPConnection.crlf)
        }
        output.append(contentsOf: loop.dateCache.current())
        output.append(contentsOf: HTTPConnection.crlf)
    }

    /// Nothing more is read or parsed; the connection closes once its output is written.
    func markDraining() {
        guard phase != .closed, phase != .lingering else { return }
        phase = .draining
        updateInterest()
    }

    func becomeUpgraded() {
        phase = .upgraded
        request = nil
        setDeadline(after: nil, .none)
    }

    /// The request the connection is answering (for the upgrade path's hooks).
    var currentRequest: HTTPRequest? { request }
    var currentSequence: UInt64 { sequence }
    var requestStartTime: UInt64 { requestStarted }
}

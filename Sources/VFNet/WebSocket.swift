import Glibc
import Synchronization
import VFSync

/// Callbacks of one WebSocket; all run on the connection's loop thread, so they must not block.
public struct WebSocketHandlers: Sendable {
    public var onOpen: (@Sendable (WebSocket) -> Void)?
    public var onText: (@Sendable (WebSocket, String) -> Void)?
    public var onBinary: (@Sendable (WebSocket, [UInt8]) -> Void)?
    /// Exactly once: the close code sent or received (1005 none given, 1006 connection lost).
    public var onClose: (@Sendable (WebSocket, _ code: UInt16) -> Void)?
    /// Sent back as `Sec-WebSocket-Protocol` (pick one the client offered; browsers fail the
    /// handshake when they offered protocols and none is chosen).
    public var subprotocol: String?
    /// The largest message this endpoint takes from the client, below the server-wide
    /// `HTTPLimits.maxWebSocketMessageBytes`: an endpoint that only needs small control messages
    /// says so, and a client's unfinished fragmented message can pin no more than this (1009).
    public var maxMessageBytes: Int?

    public init(
        onOpen: (@Sendable (WebSocket) -> Void)? = nil,
        onText: (@Sendable (WebSocket, String) -> Void)? = nil,
        onBinary: (@Sendable (WebSocket, [UInt8]) -> Void)? = nil,
        onClose: (@Sendable (WebSocket, _ code: UInt16) -> Void)? = nil
    ) {
        self.onOpen = onOpen
        self.onText = onText
        self.onBinary = onBinary
        self.onClose = onClose
    }
}

private let nextWebSocketID = Atomic<UInt64>(1)

/// A server-side WebSocket. Every public method may be called from any thread: frames are
/// encoded on the caller's thread and handed to the connection's loop.
///
/// `@unchecked Sendable`: the protocol state below the `loop-confined` mark is touched only on
/// the connection's loop thread; the "latest" slot is behind a mutex and `isOpen` is atomic.
public final class WebSocket: @unchecked Sendable, Hashable {
    public let id: UInt64
    let connection: HTTPConnection
    let loop: EventLoop
    private let open = Atomic<Bool>(true)
    /// "Latest wins" slot: at most one encoded frame waits; `scheduled` limits hops to one.
    private let latest = Locked<(frame: [UInt8]?, scheduled: Bool)>((nil, false))

    // loop-confined
    let handlers: WebSocketHandlers
    var assembler: WebSocketMessageAssembler
    var closeSent = false
    var closeCode: UInt16?
    var lastPong: UInt64
    var pingTimer: TimerHandle?
    private var finished = false

    init(connection: HTTPConnection, handlers: WebSocketHandlers) {
        id = nextWebSocketID.wrappingAdd(1, ordering: .relaxed).oldValue
        self.connection = connection
        self.loop = connection.loop
        self.handlers = handlers
        assembler = WebSocketMessageAssembler(
            maxMessageBytes: min(handlers.maxMessageBytes ?? Int.max, connection.limits.maxWebSocketMessageBytes))
        lastPong = connection.loop.now
    }

    public static func == (a: WebSocket, b: WebSocket) -> Bool { a === b }
    public func hash(into h: inout Hasher) { h.combine(id) }

    public var isOpen: Bool { open.load(ordering: .acquiring) }

    public func send(text: String) {
        guard isOpen else { return }
        var s = text
        var frame: [UInt8] = []
        s.withUTF8 { WebSocketFrameCodec.encode(.text, payload: UnsafeRawBufferPointer($0), into: &frame) }
        enqueue(frame)
    }

    public func send(binary: [UInt8]) {
        guard isOpen else { return }
        var frame: [UInt8] = []
        WebSocketFrameCodec.encode(.binary, payload: binary, into: &frame)
        enqueue(frame)
    }

    /// "Latest message wins": a newer message replaces one not yet written, so a slow reader
    /// costs at most one pending message of memory.
    public func sendLatest(binary: [UInt8]) {
        guard isOpen else { return }
        var frame: [UInt8] = []
        WebSocketFrameCodec.encode(.binary, payload: binary, into: &frame)
        putLatest(frame)
    }

    public func sendLatest(text: String) {
        guard isOpen else { return }
        var s = text
        var frame: [UInt8] = []
        s.withUTF8 { WebSocketFrameCodec.encode(.text, payload: UnsafeRawBufferPointer($0), into: &frame) }
        putLatest(frame)
    }

    /// Starts the close handshake; the TCP connection closes when the client answers (or after 2 s).
    public func close(code: UInt16 = 1000, reason: String = "") {
        guard isOpen else { return }
        onLoop { c in c.webSocketClose(code: code, reason: reason) }
    }

    private func enqueue(_ frame: [UInt8]) {
        onLoop { c in c.webSocketEnqueue(frame) }
    }

    private func putLatest(_ frame: [UInt8]) {
        let hop = latest.withLock { slot -> Bool in
            slot.frame = frame
            if slot.scheduled { return false }
            slot.scheduled = true
            return true
        }
        if hop { onLoop { c in c.drainLatest() } }
    }

    private func onLoop(_ body: @escaping @Sendable (HTTPConnection) -> Void) {
        let c = connection
        if loop.inEventLoop { body(c) } else { loop.execute { body(c) } }
    }

    /// Takes the waiting frame; nil when none. Clearing `scheduled` lets the next put hop again.
    func takeLatest() -> [UInt8]? {
        latest.withLock { slot in
            let f = slot.frame
            slot.frame = nil
            slot.scheduled = false
            return f
        }
    }

    /// Connection gone: report the close once and drop everything queued.
    func finish() {
        guard !finished else { return }
        finished = true
        open.store(false, ordering: .releasing)
        if let t = pingTimer { loop.cancel(t) }
        pingTimer = nil
        _ = takeLatest()
        handlers.onClose?(self, closeCode ?? 1006)
    }
}

// ---- the WebSocket side of a connection (loop thread) ----

extension HTTPConnection {
    private static let pingFrame: [UInt8] = {
        var f: [UInt8] = []
        WebSocketFrameCodec.encode(.ping, payload: [], into: &f)
        return f
    }()

    /// Validates the upgrade request and answers 101, or refuses with 400/426.
    func handleUpgrade(
        _ request: HTTPRequest, _ head: HTTPRequestHead, _ accept: @Sendable (HTTPRequest) -> WebSocketHandlers?
    ) {
        let seq = currentSequence
        guard head.isWebSocketUpgrade, head.method == "GET" || head.method == "HEAD" else {
            var r = HTTPResponse.error(426, "WebSocket upgrade required")
            r.headers.add("Upgrade", "websocket")
            r.headers.add("Sec-WebSocket-Version", "13")
            complete(sequence: seq, response: r)
            return
        }
        let version = head.headers["Sec-WebSocket-Version"].map { $0.trimmingASCIISpaces() } ?? ""
        guard version == "13" else {
            var r = HTTPResponse.error(426, "unsupported WebSocket version")
            r.headers.add("Sec-WebSocket-Version", "13")
            complete(sequence: seq, response: r)
            return
        }
        guard let key = head.headers["Sec-WebSocket-Key"]?.trimmingASCIISpaces(), WebSocketHandshake.isValidKey(key)
        else {
            complete(sequence: seq, response: .error(400, "invalid Sec-WebSocket-Key"))
            return
        }
        if let before = context.hooks.before, let early = before(request) {
            complete(sequence: seq, response: early)
            return
        }
        guard let handlers = accept(request) else {
            complete(sequence: seq, response: .error(400, "WebSocket refused"))
            return
        }
        var r = HTTPResponse(
            status: 101,
            headers: HTTPHeaders([
                ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", WebSocketHandshake.acceptValue(forKey: key)),
            ]))
        if let sub = handlers.subprotocol { r.headers.add("Sec-WebSocket-Protocol", sub) }
        if let after = context.hooks.after {
            after(request, &r, Double(System.monotonicNanos() &- requestStartTime) / 1e9)
        }
        writeSwitchingProtocols(r)
        becomeUpgraded()
        let ws = WebSocket(connection: self, handlers: handlers)
        webSocket = ws
        schedulePing(ws)
        handlers.onOpen?(ws)
    }

    private func schedulePing(_ ws: WebSocket) {
        let interval = limits.webSocketPingInterval
        guard interval > 0 else { return }
        let at = loop.now &+ System.nanos(interval)
        ws.pingTimer = loop.scheduleOnLoop(at: at) { [self] in pingTick() }
    }

    private func pingTick() {
        guard phase == .upgraded, let ws = webSocket else { return }
        ws.pingTimer = nil
        let silence = Double(loop.now &- ws.lastPong) / 1e9
        if silence > 2 * limits.webSocketPingInterval {
            abort()  // no pong for two intervals: the peer is gone (onClose 1006)
            return
        }
        if !ws.closeSent {
            output.append(contentsOf: HTTPConnection.pingFrame)
            flush()
        }
        schedulePing(ws)
    }

    /// Decodes and handles every complete frame in the input buffer.
    func webSocketInput() {
        while phase == .upgraded, inputStart < input.count, let ws = webSocket {
            // The endpoint's own limit: a frame announcing more is refused before it is buffered.
            let maxPayload = ws.assembler.maxMessageBytes
            let start = inputStart
            let result = input.withUnsafeBytes {
                WebSocketFrameCodec.decode(UnsafeRawBufferPointer(rebasing: $0[start...]), maxPayload: maxPayload)
            }
            switch result {
            case .incomplete:
                compactWebSocketInput()
                return
            case .error(let code, let reason):
                failWebSocket(ws, code: code, reason: reason)
                return
            case .frame(let frame, let consumed):
                inputStart += consumed
                handleFrame(ws, frame)
            }
        }
        compactWebSocketInput()
    }

    private func compactWebSocketInput() {
        if inputStart == input.count {
            input.removeAll(keepingCapacity: input.capacity <= HTTPConnection.keptBufferCapacity)
            inputStart = 0
        } else if inputStart > 16 * 1024 && inputStart >= input.count / 2 {
            input.removeFirst(inputStart)
            inputStart = 0
        }
    }

    private func handleFrame(_ ws: WebSocket, _ frame: WebSocketFrame) {
        if ws.closeSent && frame.opcode != .close { return }
        switch ws.assembler.push(frame) {
        case .failure(let e):
            failWebSocket(ws, code: e.code, reason: e.reason)
        case .success(let event):
            switch event {
            case .text(let s): ws.handlers.onText?(ws, s)
            case .binary(let b): ws.handlers.onBinary?(ws, b)
            case .ping(let payload):
                WebSocketFrameCodec.encode(.pong, payload: payload, into: &output)
            case .pong:
                ws.lastPong = loop.now
            case .close(let code, let reason):
                if !ws.closeSent {
                    ws.closeSent = true
                    if let code {
                        WebSocketFrameCodec.encodeClose(code: code, reason: reason, into: &output)
                    } else {
                        WebSocketFrameCodec.encode(.close, payload: [], into: &output)
                    }
                }
                if ws.closeCode == nil { ws.closeCode = code ?? 1005 }
                closeWhenFlushed()
            case .none: break
            }
        }
    }

    /// Protocol violation: close frame with the code (1002/1007/1009), then close the TCP connection.
    private func failWebSocket(_ ws: WebSocket, code: UInt16, reason: String) {
        if !ws.closeSent {
            ws.closeSent = true
            WebSocketFrameCodec.encodeClose(code: code, reason: reason, into: &output)
        }
        if ws.closeCode == nil { ws.closeCode = code }
        closeWhenFlushed()
    }

    private func closeWhenFlushed() {
        input = []
        inputStart = 0
        markDraining()
        if !inProcess { flush() }
    }

    func webSocketEnqueue(_ frame: [UInt8]) {
        guard phase == .upgraded, let ws = webSocket, !ws.closeSent else { return }
        output.append(contentsOf: frame)
        if pendingOutput > limits.outputHardLimit {
            abort()  // the client does not read: a regular send must not grow memory without bound
            return
        }
        if !inProcess { flush() }
    }

    /// Moves the "latest" frame into the output when there is room below the high watermark.
    func drainLatest() {
        guard phase == .upgraded, let ws = webSocket else { return }
        if ws.closeSent {
            _ = ws.takeLatest()
            return
        }
        guard pendingOutput < limits.outputHighWatermark else { return }  // flush() calls again on drain
        guard let frame = ws.takeLatest() else { return }
        output.append(contentsOf: frame)
        if !inProcess { flush() }
    }

    func webSocketClose(code: UInt16, reason: String) {
        guard phase == .upgraded, let ws = webSocket, !ws.closeSent else { return }
        ws.closeSent = true
        ws.closeCode = code
        WebSocketFrameCodec.encodeClose(code: code, reason: reason, into: &output)
        setDeadline(at: loop.now &+ HTTPConnection.lingerNanos, .webSocketClosing)
        if !inProcess { flush() }
    }
}

extension String {
    func trimmingASCIISpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}

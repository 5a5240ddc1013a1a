import CVFNetLinux
import Glibc

/// Output, closing and timers of `HTTPConnection` (loop thread only, like the rest of it).
extension HTTPConnection {
    // ---- output ----

    /// Writes what it can (bounded per turn), then settles watermarks, lingering and interest.
    func flush() {
        guard phase != .closed else { return }
        var rounds = 0
        while true {
            rounds += 1
            if !writeSome() { return }
            let pending = pendingOutput
            if pending == 0 {
                if output.capacity > HTTPConnection.keptBufferCapacity {
                    output = []
                } else {
                    output.removeAll(keepingCapacity: true)
                }
                outputStart = 0
                if phase == .draining {
                    startLingering()
                    return
                }
            } else if outputStart >= 64 * 1024 && outputStart >= output.count / 2 {
                // Amortized: the written prefix is dropped only once it is half the buffer.
                output.removeFirst(outputStart)
                outputStart = 0
            }
            // No hard-limit check here: HTTP output is at most one response beyond the high
            // watermark (parsing pauses above it), and WebSocket sends check it when queued.
            var resumed = false
            if readPaused {
                if pending < limits.outputLowWatermark {
                    readPaused = false
                    resumed = true
                    // Reading again: the body's read deadline runs again (a head's: in process()).
                    if phase == .body && timeoutKind == .idle { setDeadline(after: limits.bodyReadTimeout, .body) }
                }
            } else if pending > limits.outputHighWatermark {
                readPaused = true
                pauseReadDeadline()
            }
            if phase == .upgraded, pending < limits.outputHighWatermark, let ws = webSocket, !ws.closeSent,
                let frame = ws.takeLatest()
            {
                output.append(contentsOf: frame)  // written by the next round, no recursion
                resumed = true
            }
            if resumed && rounds < 4 && !inProcess {
                inProcess = true
                process()
                inProcess = false
                continue
            }
            updateInterest()
            return
        }
    }

    /// One bounded burst of `send`; false if the connection died.
    @discardableResult
    func writeSome() -> Bool {
        var written = 0
        while outputStart < output.count && written < HTTPConnection.maxWritePerTurn {
            let n = min(output.count - outputStart, HTTPConnection.maxWritePerTurn - written)
            let start = outputStart
            let result: IOResult<Int>
            do {
                result = try output.withUnsafeBytes {
                    try Socket.write(fd, UnsafeRawBufferPointer(rebasing: $0[start..<(start + n)]))
                }
            } catch {
                abort()
                return false
            }
            guard case .done(let k) = result else { break }
            outputStart += k
            written += k
        }
        return true
    }

    func compactInput() {
        if inputStart == input.count {
            if input.capacity > HTTPConnection.keptBufferCapacity {
                input = []
            } else {
                input.removeAll(keepingCapacity: true)
            }
            inputStart = 0
        } else if inputStart > 16 * 1024 && inputStart >= input.count / 2 {
            input.removeFirst(inputStart)
            inputStart = 0
        }
    }

    // ---- closing ----

    func startLingering() {
        phase = .lingering
        Socket.shutdownWrite(fd)
        if let ws = webSocket {
            // The close handshake is done; the app hears of it now, not after the TCP linger.
            webSocket = nil
            ws.finish()
        }
        input = []
        inputStart = 0
        if peerClosed {
            abort()
            return
        }
        setDeadline(at: loop.now &+ HTTPConnection.lingerNanos, .linger)
        updateInterest()
    }

    func discardInput() {
        let scratch = loop.readScratch
        for _ in 0..<HTTPConnection.maxReadsPerEvent {
            guard case .done(let n) = readOrAbort(into: scratch) else { return }
            lingerBytes += n
            if n == 0 || lingerBytes > HTTPConnection.maxLingerBytes {
                abort()
                return
            }
        }
    }

    /// Closes now and frees everything; a WebSocket gets its `onClose` here, exactly once.
    func abort() {
        guard phase != .closed else { return }
        phase = .closed
        if let t = timer {
            loop.cancel(t)
            timer = nil
        }
        loop.deregister(fd: fd)
        Socket.close(fd)
        input = []
        output = []
        body = []
        head = nil
        chunked = nil
        request = nil
        if let ws = webSocket {
            webSocket = nil  // breaks the connection ↔ socket cycle
            ws.finish()
        }
        context.connectionClosed()
    }

    // ---- timers ----

    func setDeadline(after seconds: Double?, _ kind: Timeout) {
        guard let seconds else {
            deadline = .max
            timeoutKind = kind
            return
        }
        setDeadline(at: loop.now &+ System.nanos(seconds), kind)
    }

    /// One timer per connection at most; a later deadline leaves the armed timer alone and it
    /// re-arms itself when it fires early, so per-request deadline changes cost no heap work.
    func setDeadline(at: UInt64, _ kind: Timeout) {
        deadline = at
        timeoutKind = kind
        if timer == nil || at < timerAt {
            if let t = timer { loop.cancel(t) }
            timerAt = at
            timer = loop.scheduleOnLoop(at: at) { [self] in timerFired() }
        }
    }

    /// While the server does not read (its output is above the high watermark), no read deadline
    /// runs: the request's bytes may all be in, and only the client's slow reading of its answers
    /// holds them, which makes it idle from our side (idleTimeout), not slow to send (408).
    func pauseReadDeadline() {
        if timeoutKind == .header || timeoutKind == .body { setDeadline(after: limits.idleTimeout, .idle) }
    }

    func timerFired() {
        timer = nil
        timerAt = .max
        guard phase != .closed, deadline != .max else { return }
        if System.monotonicNanos() < deadline {
            setDeadline(at: deadline, timeoutKind)
            return
        }
        switch timeoutKind {
        case .none: break
        case .idle, .linger, .webSocketClosing: abort()
        case .header, .body:
            if phase == .head || phase == .body {
                failRequest(408, "Request Timeout")
            } else {
                abort()
            }
        }
    }
}

import Foundation

/// Requests straight to a router and its hooks, without a socket: what a connection does after
/// parsing (routing, the `before` hook, the handler or 404/405, the `after` hook, no body for
/// HEAD), so that an application's routes, validation, auth and CORS can be tested in-process,
/// the way HummingbirdTesting's router client does. Handlers run on `loop` as they would on a
/// connection's loop, and may answer from any thread.
public final class RouterClient: Sendable {
    public let router: Router
    public let hooks: HTTPServerHooks
    public let loop: EventLoop

    public init(router: Router, hooks: HTTPServerHooks = HTTPServerHooks(), loop: EventLoop) {
        self.router = router
        self.hooks = hooks
        self.loop = loop
    }

    /// The answer to `request`, or nil when none came within `timeout` seconds.
    public func send(_ request: HTTPRequest, timeout: Double = 30) -> HTTPResponse? {
        let done = DispatchSemaphore(value: 0)
        let slot = Slot()
        let started = System.monotonicNanos()
        let router = self.router
        let hooks = self.hooks
        loop.execute {
            var routed = request
            let match = router.match(&routed, upgrade: false)
            let req = routed
            let finish: @Sendable (HTTPResponse) -> Void = { response in
                var response = response
                hooks.after?(req, &response, Double(System.monotonicNanos() &- started) / 1e9)
                if req.method == "HEAD" { response.body = [] }
                slot.value = response
                done.signal()
            }
            if let early = hooks.before?(req) { return finish(early) }
            router.dispatch(match, req, HTTPResponder(eventLoop: self.loop, sink: finish))
        }
        guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        return slot.value
    }

    /// `send` of a request built from its parts (`target`: path and query).
    public func send(
        _ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8] = [], timeout: Double = 30
    ) -> HTTPResponse? {
        var h = HTTPHeaders(headers)
        if h["Host"] == nil { h.add("Host", "localhost") }
        if !body.isEmpty && h["Content-Length"] == nil { h.add("Content-Length", String(body.count)) }
        return send(HTTPRequest(method: method, target: target, headers: h, body: body), timeout: timeout)
    }

    /// One answer, handed from the loop thread to the waiting caller.
    /// `@unchecked Sendable`: written once before the semaphore is signalled, read after the wait.
    private final class Slot: @unchecked Sendable {
        var value: HTTPResponse?
    }
}

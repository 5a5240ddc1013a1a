import XCTest

@testable import VFNet

final class RouterTests: XCTestCase {
    private func router() -> Router {
        var r = Router()
        r.get("/streams") { _, res in res.respond(.text("list")) }
        r.post("/streams") { _, res in res.respond(.text("create")) }
        r.get("/streams/{id}") { _, res in res.respond(.text("one")) }
        r.delete("/streams/{id}") { _, res in res.respond(.text("del")) }
        r.get("/streams/{id}/events/{kind}") { _, res in res.respond(.text("ev")) }
        r.get("/streams/latest") { _, res in res.respond(.text("latest")) }
        r.webSocket("/ws/streams/{id}") { _ in WebSocketHandlers() }
        return r
    }

    private func match(_ method: String, _ target: String) -> (Router.Match, HTTPRequest) {
        var req = HTTPRequest(method: method, target: target)
        let m = router().match(&req, upgrade: false)
        return (m, req)
    }

    func testLiteralAndParameterRoutes() {
        var (m, req) = match("GET", "/streams")
        guard case .handler = m else { return XCTFail("\(m)") }
        XCTAssertEqual(req.routePattern, "/streams")

        (m, req) = match("GET", "/streams/abc%20d?x=1")
        guard case .handler = m else { return XCTFail("\(m)") }
        XCTAssertEqual(req.pathParameters, ["id": "abc d"])
        XCTAssertEqual(req.routePattern, "/streams/{id}")
        XCTAssertEqual(req.query, ["x": "1"])

        (m, req) = match("GET", "/streams/7/events/motion")
        guard case .handler = m else { return XCTFail("\(m)") }
        XCTAssertEqual(req.pathParameters, ["id": "7", "kind": "motion"])

        // A literal route wins over a parameter route registered earlier.
        (m, req) = match("GET", "/streams/latest")
        XCTAssertEqual(req.routePattern, "/streams/latest")
    }

    func testNotFoundAndMethodNotAllowed() {
        var (m, _) = match("GET", "/nothing")
        guard case .notFound = m else { return XCTFail("\(m)") }
        (m, _) = match("GET", "/streams/1/2")
        guard case .notFound = m else { return XCTFail("\(m)") }
        (m, _) = match("PATCH", "/streams/9")
        guard case .methodNotAllowed(let allow) = m else { return XCTFail("\(m)") }
        XCTAssertEqual(Set(allow.components(separatedBy: ", ")), ["GET", "DELETE", "HEAD"])
        (m, _) = match("PUT", "/streams")
        guard case .methodNotAllowed(let allow2) = m else { return XCTFail("\(m)") }
        XCTAssertEqual(Set(allow2.components(separatedBy: ", ")), ["GET", "POST", "HEAD"])
    }

    func testHeadUsesGetRoutes() {
        var (m, req) = match("HEAD", "/streams/5")
        guard case .handler = m else { return XCTFail("\(m)") }
        XCTAssertEqual(req.pathParameters["id"], "5")
        (m, req) = match("HEAD", "/streams")
        guard case .handler = m else { return XCTFail("\(m)") }
    }

    func testWebSocketRoute() {
        var req = HTTPRequest(method: "GET", target: "/ws/streams/3")
        guard case .webSocket = router().match(&req, upgrade: true) else { return XCTFail() }
        XCTAssertEqual(req.pathParameters, ["id": "3"])
        XCTAssertEqual(req.routePattern, "/ws/streams/{id}")
    }

    func testEmptySegmentsDoNotBindParameters() {
        var (m, _) = match("GET", "/streams/")
        guard case .notFound = m else { return XCTFail("\(m)") }
        (m, _) = match("GET", "//streams")
        guard case .notFound = m else { return XCTFail("\(m)") }
    }

    func testQueryDecoding() {
        let req = HTTPRequest(method: "GET", target: "/p%C3%A9/x?a=1&b=x+y&c=%41%zz&a=2&flag&=v#frag")
        XCTAssertEqual(req.path, "/pé/x")
        XCTAssertEqual(req.query["a"], "2", "last wins")
        XCTAssertEqual(req.query["b"], "x y")
        XCTAssertEqual(req.query["c"], "A%zz", "a malformed escape stays as sent")
        XCTAssertEqual(req.query["flag"], "")
        XCTAssertEqual(req.query[""], "v")
    }
}

import Foundation
import VFCore
import VFNet
import VFTestSupport
import XCTest

@testable import VFAPI

/// The API without sockets: requests go straight to its router and hooks (VFNet's RouterClient)
/// in front of a real PostgreSQL, covering the route table, validation, auth, CORS and the Host
/// check. The pytest suite stays the end-to-end layer over real sockets.
final class APIRoutesTests: XCTestCase {
    private var pg: TestPostgres?
    private var loop: EventLoop?
    private var servers: [APIServer] = []

    override func setUpWithError() throws {
        pg = try TestPostgres()
        loop = EventLoop.start(name: "api-tests")
    }

    override func tearDown() {
        for s in servers { s.pool.shutdown() }
        loop?.shutdown()
        pg?.close()
    }

    /// An API on the test database with `settings` (environment variables) over the defaults.
    private func client(_ settings: [String: String] = [:]) throws -> RouterClient {
        let pg = try XCTUnwrap(pg)
        var env = ["DATABASE_URL": pg.url, "VF_STATIC_DIR": "/nonexistent"]
        env.merge(settings) { _, new in new }
        let source = try ConfigurationSource(arguments: [], environment: env, settings: APIConfiguration.declarations)
        let api = APIServer(config: try APIConfiguration(source), redis: nil)
        servers.append(api)
        return RouterClient(router: api.makeRouter(), hooks: api.makeHooks(), loop: try XCTUnwrap(loop))
    }

    private func firstIssue(_ v: JSONValue) -> JSONValue? {
        guard case .array(let issues)? = v["detail"] else { return nil }
        return issues.first
    }

    private func json(_ r: HTTPResponse?) throws -> JSONValue { try JSONParser.parse(try XCTUnwrap(r).body) }

    private func send(
        _ c: RouterClient, _ method: String, _ target: String, _ body: String? = nil,
        headers: [(String, String)] = []
    ) throws -> HTTPResponse {
        var h = headers
        if body != nil { h.append(("Content-Type", "application/json")) }
        return try XCTUnwrap(c.send(method, target, headers: h, body: Array((body ?? "").utf8)), "\(method) \(target)")
    }

    func testEveryOperationOfTheTableIsRoutedAndDocumented() throws {
        let c = try client()
        let doc = try json(try send(c, "GET", "/openapi.json"))
        guard case .object(let paths)? = doc["paths"] else { return XCTFail("no paths") }
        let id = UUID().uuidString.lowercased()
        for op in OpenAPIDocument.operations {
            guard case .object(let methods)? = paths.first(where: { $0.0 == op.path })?.1 else {
                return XCTFail("\(op.path) not documented")
            }
            XCTAssertTrue(methods.contains { $0.0 == op.method.lowercased() }, "\(op.method) \(op.path)")
            let target = op.path.replacingOccurrences(of: "{id}", with: id)
                .replacingOccurrences(of: "{zone_id}", with: UUID().uuidString)
            let r = try send(c, op.method, target)
            XCTAssertNotEqual(r.status, 405, "\(op.method) \(op.path) is routed")
            if op.path.contains("{id}") {
                // An operation with a body, sent none: 422 before any lookup (as FastAPI); else 404.
                XCTAssertEqual(r.status, op.body != nil ? 422 : 404, "\(op.method) \(op.path)")
            }
        }
        // A method the table does not list: 405 with the ones it does.
        let r = try send(c, "PATCH", "/streams")
        XCTAssertEqual(r.status, 405)
        XCTAssertEqual(r.headers["Allow"], "GET, POST, HEAD")
        XCTAssertEqual(try send(c, "GET", "/nowhere").status, 404)
        // HEAD answers as GET, without the body.
        let head = try send(c, "HEAD", "/health")
        XCTAssertEqual(head.status, 200)
        XCTAssertTrue(head.body.isEmpty)
    }

    func testStreamsRoundTripAndValidation() throws {
        let c = try client()
        let created = try send(c, "POST", "/streams", #"{"name":"Gate","rtsp_url":"rtsp://admin:pw@gate/live"}"#)
        XCTAssertEqual(created.status, 201)
        let s = try json(created)
        guard case .string(let id)? = s["id"] else { return XCTFail("no id in \(s)") }
        XCTAssertEqual(s["grid_size"], .int(StreamSettings.gridSizeDefault))
        XCTAssertEqual(s["threshold"], .double(StreamSettings.thresholdDefault))
        XCTAssertEqual(s["rtsp_url"], .string("rtsp://admin:***@gate/live"))
        XCTAssertEqual(s["is_active"], .bool(false))

        XCTAssertEqual(try json(try send(c, "GET", "/streams/\(id.uppercased())"))["id"], .string(id))
        let updated = try json(try send(c, "PUT", "/streams/\(id)", #"{"grid_size":32,"rtsp_url":"rtsp://admin:***@gate/live"}"#))
        XCTAssertEqual(updated["grid_size"], .int(32))
        // The masked URL sent back kept the secret.
        XCTAssertEqual(
            try XCTUnwrap(pg).psql("SELECT rtsp_url FROM camera_streams", db: "vectorflow")
                .trimmingCharacters(in: .whitespacesAndNewlines), "rtsp://admin:pw@gate/live")
        XCTAssertEqual(try json(try send(c, "POST", "/streams/\(id)/activate"))["is_active"], .bool(true))
        XCTAssertEqual(try json(try send(c, "POST", "/streams/\(id)/deactivate"))["is_active"], .bool(false))
        guard case .array(let all) = try json(try send(c, "GET", "/streams")) else { return XCTFail("not a list") }
        XCTAssertEqual(all.count, 1)

        // FastAPI-shaped refusals, before anything is stored.
        let missing = try send(c, "POST", "/streams", #"{"name":"x"}"#)
        XCTAssertEqual(missing.status, 422)
        XCTAssertEqual(firstIssue(try json(missing))?["loc"], .array([.string("body"), .string("rtsp_url")]))
        let range = try send(c, "PUT", "/streams/\(id)", #"{"grid_size":\#(StreamSettings.gridSizeRange.upperBound + 1)}"#)
        XCTAssertEqual(range.status, 422)
        XCTAssertEqual(firstIssue(try json(range))?["type"], .string("less_than_equal"))
        let bad = try send(c, "GET", "/streams/not-a-uuid")
        XCTAssertEqual(bad.status, 422)
        XCTAssertEqual(firstIssue(try json(bad))?["type"], .string("uuid_parsing"))
        let form = try XCTUnwrap(
            c.send("POST", "/streams", headers: [("Content-Type", "text/plain")], body: Array("x".utf8)))
        XCTAssertEqual(form.status, 415)
        XCTAssertEqual(try send(c, "GET", "/streams/\(UUID().uuidString)").status, 404)

        XCTAssertEqual(try send(c, "DELETE", "/streams/\(id)").status, 204)
        XCTAssertEqual(try send(c, "DELETE", "/streams/\(id)").status, 404)
    }

    func testTheTokenGuardsWhatTheTableMarks() throws {
        let c = try client(["VF_API_TOKEN": "t0ken"])
        for op in OpenAPIDocument.operations {
            let target = op.path.replacingOccurrences(of: "{id}", with: UUID().uuidString)
            let r = try send(c, op.method, target)
            if op.authenticated {
                XCTAssertEqual(r.status, 401, "\(op.method) \(op.path)")
                XCTAssertEqual(r.headers["WWW-Authenticate"], "Bearer")
                let ok = try send(c, op.method, target, headers: [("Authorization", "bearer t0ken")])
                XCTAssertNotEqual(ok.status, 401, "\(op.method) \(op.path) with the token")
            } else {
                XCTAssertNotEqual(r.status, 401, "\(op.method) \(op.path) is open")
            }
        }
        XCTAssertEqual(try send(c, "GET", "/streams", headers: [("Authorization", "Bearer t0ke")]).status, 401)
    }

    func testCORSAndHost() throws {
        let c = try client(["VF_CORS_ORIGINS": "http://dash.example", "VF_ALLOWED_HOSTS": "api.example"])
        let host = ("Host", "api.example")
        let preflight: (String) throws -> HTTPResponse = { origin in
            try self.send(
                c, "OPTIONS", "/streams",
                headers: [host, ("Origin", origin), ("Access-Control-Request-Method", "DELETE")])
        }
        let allowed = try preflight("http://dash.example")
        XCTAssertEqual(allowed.status, 204)
        XCTAssertEqual(allowed.headers["Access-Control-Allow-Origin"], "http://dash.example")
        let foreign = try preflight("http://evil.example")
        XCTAssertNil(foreign.headers["Access-Control-Allow-Origin"])
        // Same origin is always allowed; the answer names it.
        let same = try send(c, "GET", "/health", headers: [host, ("Origin", "http://api.example")])
        XCTAssertEqual(same.headers["Access-Control-Allow-Origin"], "http://api.example")
        // Another Host (DNS rebinding): refused before routing.
        let rebound = try send(c, "GET", "/health", headers: [("Host", "rebound.example")])
        XCTAssertEqual(rebound.status, 400)
        XCTAssertEqual(try json(rebound), .object([("detail", .string("Invalid host header"))]))
    }
}

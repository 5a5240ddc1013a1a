import Foundation
import VFCore
import VFNet
import VFTestSupport
import XCTest

@testable import VFAPI

/// The zone routes without sockets (VFNet's RouterClient) on a real PostgreSQL: round trip,
/// refusals with nothing stored, the per-stream limit, and zones going with their stream.
final class ZoneRoutesTests: XCTestCase {
    private var pg: TestPostgres?
    private var loop: EventLoop?
    private var servers: [APIServer] = []

    override func setUpWithError() throws {
        pg = try TestPostgres()
        loop = EventLoop.start(name: "zone-tests")
    }

    override func tearDown() {
        for s in servers { s.pool.shutdown() }
        loop?.shutdown()
        pg?.close()
    }

    private func client() throws -> RouterClient {
        let pg = try XCTUnwrap(pg)
        let env = ["DATABASE_URL": pg.url, "VF_STATIC_DIR": "/nonexistent"]
        let source = try ConfigurationSource(arguments: [], environment: env, settings: APIConfiguration.declarations)
        let api = APIServer(config: try APIConfiguration(source), redis: nil)
        servers.append(api)
        return RouterClient(router: api.makeRouter(), hooks: api.makeHooks(), loop: try XCTUnwrap(loop))
    }

    private func send(_ c: RouterClient, _ method: String, _ target: String, _ body: String? = nil) throws
        -> HTTPResponse
    {
        let h = body == nil ? [] : [("Content-Type", "application/json")]
        return try XCTUnwrap(c.send(method, target, headers: h, body: Array((body ?? "").utf8)), "\(method) \(target)")
    }

    private func json(_ r: HTTPResponse) throws -> JSONValue { try JSONParser.parse(r.body) }

    private func zoneCount() throws -> String {
        try XCTUnwrap(pg).psql("SELECT count(*) FROM stream_zones", db: "vectorflow")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func stream(_ c: RouterClient) throws -> String {
        let s = try json(try send(c, "POST", "/streams", #"{"name":"Gate","rtsp_url":"rtsp://gate/live"}"#))
        guard case .string(let id)? = s["id"] else { throw XCTSkip("no stream id in \(s)") }
        return id
    }

    private let square = "[[0.1,0.1],[0.9,0.1],[0.9,0.9],[0.1,0.9]]"

    func testRoundTrip() throws {
        let c = try client()
        let sid = try stream(c)
        let created = try send(
            c, "POST", "/streams/\(sid)/zones", #"{"name":"Walkway","polygon":\#(square),"direction_deg":90}"#)
        XCTAssertEqual(created.status, 201)
        let z = try json(created)
        guard case .string(let zid)? = z["id"] else { return XCTFail("no id in \(z)") }
        XCTAssertEqual(z["stream_id"], .string(sid))
        XCTAssertEqual(z["direction_tolerance_deg"], .double(ZoneRule.toleranceDefault))
        XCTAssertEqual(z["min_vectors"], .int(ZoneRule.minVectorsDefault))
        XCTAssertEqual(z["min_mean_speed"], .null)

        XCTAssertEqual(
            try json(try send(c, "GET", "/streams/\(sid)/zones/\(zid.uppercased())"))["name"], .string("Walkway"))
        let updated = try json(
            try send(c, "PUT", "/streams/\(sid)/zones/\(zid)", #"{"direction_deg":null,"min_vectors":12}"#))
        XCTAssertEqual(updated["min_vectors"], .int(12))
        XCTAssertEqual(updated["direction_deg"], .null)
        XCTAssertEqual(updated["direction_tolerance_deg"], .null, "the tolerance went with its direction")
        XCTAssertEqual(updated["polygon"], try json(created)["polygon"])
        guard case .array(let all) = try json(try send(c, "GET", "/streams/\(sid)/zones")) else {
            return XCTFail("not a list")
        }
        XCTAssertEqual(all.count, 1)

        // A second zone of the same name: 409; renaming onto it too.
        XCTAssertEqual(
            try send(c, "POST", "/streams/\(sid)/zones", #"{"name":"Walkway","polygon":\#(square)}"#).status, 409)
        let other = try json(try send(c, "POST", "/streams/\(sid)/zones", #"{"name":"Door","polygon":\#(square)}"#))
        guard case .string(let oid)? = other["id"] else { return XCTFail("no id in \(other)") }
        XCTAssertEqual(try send(c, "PUT", "/streams/\(sid)/zones/\(oid)", #"{"name":"Walkway"}"#).status, 409)

        XCTAssertEqual(try send(c, "DELETE", "/streams/\(sid)/zones/\(oid)").status, 204)
        XCTAssertEqual(try send(c, "DELETE", "/streams/\(sid)/zones/\(oid)").status, 404)
        XCTAssertEqual(
            try json(try send(c, "GET", "/streams/\(sid)/zones/\(oid)"))["detail"], .string("Zone not found"))
        // The stream's deletion takes its zones.
        XCTAssertEqual(try zoneCount(), "1")
        XCTAssertEqual(try send(c, "DELETE", "/streams/\(sid)").status, 204)
        XCTAssertEqual(try zoneCount(), "0")
    }

    func testRefusalsStoreNothing() throws {
        let c = try client()
        let sid = try stream(c)
        let bad: [(String, Int)] = [
            (#"{"name":"a","polygon":[[0.1,0.1],[0.9,0.1]]}"#, 422),
            (#"{"name":"a","polygon":[[0.1,0.1],[1.9,0.1],[0.5,0.5]]}"#, 422),
            (#"{"name":"a","polygon":[[0.1,0.1],[0.9,0.9],[0.9,0.1],[0.1,0.9]]}"#, 422),
            (#"{"name":"a","polygon":\#(square),"direction_tolerance_deg":5}"#, 422),
            (#"{"name":"a","polygon":\#(square),"shape":"round"}"#, 422),
        ]
        for (body, status) in bad {
            XCTAssertEqual(try send(c, "POST", "/streams/\(sid)/zones", body).status, status, body)
        }
        let unknown = try send(c, "POST", "/streams/\(UUID().uuidString)/zones", #"{"name":"a","polygon":\#(square)}"#)
        XCTAssertEqual(unknown.status, 404)
        XCTAssertEqual(try json(unknown)["detail"], .string("Stream not found"))
        XCTAssertEqual(try send(c, "GET", "/streams/\(UUID().uuidString)/zones").status, 404)
        let badIDs = try send(c, "GET", "/streams/nope/zones/nada")
        XCTAssertEqual(badIDs.status, 422)
        guard case .array(let issues)? = try json(badIDs)["detail"] else { return XCTFail("no issues") }
        XCTAssertEqual(issues.map { $0["type"] }, [.string("uuid_parsing"), .string("uuid_parsing")])
        XCTAssertEqual(try zoneCount(), "0")
    }

    func testTheLimitPerStream() throws {
        let c = try client()
        let sid = try stream(c)
        for k in 0..<ZoneRules.maxZonesPerStream {
            XCTAssertEqual(
                try send(c, "POST", "/streams/\(sid)/zones", #"{"name":"z\#(k)","polygon":\#(square)}"#).status, 201)
        }
        let over = try send(c, "POST", "/streams/\(sid)/zones", #"{"name":"one more","polygon":\#(square)}"#)
        XCTAssertEqual(over.status, 409)
        XCTAssertEqual(try zoneCount(), String(ZoneRules.maxZonesPerStream))
    }
}

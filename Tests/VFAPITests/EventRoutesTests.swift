import Foundation
import VFCore
import VFNet
import VFTestSupport
import XCTest

@testable import VFAPI

/// The motion events' routes without sockets (RouterClient) on a real PostgreSQL: bad query
/// values answered 422 in FastAPI's shape (every bad one reported), unknown ids 404, an empty list.
final class EventRoutesTests: XCTestCase {
    private var pg: TestPostgres?
    private var loop: EventLoop?
    private var servers: [APIServer] = []

    override func setUpWithError() throws {
        pg = try TestPostgres()
        loop = EventLoop.start(name: "event-tests")
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

    private func get(_ c: RouterClient, _ target: String) throws -> (Int, JSONValue?) {
        let r = try XCTUnwrap(c.send("GET", target), target)
        return (r.status, try? JSONParser.parse(r.body))
    }

    /// The `loc` of each issue of a 422 body.
    private func locs(_ body: JSONValue?) -> [[String]] {
        guard case .array(let issues)? = body?["detail"] else { return [] }
        return issues.map { issue in
            guard case .array(let parts)? = issue["loc"] else { return [] }
            return parts.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
        }
    }

    func testBadQueriesAnd404s() throws {
        let c = try client()
        let (status, body) = try get(c, "/events")
        XCTAssertEqual(status, 200)
        XCTAssertEqual(body, .object([("events", .array([])), ("next_cursor", .null)]))
        let bad: [(String, String)] = [
            ("limit=0", "limit"), ("limit=10000", "limit"), ("limit=ten", "limit"), ("cursor=garbage", "cursor"),
            ("since=yesterday", "since"), ("until=2026-02-30T25:00:00Z", "until"), ("since=-1", "since"),
            ("stream_id=12", "stream_id"), ("zone=", "zone"), ("since=2026-12-03T10:00:00", "since"),
        ]
        for (query, field) in bad {
            let (s, b) = try get(c, "/events?\(query)")
            XCTAssertEqual(s, 422, query)
            XCTAssertEqual(locs(b), [["query", field]], query)
        }
        // Every bad value is reported, not only the first.
        let (s, b) = try get(c, "/events?limit=0&cursor=x&stream_id=y")
        XCTAssertEqual(s, 422)
        XCTAssertEqual(
            Set(locs(b).map { $0.joined(separator: ".") }), ["query.limit", "query.cursor", "query.stream_id"])
        let good = [
            "since=1764770000", "since=2026-12-03T10:00:00Z", "until=2026-12-03T10:00:00.5%2B01:00", "limit=500",
            "zone=Door", "stream_id=\(UUID().uuidString)",
        ]
        for q in good {
            XCTAssertEqual(try get(c, "/events?\(q)").0, 200, q)
        }
        let unknown = UUID().uuidString.lowercased()
        XCTAssertEqual(try get(c, "/events/\(unknown)").1, .object([("detail", .string("Event not found"))]))
        XCTAssertEqual(try get(c, "/events/\(unknown)").0, 404)
        XCTAssertEqual(try get(c, "/events/\(unknown)/snapshot.jpg").0, 404)
        let (s2, b2) = try get(c, "/events/not-a-uuid")
        XCTAssertEqual(s2, 422)
        XCTAssertEqual(locs(b2), [["path", "id"]])
    }

    func testTimesAsTheRoutesRead() {
        XCTAssertEqual(EventRoutes.time("0"), 0)
        XCTAssertEqual(EventRoutes.time("1764770000.25"), 1_764_770_000.25)
        XCTAssertEqual(EventRoutes.time("1970-01-01T00:00:00Z"), 0)
        XCTAssertEqual(EventRoutes.time("2026-12-03T14:05:06.5Z"), 1_796_306_706.5)
        XCTAssertEqual(EventRoutes.time("2026-12-03T15:05:06+01:00"), 1_796_306_706)
        XCTAssertEqual(EventRoutes.time("2000-02-29t00:00:00z"), 951_782_400)
        for bad in [
            "", "yesterday", "-5", "1e3", "nan", "2026-12-03", "2026-12-03T14:05:06", "2026-13-03T14:05:06Z",
            "2026-12-03T14:05:06Zjunk", "99999999999999",
        ] {
            XCTAssertNil(EventRoutes.time(bad), bad)
        }
    }
}

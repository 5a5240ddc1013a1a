import Foundation
import VFControl
import VFCore
import VFTestSupport
import XCTest

@testable import VFStore

/// The zone service against a real PostgreSQL: typed results, the observer told of every
/// committed change and of nothing else, and an insert retried with its id adding nothing.
final class ZoneServiceTests: XCTestCase {
    private static func fields(_ name: String) -> ZoneFields {
        var f = ZoneFields()
        f.name = name
        f.polygon = [ZonePoint(x: 0, y: 0), ZonePoint(x: 1, y: 0), ZonePoint(x: 0, y: 1)]
        f.minVectors = 3
        f.minMeanSpeed = .some(nil)
        f.directionDeg = .some(nil)
        f.directionToleranceDeg = .some(nil)
        f.minDurationS = 0
        f.quietTimeS = 1
        return f
    }

    func testOperationsAndTheObserver() throws {
        let pg = try TestPostgres()
        defer { pg.close() }
        let pool = DatabasePool(url: pg.url, size: 2)
        defer { pool.shutdown() }
        let observer = CountingObserver()
        let zones = ZoneService(observer: observer)
        let streams = StreamService()
        let source = StreamFields(name: "s", source: "rtsp://gate/live", gridSize: 16, threshold: 1.2, isActive: false)
        let stream = try XCTUnwrap(onPool(pool) { db in streams.create(source, db) }).get()

        let a = Self.fields("a")
        let z = try XCTUnwrap(onPool(pool) { db in zones.create(streamID: stream.id, a, db) }).get()
        XCTAssertEqual(observer.changes, 1)
        XCTAssertEqual(z.rule.minVectors, 3)
        XCTAssertEqual(
            onPool(pool) { db in zones.create(streamID: stream.id, a, db) }, .failure(.nameTaken))
        let unknown = UUID().uuidString.lowercased()
        XCTAssertEqual(
            onPool(pool) { db in zones.create(streamID: unknown, a, db) }, .failure(.streamNotFound))
        XCTAssertEqual(onPool(pool) { db in zones.get(streamID: stream.id, id: unknown, db) }, .failure(.zoneNotFound))
        XCTAssertEqual(onPool(pool) { db in zones.get(streamID: unknown, id: z.id, db) }, .failure(.streamNotFound))
        XCTAssertEqual(observer.changes, 1, "refusals change nothing")

        // The same insert again (a retry after a lost reply): the stored row, no second one.
        let again = onPool(pool) { db -> Zone? in
            guard case .success(let stored)? = try? ZoneRepository.insert(db, z, limit: ZoneRules.maxZonesPerStream)
            else { return nil }
            return stored
        }
        XCTAssertEqual(again, .some(z))
        XCTAssertEqual(try XCTUnwrap(onPool(pool) { db in zones.list(streamID: stream.id, db) }).get().count, 1)

        var quieter = ZoneFields()
        quieter.quietTimeS = 9
        let change = quieter
        let updated = try XCTUnwrap(onPool(pool) { db in zones.update(streamID: stream.id, id: z.id, change, db) }).get()
        XCTAssertEqual(updated.rule.quietTimeS, 9)
        XCTAssertEqual(observer.changes, 2)
        _ = onPool(pool) { db in zones.update(streamID: stream.id, id: z.id, change, db) }
        XCTAssertEqual(observer.changes, 2, "an update that changes nothing is not a change")

        XCTAssertEqual(onPool(pool) { db in zones.delete(streamID: stream.id, id: z.id, db) }, .success(updated))
        XCTAssertEqual(observer.changes, 3)
        XCTAssertEqual(onPool(pool) { db in zones.delete(streamID: stream.id, id: z.id, db) }, .failure(.zoneNotFound))
    }
}

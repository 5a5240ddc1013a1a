import Foundation
import VFControl
import VFCore
import VFTestSupport
import XCTest

@testable import VFStore

/// Counts what the service tells its observer (a real implementation of the protocol).
final class CountingObserver: DesiredStateObserver, @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    var changes: Int { lock.withLock { n } }
    func desiredStateChanged() { lock.withLock { n += 1 } }
}

/// The stream service against a real PostgreSQL, without sockets.
final class StreamServiceTests: XCTestCase {
    private func fields(_ name: String, active: Bool = false) -> StreamFields {
        StreamFields(name: name, source: "rtsp://gate/live", gridSize: 16, threshold: 1.2, isActive: active)
    }

    func testSchemaMatchesInitSQL() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("init.sql"), encoding: .utf8)
        XCTAssertEqual(
            text.trimmingCharacters(in: .whitespacesAndNewlines),
            Schema.sql.trimmingCharacters(in: .whitespacesAndNewlines))
        // The columns' defaults (for rows other writers add) are the settings' own.
        XCTAssertTrue(Schema.sql.contains("grid_size INTEGER NOT NULL DEFAULT \(StreamSettings.gridSizeDefault),"))
        XCTAssertTrue(
            Schema.sql.contains("threshold DOUBLE PRECISION NOT NULL DEFAULT \(StreamSettings.thresholdDefault),"))
    }

    func testCRUDAndReconnect() throws {
        let pg = try TestPostgres()
        defer { pg.close() }
        let pool = DatabasePool(url: pg.url, size: 2)
        defer { pool.shutdown() }
        let observer = CountingObserver()
        let service = StreamService(observer: observer)
        let f = fields("Gate", active: true)

        let created = try XCTUnwrap(onPool(pool) { service.create(f, $0) }).get()
        XCTAssertEqual(created.settings, StreamSettings(source: "rtsp://gate/live", gridSize: 16, threshold: 1.2))
        XCTAssertTrue(created.isActive)
        let id = created.id
        XCTAssertEqual(observer.changes, 1)

        XCTAssertEqual(try onPool(pool) { service.get(id: id, $0) }?.get(), created)
        let updated = try XCTUnwrap(onPool(pool) { service.update(id: id, StreamFields(gridSize: 32), $0) }).get()
        XCTAssertEqual(updated.settings.gridSize, 32)
        XCTAssertEqual(observer.changes, 2)
        // Nothing changes: nothing to tell.
        _ = onPool(pool) { service.update(id: id, StreamFields(gridSize: 32), $0) }
        XCTAssertEqual(observer.changes, 2)
        XCTAssertEqual(try onPool(pool) { service.setActive(id: id, false, $0) }?.get().isActive, false)
        XCTAssertEqual(observer.changes, 3)

        // What the reconciler records shows in the stream.
        let withWorker = try XCTUnwrap(
            onPool(pool) { db in
                try? StreamRepository.recordWorker(db, id: id, name: "vectorflow-worker-1", startedAt: 1_767_323_045.25)
                return service.get(id: id, db)
            }
        ).get()
        XCTAssertEqual(withWorker.workerContainerName, "vectorflow-worker-1")
        XCTAssertEqual(withWorker.workerStartedAt, "2026-01-02T03:04:05.250000Z")
        let cleared = try XCTUnwrap(
            onPool(pool) { db in
                try? StreamRepository.recordWorker(db, id: id, name: nil, startedAt: nil)
                return service.get(id: id, db)
            }
        ).get()
        XCTAssertNil(cleared.workerStartedAt)
        XCTAssertEqual(try onPool(pool) { service.list($0) }?.get().map(\.id), [id])
        XCTAssertEqual(onPool(pool) { service.get(id: UUID().uuidString.lowercased(), $0) }, .failure(.notFound))

        // The server goes away: fast failures; it comes back: the same pool recovers, nothing lost.
        try pg.stop()
        let t0 = Date()
        XCTAssertEqual(onPool(pool) { service.list($0).map(\.count) }, .failure(.databaseUnavailable))
        XCTAssertEqual(onPool(pool) { service.get(id: id, $0) }, .failure(.databaseUnavailable))
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5)
        try pg.start()
        var recovered = false
        for _ in 0..<100 where !recovered {
            recovered = (try? onPool(pool) { service.get(id: id, $0) }?.get()) != nil
            if !recovered { Thread.sleep(forTimeInterval: 0.1) }
        }
        XCTAssertTrue(recovered)

        XCTAssertEqual(try onPool(pool) { service.delete(id: id, $0) }?.get().id, id)
        XCTAssertEqual(onPool(pool) { service.delete(id: id, $0) }, .failure(.notFound))
        XCTAssertEqual(observer.changes, 4)
    }
}

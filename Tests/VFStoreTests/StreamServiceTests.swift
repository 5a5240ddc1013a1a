import Foundation
import VFCore
import XCTest

@testable import VFStore

/// Records lifecycle calls (a real implementation of the hook protocol, used to see which fire).
final class RecordingLifecycle: StreamLifecycle, @unchecked Sendable {
    private let lock = NSLock()
    private var log: [String] = []
    var events: [String] { lock.withLock { log } }
    private func add(_ s: String) { lock.withLock { log.append(s) } }
    func streamCreated(_ stream: CameraStream) { add("created") }
    func streamUpdated(_ stream: CameraStream, previous: CameraStream) { add("updated") }
    func streamActivated(_ stream: CameraStream) { add("activated") }
    func streamDeactivated(_ stream: CameraStream) { add("deactivated") }
    func streamDeleted(_ stream: CameraStream) { add("deleted") }
}

/// The service layer against a real PostgreSQL, without sockets.
final class StreamServiceTests: XCTestCase {
    private final class Slot: @unchecked Sendable {  // written once before the semaphore signals
        var value: ServiceResponse?
    }

    private func call(_ pool: DatabasePool, _ work: @escaping @Sendable (Database) -> ServiceResponse)
        -> ServiceResponse
    {
        let slot = Slot()
        let done = DispatchSemaphore(value: 0)
        XCTAssertTrue(
            pool.submit { db in
                slot.value = work(db)
                done.signal()
            })
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success)
        return slot.value ?? ServiceResponse(status: 0, body: [])
    }

    private func json(_ r: ServiceResponse) throws -> JSONValue { try JSONParser.parse(r.body) }

    func testSchemaMatchesInitSQL() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("init.sql"), encoding: .utf8)
        XCTAssertEqual(
            text.trimmingCharacters(in: .whitespacesAndNewlines),
            Schema.sql.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func testCRUDAndReconnect() throws {
        let pg = try TestPostgres()
        defer { pg.close() }
        let pool = DatabasePool(url: pg.url, size: 2)
        defer { pool.shutdown() }
        let life = RecordingLifecycle()
        let service = StreamService(validator: StreamValidator(mediaDirectory: nil), lifecycle: life)

        let body = Array(#"{"name":"Gate","rtsp_url":"rtsp://gate/live","is_active":true}"#.utf8)
        let created = call(pool) { service.create(body: body, contentType: "application/json", $0) }
        XCTAssertEqual(created.status, 201)
        guard case .string(let id)? = try json(created)["id"] else { return XCTFail("no id") }
        XCTAssertEqual(try json(created)["grid_size"], .int(16))

        XCTAssertEqual(call(pool) { service.get(id: id, $0) }.body, created.body)
        let updated = call(pool) {
            service.update(id: id, body: Array(#"{"grid_size":32}"#.utf8), contentType: nil, $0)
        }
        XCTAssertEqual(try json(updated)["grid_size"], .int(32))
        XCTAssertEqual(call(pool) { service.setActive(id: id, false, $0) }.status, 200)
        // What the reconciler records shows in the stream's JSON.
        let withWorker = call(pool) { db in
            try? StreamRepository.recordWorker(db, id: id, name: "vectorflow-worker-1", startedAt: 1_767_323_045.25)
            return service.get(id: id, db)
        }
        XCTAssertEqual(try json(withWorker)["worker_container_name"], .string("vectorflow-worker-1"))
        guard case .string(let started)? = try json(withWorker)["worker_started_at"] else {
            return XCTFail("no start time")
        }
        XCTAssertEqual(started, "2026-01-02T03:04:05.250000Z")
        let cleared = call(pool) { db in
            try? StreamRepository.recordWorker(db, id: id, name: nil, startedAt: nil)
            return service.get(id: id, db)
        }
        XCTAssertEqual(try json(cleared)["worker_started_at"], .null)
        let list = try json(call(pool) { service.list($0) })
        guard case .array(let items) = list else { return XCTFail("not a list") }
        XCTAssertEqual(items.count, 1)

        // Bad input never reaches the table.
        XCTAssertEqual(
            call(pool) { service.create(body: Array(#"{"name":"x"}"#.utf8), contentType: nil, $0) }.status, 422)
        XCTAssertEqual(call(pool) { service.get(id: "nope", $0) }.status, 422)
        XCTAssertEqual(call(pool) { service.get(id: UUID().uuidString, $0) }.status, 404)
        XCTAssertEqual(
            try pg.psql("SELECT count(*) FROM camera_streams", db: "vectorflow").trimmingCharacters(
                in: .whitespacesAndNewlines), "1")

        // The server goes away: fast 503s; it comes back: the same pool recovers, nothing lost.
        try pg.stop()
        let t0 = Date()
        XCTAssertEqual(call(pool) { service.list($0) }.status, 503)
        XCTAssertEqual(call(pool) { service.get(id: id, $0) }.status, 503)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5)
        try pg.start()
        var recovered = false
        for _ in 0..<100 where !recovered {
            recovered = call(pool) { service.get(id: id, $0) }.status == 200
            if !recovered { Thread.sleep(forTimeInterval: 0.1) }
        }
        XCTAssertTrue(recovered)

        XCTAssertEqual(call(pool) { service.delete(id: id, $0) }.status, 204)
        XCTAssertEqual(call(pool) { service.delete(id: id, $0) }.status, 404)
        XCTAssertEqual(life.events, ["created", "activated", "updated", "deactivated", "deleted"])
    }
}

import Foundation
import Logging
import VFCore

/// An answer from the service layer: status and JSON body, independent of any socket.
public struct ServiceResponse: Sendable, Equatable {
    public var status: Int
    public var body: [UInt8]

    public init(status: Int, body: [UInt8]) {
        self.status = status
        self.body = body
    }

    public init(_ error: APIError) {
        self.init(status: error.status, body: error.body)
    }
}

/// The `/streams` business logic as plain functions: request body bytes and path parameters in,
/// status and JSON out. Runs on a database pool thread (it calls PostgreSQL synchronously);
/// the HTTP wiring only moves bytes. Every stored-state change goes through `lifecycle`.
public struct StreamService: Sendable {
    public let validator: StreamValidator
    public let lifecycle: any StreamLifecycle
    /// The live status of workers by stream id (from Redis), shown as each stream's `status`.
    /// Called on the pool thread that answers; absent ids get `null`.
    public let statuses: (@Sendable ([String]) -> [String: JSONValue])?

    public init(
        validator: StreamValidator, lifecycle: any StreamLifecycle = StoredStateOnlyLifecycle(),
        statuses: (@Sendable ([String]) -> [String: JSONValue])? = nil
    ) {
        self.validator = validator
        self.lifecycle = lifecycle
        self.statuses = statuses
    }

    private func withStatus(_ streams: [CameraStream]) -> [CameraStream] {
        guard let statuses, !streams.isEmpty else { return streams }
        let found = statuses(streams.map(\.id))
        return streams.map { s in
            var s = s
            s.status = found[s.id]
            return s
        }
    }

    private func withStatus(_ stream: CameraStream) -> CameraStream { withStatus([stream])[0] }

    public func list(_ db: Database) -> ServiceResponse {
        run {
            let streams = withStatus(try StreamRepository.list(db))
            var out: [UInt8] = [UInt8(ascii: "[")]
            out.reserveCapacity(streams.count * 320 + 2)
            for (k, s) in streams.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                s.appendJSON(to: &out)
            }
            out.append(UInt8(ascii: "]"))
            return ServiceResponse(status: 200, body: out)
        }
    }

    public func get(id: String, _ db: Database) -> ServiceResponse {
        guard let id = UUIDText.canonical(id) else { return ServiceResponse(UUIDText.issue(id)) }
        return run {
            guard let s = try StreamRepository.get(db, id: id) else { return ServiceResponse(.streamNotFound) }
            return ServiceResponse(status: 200, body: withStatus(s).json)
        }
    }

    public func create(body: [UInt8], contentType: String?, _ db: Database) -> ServiceResponse {
        let fields: StreamFields
        switch validator.validate(body, contentType: contentType, mode: .create) {
        case .failure(let e): return ServiceResponse(e)
        case .success(let f): fields = f
        }
        // The id is chosen here, once per request, before the INSERT: the store's retry after a
        // lost reply then finds this same row instead of adding a second one.
        let id = UUID().uuidString.lowercased()
        return run {
            let s = try StreamRepository.insert(db, id: id, fields)
            lifecycle.streamCreated(s)
            if s.isActive { lifecycle.streamActivated(s) }
            return ServiceResponse(status: 201, body: s.json)
        }
    }

    /// A partial update: only the fields present in the body change.
    public func update(id rawID: String, body: [UInt8], contentType: String?, _ db: Database) -> ServiceResponse {
        guard let id = UUIDText.canonical(rawID) else { return ServiceResponse(UUIDText.issue(rawID)) }
        var fields: StreamFields
        switch validator.validate(body, contentType: contentType, mode: .update) {
        case .failure(let e): return ServiceResponse(e)
        case .success(let f): fields = f
        }
        return run {
            guard let before = try StreamRepository.get(db, id: id) else { return ServiceResponse(.streamNotFound) }
            // The masked URL the client was shown, sent back as it was: keep the stored secret.
            fields.rtspURL = fields.rtspURL.map { Credentials.unmask($0, stored: before.rtspURL) }
            if fields.isEmpty { return ServiceResponse(status: 200, body: before.json) }
            guard let after = try StreamRepository.update(db, id: id, fields) else {
                return ServiceResponse(.streamNotFound)
            }
            notifyChange(from: before, to: after)
            return ServiceResponse(status: 200, body: after.json)
        }
    }

    public func delete(id rawID: String, _ db: Database) -> ServiceResponse {
        guard let id = UUIDText.canonical(rawID) else { return ServiceResponse(UUIDText.issue(rawID)) }
        return run {
            guard let s = try StreamRepository.delete(db, id: id) else { return ServiceResponse(.streamNotFound) }
            lifecycle.streamDeleted(s)
            return ServiceResponse(status: 204, body: [])
        }
    }

    /// Activate / deactivate: set the desired state; the lifecycle hook makes reality follow.
    public func setActive(id rawID: String, _ active: Bool, _ db: Database) -> ServiceResponse {
        guard let id = UUIDText.canonical(rawID) else { return ServiceResponse(UUIDText.issue(rawID)) }
        return run {
            guard let s = try StreamRepository.setActive(db, id: id, active) else {
                return ServiceResponse(.streamNotFound)
            }
            if active { lifecycle.streamActivated(s) } else { lifecycle.streamDeactivated(s) }
            return ServiceResponse(status: 200, body: s.json)
        }
    }

    private func notifyChange(from before: CameraStream, to after: CameraStream) {
        if before.isActive != after.isActive {
            if after.isActive { lifecycle.streamActivated(after) } else { lifecycle.streamDeactivated(after) }
        } else if before != after {
            lifecycle.streamUpdated(after, previous: before)
        }
    }

    /// Maps database failures to answers: unavailable → 503 "Database unavailable"; timeout → 503
    /// "Database timeout" (a write's outcome is then unknown: it may have been stored); anything
    /// else → 500 with a generic message (the details go to the log, not to the client).
    private func run(_ body: () throws -> ServiceResponse) -> ServiceResponse {
        do {
            return try body()
        } catch {
            switch error as? DatabaseError {
            case .unavailable: return ServiceResponse(.databaseUnavailable)
            case .timeout: return ServiceResponse(.databaseTimeout)
            case .query, nil:
                logError("stream query failed: \(error)")
                return ServiceResponse(APIError(status: 500, detail: "Internal Server Error"))
            }
        }
    }
}

extension APIError {
    /// The database did not answer within its bound (see `DatabaseTimeouts`).
    public static let databaseTimeout = APIError(status: 503, detail: "Database timeout")
}

/// An error of the store, through the API's log (swift-log, label `vectorflow-api.store`).
public func logError(_ message: String) {
    storeLog.error("\(message)")
}
private let storeLog = Logger(label: "vectorflow-api.store")

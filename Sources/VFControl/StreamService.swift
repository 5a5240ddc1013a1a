import Foundation
import VFCore
import VFStore

/// Why a stream operation did not succeed; the API maps each to its answer (APIServer).
public enum StreamError: Error, Sendable, Equatable {
    case notFound
    /// Refused: the database is stopped or restarting.
    case databaseUnavailable
    /// No answer within the call's bound (frozen, partitioned, overloaded): a write's outcome is
    /// then unknown, it may have been stored.
    case databaseTimeout
    /// Any other database failure (its detail goes to the log, not to a client).
    case databaseFailed
}

/// The streams' operations on validated input, with typed results: no HTTP, no bytes. Runs on a
/// database pool thread (it calls PostgreSQL synchronously). Every committed change of the
/// desired state is told to `observer`; answers carry each stream's live `status`.
public struct StreamService: Sendable {
    public let observer: any DesiredStateObserver
    /// The live status of workers by stream id (from Redis), shown as each stream's `status`.
    /// Called on the pool thread that answers; absent ids get `null`.
    public let statuses: (@Sendable ([String]) -> [String: JSONValue])?
    /// Where a failure's detail goes (the log).
    public let log: @Sendable (String) -> Void

    public init(
        observer: any DesiredStateObserver = NoDesiredStateObserver(),
        statuses: (@Sendable ([String]) -> [String: JSONValue])? = nil,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.observer = observer
        self.statuses = statuses
        self.log = log
    }

    public func list(_ db: Database) -> Result<[CameraStream], StreamError> {
        run { withStatus(try StreamRepository.list(db)) }
    }

    /// `id`: a canonical UUID (UUIDText.canonical).
    public func get(id: String, _ db: Database) -> Result<CameraStream, StreamError> {
        run {
            guard let s = try StreamRepository.get(db, id: id) else { throw StreamError.notFound }
            return withStatus([s])[0]
        }
    }

    /// `fields`: a validated create body (every field set).
    public func create(_ fields: StreamFields, _ db: Database) -> Result<CameraStream, StreamError> {
        // The id is chosen here, once per request, before the INSERT: the store's retry after a
        // lost reply then finds this same row instead of adding a second one.
        let id = UUID().uuidString.lowercased()
        return run {
            let s = try StreamRepository.insert(db, id: id, fields)
            observer.desiredStateChanged()
            return s
        }
    }

    /// A partial update: only the fields present change. A masked URL sent back as it was shown
    /// keeps the stored secret.
    public func update(id: String, _ fields: StreamFields, _ db: Database) -> Result<CameraStream, StreamError> {
        run {
            guard let before = try StreamRepository.get(db, id: id) else { throw StreamError.notFound }
            var fields = fields
            fields.source = fields.source.map { Credentials.unmask($0, stored: before.settings.source) }
            if fields.isEmpty { return before }
            guard let after = try StreamRepository.update(db, id: id, fields) else { throw StreamError.notFound }
            if after != before { observer.desiredStateChanged() }
            return after
        }
    }

    /// The deleted stream.
    public func delete(id: String, _ db: Database) -> Result<CameraStream, StreamError> {
        run {
            guard let s = try StreamRepository.delete(db, id: id) else { throw StreamError.notFound }
            observer.desiredStateChanged()
            return s
        }
    }

    /// Activate / deactivate: set the desired state; the observer makes reality follow.
    public func setActive(id: String, _ active: Bool, _ db: Database) -> Result<CameraStream, StreamError> {
        run {
            guard let s = try StreamRepository.setActive(db, id: id, active) else { throw StreamError.notFound }
            observer.desiredStateChanged()
            return s
        }
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

    private func run<T>(_ body: () throws -> T) -> Result<T, StreamError> {
        do {
            return .success(try body())
        } catch let e as StreamError {
            return .failure(e)
        } catch {
            switch error as? DatabaseError {
            case .unavailable: return .failure(.databaseUnavailable)
            case .timeout: return .failure(.databaseTimeout)
            case .query, nil:
                log("stream query failed: \(error)")
                return .failure(.databaseFailed)
            }
        }
    }
}

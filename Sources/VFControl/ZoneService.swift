import Foundation
import VFCore
import VFStore

/// Why a zone operation did not succeed; the API maps each to its answer (APIServer).
public enum ZoneError: Error, Sendable, Equatable {
    case streamNotFound
    case zoneNotFound
    /// The body is well formed but the zone it makes is not valid (geometry, tolerance without
    /// direction): a 422 with the issues.
    case invalid(APIError)
    /// Another zone of the stream has this name.
    case nameTaken
    /// The stream has `ZoneRules.maxZonesPerStream` zones already.
    case tooMany
    case database(StreamError)
}

/// The zones' operations on validated input, with typed results, like `StreamService`. Every
/// committed change is told to `observer` (the workers will need their stream's zones).
public struct ZoneService: Sendable {
    public let observer: any DesiredStateObserver
    public let log: @Sendable (String) -> Void

    public init(
        observer: any DesiredStateObserver = NoDesiredStateObserver(),
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.observer = observer
        self.log = log
    }

    /// `streamID`, `id`: canonical UUIDs (UUIDText.canonical).
    public func list(streamID: String, _ db: Database) -> Result<[Zone], ZoneError> {
        run {
            let zones = try ZoneRepository.list(db, streamID: streamID)
            if zones.isEmpty, try StreamRepository.get(db, id: streamID) == nil { throw ZoneError.streamNotFound }
            return zones
        }
    }

    public func get(streamID: String, id: String, _ db: Database) -> Result<Zone, ZoneError> {
        run { try existing(streamID: streamID, id: id, db) }
    }

    /// `fields`: a validated create body (every field set). The stream is looked up before the
    /// whole-zone rules are checked, so an unknown stream is 404 whatever the polygon.
    public func create(streamID: String, _ fields: ZoneFields, _ db: Database) -> Result<Zone, ZoneError> {
        // Chosen once per request, before the INSERT: a retry after a lost reply finds this row.
        let id = UUID().uuidString.lowercased()
        return run {
            guard try StreamRepository.get(db, id: streamID) != nil else { throw ZoneError.streamNotFound }
            let base = Zone(id: id, streamID: streamID, name: "", polygon: [], rule: ZoneRule(), createdAt: "")
            let zone = fields.applied(to: base)
            if let e = ZoneValidator.check(zone, sent: fields) { throw ZoneError.invalid(e) }
            switch try ZoneRepository.insert(db, zone, limit: ZoneRules.maxZonesPerStream) {
            case .success(let z):
                observer.desiredStateChanged()
                return z
            case .failure(.streamNotFound): throw ZoneError.streamNotFound
            case .failure(.nameTaken): throw ZoneError.nameTaken
            case .failure(.tooMany): throw ZoneError.tooMany
            }
        }
    }

    /// A partial update: only the fields present change; the result obeys every rule.
    public func update(streamID: String, id: String, _ fields: ZoneFields, _ db: Database) -> Result<Zone, ZoneError> {
        run {
            let before = try existing(streamID: streamID, id: id, db)
            let after = fields.applied(to: before)
            if let e = ZoneValidator.check(after, sent: fields) { throw ZoneError.invalid(e) }
            if after == before { return before }
            if after.name != before.name,
                try ZoneRepository.list(db, streamID: streamID).contains(where: { $0.name == after.name })
            {
                throw ZoneError.nameTaken
            }
            guard let stored = try ZoneRepository.update(db, after) else { throw ZoneError.zoneNotFound }
            observer.desiredStateChanged()
            return stored
        }
    }

    /// The deleted zone.
    public func delete(streamID: String, id: String, _ db: Database) -> Result<Zone, ZoneError> {
        run {
            guard let z = try ZoneRepository.delete(db, streamID: streamID, id: id) else {
                _ = try existing(streamID: streamID, id: id, db)  // which of the two is missing
                throw ZoneError.zoneNotFound
            }
            observer.desiredStateChanged()
            return z
        }
    }

    private func existing(streamID: String, id: String, _ db: Database) throws -> Zone {
        if let z = try ZoneRepository.get(db, streamID: streamID, id: id) { return z }
        guard try StreamRepository.get(db, id: streamID) != nil else { throw ZoneError.streamNotFound }
        throw ZoneError.zoneNotFound
    }

    private func run<T>(_ body: () throws -> T) -> Result<T, ZoneError> {
        do {
            return .success(try body())
        } catch let e as ZoneError {
            return .failure(e)
        } catch {
            switch error as? DatabaseError {
            case .unavailable: return .failure(.database(.databaseUnavailable))
            case .timeout: return .failure(.database(.databaseTimeout))
            // A concurrent create or rename won the name between the check and the write.
            case .query(let state, _) where state == "23505": return .failure(.nameTaken)
            case .query, nil:
                log("zone query failed: \(error)")
                return .failure(.database(.databaseFailed))
            }
        }
    }
}

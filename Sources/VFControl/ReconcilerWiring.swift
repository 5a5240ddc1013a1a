import Foundation
import VFBus
import VFCore
import VFLive
import VFRuntime
import VFStore

/// `waitForWorker(streamID) { failure in ... }`: calls back (on the reconciler's thread) after the
/// runtime's next pass with that stream's error, or nil when its worker runs.
public typealias WorkerStartObserver = @Sendable (String, @escaping @Sendable ((status: Int, message: String)?) -> Void) -> Void

/// The reconciler's desired state, read through a database pool of its own: the reconciler thread
/// queues a job and waits for it, so no event loop ever waits on PostgreSQL and requests never
/// compete with the reconciler for connections. The SQL is StreamRepository's.
public final class PostgresDesiredState: DesiredStateStore {
    let pool: DatabasePool
    public init(pool: DatabasePool) { self.pool = pool }

    public func desiredWorkers() throws -> [WorkerSpec] {
        try run { db in
            // The zones of all active streams in one query, not one per stream.
            let zones = try ZoneRepository.ofActiveStreams(db)
            return try StreamRepository.desiredWorkers(db).map { w in
                WorkerSpec(
                    streamID: w.id, streamName: w.name, settings: w.settings, recordedContainerName: w.workerContainerName,
                    recordedStartedAt: w.workerStartedAt, zones: zones[w.id] ?? [])
            }
        }
    }

    public func recordWorker(streamID: String, containerName: String?, startedAt: Double?) throws {
        try run { db in try StreamRepository.recordWorker(db, id: streamID, name: containerName, startedAt: startedAt) }
    }

    private func run<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        guard
            pool.submit({ db in
                box.value = Result { try body(db) }
                done.signal()
            })
        else { throw RuntimeError(.local, "database pool is full or stopping") }
        // Each call of the pool is bounded by `timeouts.call`; the reconciler is this pool's only
        // user and waits for each job, so at most one job is ahead of this one. Past that bound the
        // pass fails (and the next one retries) instead of holding the reconciler thread.
        let limit = pool.timeouts.call * 2 + 1
        guard done.wait(timeout: .now() + limit) == .success, let result = box.value else {
            throw RuntimeError(.local, "database did not answer within \(limit) s")
        }
        return try result.get()
    }
}

/// Hands one result from a pool thread to the waiting reconciler thread.
/// `@unchecked Sendable`: written once before the semaphore is signalled, read after the wait.
private final class ResultBox<T>: @unchecked Sendable {
    var value: Result<T, any Error>?
}

/// Writes the reconciler's start failures into the streams' status hashes (the same hash the
/// workers keep, `vectorflow:status:<id>`): a worker that could not be started never reports, so
/// without this the stream would show "starting" forever. The TTL outlives a few passes, so the
/// failure stays visible while it lasts and goes once a worker runs (and writes its own status).
public struct StartFailureReporter: Sendable {
    let redis: RedisClient
    let ttl: Int

    public init(redis: RedisClient, ttl: Int) {
        self.redis = redis
        self.ttl = ttl
    }

    public func publish(_ report: ReconcileReport) {
        let now = String(format: "%.3f", Date().timeIntervalSince1970)
        var failures = report.startFailures
        for (streamID, p) in report.placements {
            // A cluster runtime's task, in a hash of its own (the worker rewrites and deletes its
            // status hash): the status of GET /streams shows it as `task`. A task the engine could
            // not run also shows the engine's message like any start failure.
            let key = RedisKeys.task(streamID)
            _ = try? redis.command([
                "HSET", key, "state", p.taskState, "node", p.nodeName, "node_id", p.nodeID,
                "error", Credentials.maskText(p.message), "updated_at", now,
            ])
            _ = try? redis.command(["EXPIRE", key, String(ttl)])
            if p.taskState != "running" && !p.message.isEmpty && failures[streamID] == nil {
                let node = p.nodeName.isEmpty ? String(p.nodeID.prefix(12)) : "\(p.nodeName) (\(p.nodeID.prefix(12)))"
                failures[streamID] = RuntimeError(.engine, "swarm task \(p.taskState) on node \(node): \(p.message)")
            }
        }
        // A stopped worker has no task any more.
        for streamID in report.stopped where report.placements[streamID] == nil {
            _ = try? redis.command(["DEL", RedisKeys.task(streamID)])
        }
        for (streamID, error) in failures {
            let key = RedisKeys.status(streamID)
            _ = try? redis.command([
                "HSET", key, "state", "failed", "fps", "0", "last_error", Credentials.maskText(error.message),
                "updated_at", now,
            ])
            _ = try? redis.command(["EXPIRE", key, String(ttl)])
        }
    }
}

/// Every committed change asks the reconciler for a pass; it does the work on its own thread.
public struct ReconcilingObserver: DesiredStateObserver {
    let reconciler: StreamReconciler
    public init(reconciler: StreamReconciler) { self.reconciler = reconciler }
    public func desiredStateChanged() { reconciler.kick() }
}

extension StreamReconciler {
    /// The activation answer: the error of the next pass for `streamID` (502 engine refused,
    /// 503 engine unreachable), or nil.
    public var workerStartObserver: WorkerStartObserver {
        { [self] streamID, done in
            kick { report in
                if let e = report.errors[streamID] ?? report.failure {
                    done((e.httpStatus, e.message))
                } else {
                    done(nil)
                }
            }
        }
    }
}

extension FrameBroadcaster {
    /// RFC 3339 UTC with milliseconds, like the stream's other timestamps.
    static func isoTime(_ seconds: Double) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: seconds))
    }

    /// A cluster runtime's task as the `task` member of a stream's status (absent for the local
    /// runtimes): its state, node (hostname and id) and the engine's error, masked.
    static func taskJSON(_ t: TaskStatus) -> JSONValue {
        .object([
            ("state", .string(t.state)),
            ("node", t.node.map(JSONValue.string) ?? .null),
            ("node_id", t.nodeID.map(JSONValue.string) ?? .null),
            ("error", t.error.map { .string(Credentials.maskText($0)) } ?? .null),
        ])
    }

    /// Worker statuses as the `status` member of each stream's JSON.
    public var statusProvider: @Sendable ([String]) -> [String: JSONValue] {
        { [self] ids in
            statuses(for: ids).mapValues { s -> JSONValue in
                var members: [(String, JSONValue)] = [
                    ("state", .string(s.state)),
                    ("fps", s.fps.flatMap { $0.isFinite ? JSONValue.double($0) : nil } ?? .null),
                    (
                        "last_error",
                        s.lastError.flatMap { $0.isEmpty ? nil : JSONValue.string(Credentials.maskText($0)) } ?? .null
                    ),
                    ("updated_at", s.updatedAt.map { .string(Self.isoTime($0)) } ?? .null),
                ]
                if let task = s.task { members.append(("task", Self.taskJSON(task))) }
                return .object(members)
            }
        }
    }
}

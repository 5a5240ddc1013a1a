import Foundation
import Logging
import VFCore

/// What one worker must run: a stream's identity and its settings. The reconciler builds these
/// from the active rows of `camera_streams` (StreamRepository.desiredWorkers).
public struct WorkerSpec: Sendable, Equatable {
    public var streamID: String
    public var streamName: String
    public var settings: StreamSettings
    /// The `worker_container_name` the database holds now; lets the reconciler skip rewriting it.
    public var recordedContainerName: String?
    /// The `worker_started_at` the database holds now (seconds since 1970), if the store reads it:
    /// lets the reconciler record a restart the runtime did on its own.
    public var recordedStartedAt: Double?
    /// The stream's zones (`stream_zones`), handed to the worker as `ZONES`.
    public var zones: [Zone]

    public init(
        streamID: String, streamName: String, settings: StreamSettings, recordedContainerName: String? = nil,
        recordedStartedAt: Double? = nil, zones: [Zone] = []
    ) {
        self.streamID = streamID
        self.streamName = streamName
        self.settings = settings
        self.zones = zones
        self.recordedContainerName = recordedContainerName
        self.recordedStartedAt = recordedStartedAt
    }

    /// The name of this stream's worker (container name, process label, file_sd job).
    public var workerName: String { WorkerSpec.workerName(streamID: streamID) }

    public static func workerName(streamID: String) -> String { "vector-worker-\(streamID)" }

    /// A stable digest of the settings that need a restart when they change (all of
    /// StreamSettings, and the zones). The name is left out on purpose: renaming a stream should
    /// not interrupt its analysis. Without zones the formula is that of every earlier version, so a
    /// new API adopts old workers; zones add their `ZONES` text, so a zone change restarts the
    /// worker with its new zones.
    public var configHash: String {
        // FNV-1a 64: stable across processes and versions, unlike Hasher.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var text = "\(settings.source)\u{0}\(settings.gridSize)\u{0}\(settings.threshold)"
        if !zones.isEmpty { text += "\u{0}" + ZoneEnvironment.encode(zones) }
        for byte in text.utf8 {
            h ^= UInt64(byte)
            h &*= 0x0000_0100_0000_01b3
        }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The worker's environment: the settings' own codec, the zones' (`ZONES`, left out when there
    /// are none), and where the worker reports.
    public func environment(redisURL: String, metricsHost: String, metricsPort: Int, loop: Bool = true) -> [String:
        String]
    {
        var env = settings.environment
        if !zones.isEmpty { env[ZoneEnvironment.variable] = ZoneEnvironment.encode(zones) }
        return env.merging(
            [
                "STREAM_ID": streamID,
                "STREAM_NAME": streamName,
                "REDIS_URL": redisURL,
                "METRICS_HOST": metricsHost,
                "METRICS_PORT": String(metricsPort),
                "LOOP": loop ? "true" : "false",
            ], uniquingKeysWith: { _, new in new })
    }
}

/// The process runtime's state records hold specs: the same flat keys as every earlier version,
/// so a new API reads the records an old one wrote.
extension WorkerSpec: Codable {
    enum CodingKeys: String, CodingKey {
        case streamID, streamName, sourceURL, gridSize, threshold, recordedContainerName, recordedStartedAt
        /// `ZONES`' text; absent in records without zones (and in those of earlier versions).
        case zones
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        streamID = try c.decode(String.self, forKey: .streamID)
        streamName = try c.decode(String.self, forKey: .streamName)
        settings = StreamSettings(
            source: try c.decode(String.self, forKey: .sourceURL), gridSize: try c.decode(Int.self, forKey: .gridSize),
            threshold: try c.decode(Double.self, forKey: .threshold))
        recordedContainerName = try c.decodeIfPresent(String.self, forKey: .recordedContainerName)
        recordedStartedAt = try c.decodeIfPresent(Double.self, forKey: .recordedStartedAt)
        let zonesText = try c.decodeIfPresent(String.self, forKey: .zones) ?? ""
        do {
            zones = try ZoneEnvironment.decode(zonesText, streamID: streamID)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .zones, in: c, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(streamID, forKey: .streamID)
        try c.encode(streamName, forKey: .streamName)
        try c.encode(settings.source, forKey: .sourceURL)
        try c.encode(settings.gridSize, forKey: .gridSize)
        try c.encode(settings.threshold, forKey: .threshold)
        try c.encodeIfPresent(recordedContainerName, forKey: .recordedContainerName)
        try c.encodeIfPresent(recordedStartedAt, forKey: .recordedStartedAt)
        if !zones.isEmpty { try c.encode(ZoneEnvironment.encode(zones), forKey: .zones) }
    }
}

/// The lifecycle state of a worker as its runtime sees it.
public enum WorkerState: String, Sendable, Codable {
    /// Running (or being started by the engine).
    case running
    /// Died and is waiting for the runtime's own restart (backoff); the reconciler leaves it be.
    case restarting
    /// Stopped for good (exited container, or a process the runtime gave up on): needs replacing.
    case exited
}

/// One worker the runtime knows about.
public struct WorkerInfo: Sendable, Equatable {
    public var streamID: String
    public var streamName: String
    /// Container name (docker) or worker name (process); what goes into `worker_container_name`.
    public var name: String
    public var configHash: String
    public var state: WorkerState
    /// Seconds since 1970 when this worker was started.
    public var startedAt: Double?
    /// `host:port` where Prometheus scrapes this worker's /metrics.
    public var metricsTarget: String?
    /// Process id (process runtime) or container id (docker), for logs and tests.
    public var identifier: String
    /// Where a cluster runtime (swarm) placed the worker; nil for the local runtimes.
    public var placement: WorkerPlacement? = nil

    public init(
        streamID: String, streamName: String, name: String, configHash: String, state: WorkerState,
        startedAt: Double?, metricsTarget: String?, identifier: String
    ) {
        self.streamID = streamID
        self.streamName = streamName
        self.name = name
        self.configHash = configHash
        self.state = state
        self.startedAt = startedAt
        self.metricsTarget = metricsTarget
        self.identifier = identifier
    }
}

/// Where a cluster runtime runs a worker: the node, the engine's task state and its last error.
public struct WorkerPlacement: Sendable, Equatable {
    public var nodeID: String
    /// The node's hostname (`Description.Hostname`); empty when the engine does not know the node.
    /// Several nodes may share one (containers, VMs cloned from one image): `nodeID` tells them apart.
    public var nodeName: String = ""
    /// The node's address (`Status.Addr`): the worker is scraped there (host networking).
    public var address: String
    /// The engine's task state (`running`, `pending`, `preparing`, `rejected`, ...).
    public var taskState: String
    /// The engine's error for the task (an image it cannot pull, a port in use); empty when none.
    public var message: String
    /// Seconds since 1970 when the task entered its state.
    public var since: Double? = nil

    public init(nodeID: String, address: String, taskState: String, message: String) {
        self.nodeID = nodeID
        self.address = address
        self.taskState = taskState
        self.message = message
    }
}

/// A runtime failure the API can show to a person. `httpStatus` says how the API answers it:
/// 503 when the engine cannot be reached, 502 when it answered with an error.
public struct RuntimeError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// The engine (socket, daemon) cannot be reached or timed out.
        case unavailable
        /// The engine answered with an error (bad image, conflict, limits...).
        case engine
        /// A local failure: spawn, file system, configuration.
        case local
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var httpStatus: Int {
        switch kind {
        case .unavailable: 503
        case .engine, .local: 502
        }
    }

    public var description: String { message }
}

/// Runs and stops per-stream workers. Every method blocks (engine calls, waiting for a process
/// to exit): call them from the reconciler's thread or a pool, never from an event loop.
public protocol WorkerRuntime: Sendable {
    /// "docker", "process" or "swarm", for logs and /health.
    var kind: String { get }
    /// True when `start` changes an existing worker in place (a swarm service update): the
    /// reconciler then does not stop the old one first.
    var updatesInPlace: Bool { get }
    /// One-time readiness (engine reachable, image present or built). Idempotent; cheap when done.
    func prepare() throws(RuntimeError)
    /// Every worker this runtime manages (by label or state record), running or not.
    func list() throws(RuntimeError) -> [WorkerInfo]
    /// Starts a worker for `spec`, replacing any leftover of the same stream.
    func start(_ spec: WorkerSpec) throws(RuntimeError) -> WorkerInfo
    /// Stops the stream's worker (SIGTERM, then SIGKILL after `timeout` seconds) and removes it.
    /// Succeeds when there is nothing to stop.
    func stop(streamID: String, timeout: Double) throws(RuntimeError)
}

extension WorkerRuntime {
    public var updatesInPlace: Bool { false }
}

/// Where log lines of the runtime go; the API passes its own logger.
public typealias RuntimeLog = @Sendable (String) -> Void

/// The default log: swift-log, label `vectorflow-api.runtime`.
public let stderrRuntimeLog: RuntimeLog = { line in runtimeLogger.info("\(line)") }
private let runtimeLogger = Logger(label: "vectorflow-api.runtime")

import Foundation
import VFCore

/// The API's worker-runtime settings, read with the project's one configuration loader, and the
/// factory that turns them into a runtime, a file_sd writer and a reconciler.
public struct RuntimeSettings: Sendable {
    /// `VF_RUNTIME`: "docker", "process", or unset (docker if the socket answers, else process).
    public var runtime: String?
    public var dockerHost: String
    public var workerImage: String
    public var workerNetwork: String
    /// `VF_WORKER_BUILD_CONTEXT` / `VF_WORKER_DOCKERFILE`: where to build the image from when missing.
    public var buildContext: String?
    public var dockerfile: String
    public var workerBinary: String
    public var stateDirectory: String
    public var fileSDPath: String
    /// `VF_WORKER_REDIS_URL`: Redis as the workers reach it (default: the API's own REDIS_URL).
    public var workerRedisURL: String
    public var reconcileInterval: Double
    public var stopTimeout: Double
    /// Swarm runtime: `VF_SWARM_CONSTRAINTS` (comma-separated), `VF_SWARM_SPREAD` (a spread
    /// preference, none by default), `VF_SWARM_METRICS_PORTS` (`LOW-HIGH`, host ports for
    /// /metrics), `VF_WORKER_PUSH` (push the image to its registry).
    public var swarmConstraints: [String]
    public var swarmSpread: String
    public var swarmMetricsPorts: ClosedRange<Int>
    public var pushWorkerImage: Bool
    /// `VF_SOURCE_ALLOW` / `VF_SOURCE_DENY`, with the platform's own services always denied:
    /// handed to every worker, which checks its source against it (see SourcePolicy).
    public var sourcePolicy: SourcePolicy
    /// `LOG_LEVEL` / `LOG_FORMAT` as the API was given them: its workers log the same way.
    public var workerLogEnvironment: [String: String]

    /// The runtime's settings, declared once (part of `vectorflow-api --help`).
    public static let declarations: [Setting] = [
        .string(
            "VF_RUNTIME", nil, shown: "docker if its socket answers, else process",
            "worker runtime: docker, process or swarm"),
        .string(
            "DOCKER_HOST", "unix:///var/run/docker.sock", "Docker Engine API socket (unix://PATH or tcp://HOST:PORT)"),
        .string(
            "VF_WORKER_IMAGE", "vectorflow-worker:latest",
            "worker image (built from VF_WORKER_BUILD_CONTEXT when missing)"),
        .string("VF_WORKER_NETWORK", "host", "container network of the workers (docker)"),
        .string("VF_WORKER_BUILD_CONTEXT", nil, "folder the worker image is built from when it is missing"),
        .string("VF_WORKER_DOCKERFILE", "Dockerfile.worker", "Dockerfile in VF_WORKER_BUILD_CONTEXT"),
        .string(
            "VF_WORKER_BIN", nil, shown: "vectorflow-worker beside the API binary", "worker binary (process runtime)"),
        .string(
            "VF_STATE_DIR", nil, shown: ProcessRuntimeConfiguration.defaultStateDirectory,
            "process runtime: folder of the worker records and logs (one live API per folder)"),
        .string("VF_FILE_SD_PATH", "prometheus/file_sd/workers.json", "Prometheus file_sd target file"),
        .string("VF_WORKER_REDIS_URL", nil, shown: "REDIS_URL", "Redis as the workers reach it"),
        .double("VF_RECONCILE_INTERVAL", 5, "seconds between reconciliation passes (0.2-3600)"),
        .double("VF_WORKER_STOP_TIMEOUT", 5, "seconds a worker gets after SIGTERM before SIGKILL (0-120)"),
        .string("VF_SWARM_CONSTRAINTS", "", "swarm: placement constraints, comma-separated"),
        .string(
            "VF_SWARM_SPREAD", "", shown: "none: the scheduler's fewest-tasks choice",
            "swarm: a node label (node.labels.X) replicas spread over"),
        .string("VF_SWARM_METRICS_PORTS", "19100-19999", "swarm: host ports LOW-HIGH for the workers' /metrics"),
        .bool("VF_WORKER_PUSH", false, "swarm: push the worker image to its registry"),
    ] + SourcePolicy.declarations

    /// `apiBinaryDirectory`: where the API binary lives (the default worker binary sits beside it).
    /// `platformServices`: `host:port` of the API's own services (database, Redis, the API), which no
    /// stream may aim a worker at.
    public init(
        _ c: ConfigurationSource, redisURL: String, apiBinaryDirectory: String, platformServices: [String] = []
    ) throws(ConfigurationError) {
        runtime = c.raw("VF_RUNTIME")
        if let r = runtime, r != "docker" && r != "process" && r != "swarm" {
            throw ConfigurationError("VF_RUNTIME must be docker, process or swarm, got \"\(r)\"")
        }
        dockerHost = c.string("DOCKER_HOST")
        guard dockerHost.hasPrefix("unix://") || dockerHost.hasPrefix("tcp://") || dockerHost.hasPrefix("http://")
        else {
            throw ConfigurationError("DOCKER_HOST must be unix://PATH or tcp://HOST:PORT, got \"\(dockerHost)\"")
        }
        workerImage = c.string("VF_WORKER_IMAGE")
        workerNetwork = c.string("VF_WORKER_NETWORK")
        buildContext = c.raw("VF_WORKER_BUILD_CONTEXT")
        dockerfile = c.string("VF_WORKER_DOCKERFILE")
        workerBinary = c.string(
            "VF_WORKER_BIN", default: (apiBinaryDirectory as NSString).appendingPathComponent("vectorflow-worker"))
        stateDirectory = c.string("VF_STATE_DIR", default: ProcessRuntimeConfiguration.defaultStateDirectory)
        fileSDPath = c.string("VF_FILE_SD_PATH")
        workerRedisURL = c.string("VF_WORKER_REDIS_URL", default: redisURL)
        reconcileInterval = try c.double("VF_RECONCILE_INTERVAL", range: 0.2...3600)
        stopTimeout = try c.double("VF_WORKER_STOP_TIMEOUT", range: 0...120)
        swarmConstraints = c.string("VF_SWARM_CONSTRAINTS").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        // No preference by default: the scheduler's own choice (fewest tasks) spreads one-replica
        // services over the nodes; a spread preference would make it random (see SwarmRuntimeConfiguration).
        swarmSpread = c.string("VF_SWARM_SPREAD")
        let ports = c.string("VF_SWARM_METRICS_PORTS").split(separator: "-").map {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        guard ports.count == 2, let low = ports[0], let high = ports[1], 1024 <= low, low <= high, high <= 65535 else {
            throw ConfigurationError("VF_SWARM_METRICS_PORTS must be LOW-HIGH within 1024-65535")
        }
        swarmMetricsPorts = low...high
        pushWorkerImage = try c.bool("VF_WORKER_PUSH")
        workerLogEnvironment = [:]
        for name in ["LOG_LEVEL", "LOG_FORMAT"] { workerLogEnvironment[name] = c.raw(name) }
        let workerRedis = SourceEndpoint(workerRedisURL, defaultPort: 6379)?.rule
        sourcePolicy = try SourcePolicy(c, services: platformServices + [workerRedis].compactMap { $0 })
    }

    /// The runtime these settings ask for. Without `VF_RUNTIME`, docker when its socket answers
    /// within a second, else the embedded process runtime (which fails when another live API
    /// holds its state folder).
    public func makeRuntime(log: @escaping RuntimeLog = stderrRuntimeLog) throws(RuntimeError) -> any WorkerRuntime {
        let kind = runtime ?? (DockerEngineRuntime.isReachable(dockerHost: dockerHost) ? "docker" : "process")
        // Every worker logs as the API does and checks its source against the API's policy.
        let workerEnvironment = workerLogEnvironment.merging(sourcePolicy.environment) { _, new in new }
        if kind == "swarm" {
            var configuration = SwarmRuntimeConfiguration(
                dockerHost: dockerHost, image: workerImage, buildContext: buildContext, dockerfile: dockerfile,
                pushImage: pushWorkerImage, redisURL: workerRedisURL, metricsPorts: swarmMetricsPorts,
                constraints: swarmConstraints, spreadOver: swarmSpread)
            configuration.extraEnvironment.merge(workerEnvironment) { _, new in new }
            return SwarmRuntime(configuration: configuration, log: log)
        }
        if kind == "docker" {
            var configuration = DockerRuntimeConfiguration(
                dockerHost: dockerHost, image: workerImage, buildContext: buildContext, dockerfile: dockerfile,
                network: workerNetwork, redisURL: workerRedisURL)
            configuration.extraEnvironment.merge(workerEnvironment) { _, new in new }
            return DockerEngineRuntime(configuration: configuration, log: log)
        }
        var configuration = ProcessRuntimeConfiguration(
            workerBinary: workerBinary, stateDirectory: stateDirectory, redisURL: workerRedisURL)
        configuration.extraEnvironment.merge(workerEnvironment) { _, new in new }
        return try ProcessRuntime(configuration: configuration, log: log)
    }

    /// A reconciler over `store` and a new runtime, writing file_sd to `fileSDPath`. Call
    /// `start()` on it, and `kick()` after every change to a stream.
    public func makeReconciler(
        store: any DesiredStateStore, log: @escaping RuntimeLog = stderrRuntimeLog,
        onReport: (@Sendable (ReconcileReport) -> Void)? = nil, isLeader: @escaping @Sendable () -> Bool = { true }
    ) throws(RuntimeError) -> StreamReconciler {
        StreamReconciler(
            store: store, runtime: try makeRuntime(log: log), fileSD: FileSDWriter(path: fileSDPath),
            interval: reconcileInterval, stopTimeout: stopTimeout, log: log, onReport: onReport, isLeader: isLeader)
    }
}

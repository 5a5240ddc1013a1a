import Foundation
import VFSync

/// Settings of the Docker Swarm runtime.
public struct SwarmRuntimeConfiguration: Sendable {
    /// `DOCKER_HOST`: a swarm manager's Engine API socket.
    public var dockerHost: String
    /// `VF_WORKER_IMAGE`, may name a registry (`host:port/name:tag`) every node pulls from.
    public var image: String
    /// A folder with a Dockerfile to build `image` from when the manager lacks it (nil: never build).
    public var buildContext: String?
    public var dockerfile: String
    /// `VF_WORKER_PUSH`: push the image to its registry after `prepare` found or built it.
    public var pushImage: Bool
    /// Redis as the workers reach it from their nodes (`VF_WORKER_REDIS_URL`).
    public var redisURL: String
    /// `VF_SWARM_METRICS_PORTS`: the host ports a worker's /metrics may take (host networking).
    public var metricsPorts: ClosedRange<Int>
    /// `VF_SWARM_CONSTRAINTS`: placement constraints (`node.labels.gpu==true`, `node.role==worker`).
    public var constraints: [String]
    /// `VF_SWARM_SPREAD`: a placement preference (`node.labels.zone`); empty (the default) for none.
    /// Without one the scheduler already spreads the workers over nodes: each worker is a
    /// one-replica service, and among the eligible nodes it takes the one with the fewest active
    /// tasks. A spread preference only evens out the replicas of one service; for a one-replica
    /// service every branch holds 0 of them, so the branch is whichever comes first in a Go map
    /// (random, and biased towards one): with `node.labels.vectorflow.zone` set per node, 4 workers
    /// on 3 nodes often all landed on one. Use it only for a label shared by groups of nodes when
    /// a random group per worker is what is wanted; it never balances load.
    public var spreadOver: String
    public var user: String
    /// Limits (0: none) and what the scheduler reserves on a node for each worker (0: nothing).
    public var nanoCPUs: Int
    public var memoryBytes: Int
    public var reservedNanoCPUs: Int
    public var reservedMemoryBytes: Int
    public var pidsLimit: Int
    /// Seconds the engine waits before restarting a failed task: a crashing worker is not a busy loop.
    public var restartDelay: Double
    public var stopGracePeriod: Double
    public var extraEnvironment: [String: String]
    public var requestTimeout: Double
    public var buildTimeout: Double

    public init(
        dockerHost: String = "unix:///var/run/docker.sock", image: String = "vectorflow-worker:latest",
        buildContext: String? = nil, dockerfile: String = "Dockerfile", pushImage: Bool = false,
        redisURL: String = "redis://localhost:6379/0", metricsPorts: ClosedRange<Int> = 19100...19999,
        constraints: [String] = [], spreadOver: String = "", user: String = "10001:10001",
        nanoCPUs: Int = 1_000_000_000, memoryBytes: Int = 512 * 1024 * 1024, reservedNanoCPUs: Int = 100_000_000,
        reservedMemoryBytes: Int = 64 * 1024 * 1024, pidsLimit: Int = 128, restartDelay: Double = 2,
        stopGracePeriod: Double = 5, extraEnvironment: [String: String] = [:], requestTimeout: Double = 30,
        buildTimeout: Double = 900
    ) {
        self.dockerHost = dockerHost
        self.image = image
        self.buildContext = buildContext
        self.dockerfile = dockerfile
        self.pushImage = pushImage
        self.redisURL = redisURL
        self.metricsPorts = metricsPorts
        self.constraints = constraints
        self.spreadOver = spreadOver
        self.user = user
        self.nanoCPUs = nanoCPUs
        self.memoryBytes = memoryBytes
        self.reservedNanoCPUs = reservedNanoCPUs
        self.reservedMemoryBytes = reservedMemoryBytes
        self.pidsLimit = pidsLimit
        self.restartDelay = restartDelay
        self.stopGracePeriod = stopGracePeriod
        self.extraEnvironment = extraEnvironment
        self.requestTimeout = requestTimeout
        self.buildTimeout = buildTimeout
    }
}

/// Runs each worker as a Swarm service `vector-worker-<stream id>` (one replica) through a
/// manager's Engine API. The swarm, not the API, keeps the task running: it restarts a failed
/// worker after `restartDelay` and moves it off a node that went down. The API only creates,
/// updates in place (with the service's version) and removes services, found again by label.
public final class SwarmRuntime: WorkerRuntime, @unchecked Sendable {
    // @unchecked: `pinnedImage` and `hostNetworkID` are guarded by `lock`; the rest is immutable
    // or Sendable (`http`, `engine`).
    public let kind = "swarm"
    public var updatesInPlace: Bool { true }
    public let configuration: SwarmRuntimeConfiguration
    private let http: CurlHTTP
    /// The container runtime over the same socket: version negotiation and image builds.
    private let engine: DockerEngineRuntime
    private let log: RuntimeLog
    private let lock = Lock()
    private var pinnedImage: String?
    private var hostNetworkID: String?

    static let managedLabel = DockerEngineRuntime.managedLabel
    static let portLabel = "vectorflow.metrics_port"

    public init(configuration: SwarmRuntimeConfiguration, log: @escaping RuntimeLog = stderrRuntimeLog) {
        self.configuration = configuration
        self.http = CurlHTTP(dockerHost: configuration.dockerHost)
        self.engine = DockerEngineRuntime(
            configuration: DockerRuntimeConfiguration(
                dockerHost: configuration.dockerHost, image: configuration.image,
                buildContext: configuration.buildContext, dockerfile: configuration.dockerfile,
                requestTimeout: configuration.requestTimeout, buildTimeout: configuration.buildTimeout), log: log)
        self.log = log
    }

    // MARK: Image

    /// The image reference every service runs: `repository@sha256:...` once the registry knows
    /// the image, so every node runs the same build even if the tag moves.
    public var imageReference: String? {
        lock.lock()
        defer { lock.unlock() }
        return pinnedImage
    }

    public func prepare() throws(RuntimeError) {
        if imageReference != nil { return }
        let info = try call("GET", "/info")
        guard info.status == 200, let obj = DockerEngineRuntime.jsonObject(info.body),
            let swarm = obj["Swarm"] as? [String: Any], (swarm["ControlAvailable"] as? Bool) == true
        else {
            throw RuntimeError(.engine, "DOCKER_HOST \(configuration.dockerHost) is not a swarm manager")
        }
        try engine.ensureImage()
        if configuration.pushImage, Self.registry(of: configuration.image) != nil { try push() }
        let pinned = try digestReference() ?? configuration.image
        lock.lock()
        pinnedImage = pinned
        lock.unlock()
        log("swarm workers run \(pinned)")
    }

    /// `host:port` (or a dotted host) when `image` names a registry, as the engine decides it.
    static func registry(of image: String) -> String? {
        guard let slash = image.firstIndex(of: "/") else { return nil }
        let first = image[..<slash]
        return first.contains(".") || first.contains(":") || first == "localhost" ? String(first) : nil
    }

    /// Splits `repo[:tag][@digest]` into the repository and the tag ("latest" when none).
    static func split(_ image: String) -> (repository: String, tag: String) {
        let noDigest = image.split(separator: "@", maxSplits: 1).first.map(String.init) ?? image
        let lastSlash = noDigest.lastIndex(of: "/") ?? noDigest.startIndex
        if let colon = noDigest[lastSlash...].lastIndex(of: ":") {
            return (String(noDigest[..<colon]), String(noDigest[noDigest.index(after: colon)...]))
        }
        return (noDigest, "latest")
    }

    /// POST /images/{name}/push: the push streams JSON lines; an `error` member is a failure.
    public func push() throws(RuntimeError) {
        let (repository, tag) = Self.split(configuration.image)
        log("pushing \(configuration.image)")
        // An empty auth object: the engine asks for one (header or body) even for an open registry.
        let r = try http.request(
            "POST",
            "/v\(try engine.version())/images/\(DockerEngineRuntime.pathEscape(repository))/push?tag=\(DockerEngineRuntime.queryEscape(tag))",
            body: Array("{}".utf8), timeout: configuration.buildTimeout)
        let text = String(decoding: r.body, as: UTF8.self)
        let error = text.split(separator: "\n").compactMap { DockerEngineRuntime.jsonObject(Array($0.utf8))?["error"] as? String }
            .first
        guard r.status == 200, error == nil else {
            throw RuntimeError(.engine, "push of \(configuration.image) failed (HTTP \(r.status)): \(error ?? text.prefix(300).description)")
        }
        log("pushed \(configuration.image)")
    }

    /// `repository@sha256:...` from the registry (`GET /distribution/{name}/json`), or nil when the
    /// image names no registry (a one-node swarm running a local image).
    func digestReference() throws(RuntimeError) -> String? {
        guard Self.registry(of: configuration.image) != nil else {
            log("\(configuration.image) names no registry: other nodes cannot pull it")
            return nil
        }
        let r = try call("GET", "/distribution/\(DockerEngineRuntime.pathEscape(configuration.image))/json")
        guard r.status == 200, let descriptor = DockerEngineRuntime.jsonObject(r.body)?["Descriptor"] as? [String: Any],
            let digest = descriptor["digest"] as? String
        else {
            throw engineError(r, doing: "find the digest of \(configuration.image) (is it pushed?)")
        }
        return "\(Self.split(configuration.image).repository)@\(digest)"
    }

    // MARK: Services

    /// The service body for `spec` (create and update take the same one).
    public static func serviceSpec(
        _ spec: WorkerSpec, configuration c: SwarmRuntimeConfiguration, image: String, metricsPort: Int,
        hostNetwork: String, forceUpdate: Int = 0
    ) -> [String: Any] {
        var env = c.extraEnvironment
        for (k, v) in spec.environment(redisURL: c.redisURL, metricsHost: "0.0.0.0", metricsPort: metricsPort) {
            env[k] = v
        }
        let labels: [String: String] = [
            managedLabel: "true",
            "vectorflow.stream_id": spec.streamID,
            "vectorflow.stream_name": spec.streamName,
            "vectorflow.config_hash": spec.configHash,
            portLabel: String(metricsPort),
            // Host networking: the task is scraped on its node's address at this port.
            "vectorflow.metrics_target": ":\(metricsPort)",
        ]
        var limits: [String: Any] = [:]
        if c.nanoCPUs > 0 { limits["NanoCPUs"] = c.nanoCPUs }
        if c.memoryBytes > 0 { limits["MemoryBytes"] = c.memoryBytes }
        // A worker runs a handful of threads; a fork bomb in a decoder gets no further than this.
        if c.pidsLimit > 0 { limits["Pids"] = c.pidsLimit }
        var reservations: [String: Any] = [:]
        if c.reservedNanoCPUs > 0 { reservations["NanoCPUs"] = c.reservedNanoCPUs }
        if c.reservedMemoryBytes > 0 { reservations["MemoryBytes"] = c.reservedMemoryBytes }
        var placement: [String: Any] = [:]
        if !c.constraints.isEmpty { placement["Constraints"] = c.constraints }
        if !c.spreadOver.isEmpty { placement["Preferences"] = [["Spread": ["SpreadDescriptor": c.spreadOver]]] }
        let container: [String: Any] = [
            "Image": image,
            "Env": env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" },
            "User": c.user,
            "Labels": labels,
            // The Docker runtime's hardening, as far as a task template has it (Engine API 1.41):
            // no-new-privileges has no task field before API 1.46; CapDrop ALL leaves it nothing to gain.
            "ReadOnly": true,
            "CapabilityDrop": ["ALL"],
            // docker-init as PID 1: a young worker still gets its SIGTERM (see DockerEngineRuntime).
            "Init": true,
            "Mounts": [["Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": ["SizeBytes": 16 * 1024 * 1024]]],
            "StopGracePeriod": Int(c.stopGracePeriod * 1e9),
        ]
        return [
            "Name": spec.workerName,
            "Labels": labels,
            "TaskTemplate": [
                "ContainerSpec": container,
                "Resources": ["Limits": limits, "Reservations": reservations],
                "RestartPolicy": ["Condition": "any", "Delay": Int(c.restartDelay * 1e9), "MaxAttempts": 0],
                "Placement": placement,
                "Networks": [["Target": hostNetwork]],
                "ForceUpdate": forceUpdate,
            ] as [String: Any],
            "Mode": ["Replicated": ["Replicas": 1]],
            // One replica bound to one host port: the old task must stop before the new one binds.
            "UpdateConfig": ["Parallelism": 1, "Order": "stop-first", "FailureAction": "continue"],
            "EndpointSpec": ["Mode": "vip"],
        ]
    }

    /// The metrics port of a stream: the first free one of the range, starting from a place fixed
    /// by the stream id, so a stream keeps its port across updates and API restarts.
    static func metricsPort(streamID: String, range: ClosedRange<Int>, taken: Set<Int>) -> Int? {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in streamID.utf8 {
            h ^= UInt64(byte)
            h &*= 0x0000_0100_0000_01b3
        }
        let size = range.count
        let start = Int(h % UInt64(size))
        for i in 0..<size {
            let p = range.lowerBound + (start + i) % size
            if !taken.contains(p) { return p }
        }
        return nil
    }

    private func hostNetwork() throws(RuntimeError) -> String {
        lock.lock()
        if let id = hostNetworkID {
            lock.unlock()
            return id
        }
        lock.unlock()
        let r = try call("GET", "/networks/host")
        guard r.status == 200, let id = DockerEngineRuntime.jsonObject(r.body)?["Id"] as? String else {
            throw engineError(r, doing: "find the host network")
        }
        lock.lock()
        hostNetworkID = id
        lock.unlock()
        return id
    }

    private func services(streamID: String? = nil) throws(RuntimeError) -> [[String: Any]] {
        var labels = ["\(Self.managedLabel)=true"]
        if let streamID { labels.append("vectorflow.stream_id=\(streamID)") }
        let filters = DockerEngineRuntime.queryEscape(Self.json(["label": labels]))
        let r = try call("GET", "/services?filters=\(filters)")
        guard r.status == 200, let items = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [[String: Any]]
        else { throw engineError(r, doing: "list worker services") }
        return items
    }

    public func start(_ spec: WorkerSpec) throws(RuntimeError) -> WorkerInfo {
        try prepare()
        guard let image = imageReference else { throw RuntimeError(.local, "worker image not prepared") }
        let name = spec.workerName
        let all = try services()
        let mine = all.filter { Self.labels($0)["vectorflow.stream_id"] == spec.streamID }
        // At most one service per stream, ever: one of another name (made by hand) goes.
        for s in mine where Self.name(s) != name {
            log("removing extra service \(Self.name(s)) of stream \(spec.streamID)")
            try remove(Self.name(s))
        }
        let existing = mine.first { Self.name($0) == name }
        let ownPort = existing.flatMap { Int(Self.labels($0)[Self.portLabel] ?? "") }
        let taken = Set(all.filter { Self.labels($0)["vectorflow.stream_id"] != spec.streamID }
            .compactMap { Int(Self.labels($0)[Self.portLabel] ?? "") })
        guard let port = ownPort.flatMap({ taken.contains($0) ? nil : $0 })
            ?? Self.metricsPort(streamID: spec.streamID, range: configuration.metricsPorts, taken: taken)
        else { throw RuntimeError(.local, "no free metrics port left in \(configuration.metricsPorts)") }
        let network = try hostNetwork()
        if let existing, let id = existing["ID"] as? String {
            try update(id: id, name: name, spec: spec, image: image, port: port, network: network)
        } else {
            let body = Self.serviceSpec(
                spec, configuration: configuration, image: image, metricsPort: port, hostNetwork: network)
            let r = try call("POST", "/services/create", body: Array(Self.json(body).utf8))
            if r.status == 409 {
                // Created meanwhile (another pass, a replica that was leader a moment ago): update it.
                let again = try services(streamID: spec.streamID).first { Self.name($0) == name }
                guard let id = again?["ID"] as? String else { throw engineError(r, doing: "create \(name)") }
                try update(id: id, name: name, spec: spec, image: image, port: port, network: network)
            } else if r.status != 201 {
                throw engineError(r, doing: "create \(name)")
            } else {
                log("created service \(name) metrics port \(port)")
            }
        }
        return WorkerInfo(
            streamID: spec.streamID, streamName: spec.streamName, name: name, configHash: spec.configHash,
            state: .restarting, startedAt: nil, metricsTarget: nil, identifier: name)
    }

    /// POST /services/{id}/update?version=N with the version just read; a concurrent change
    /// ("update out of sequence") is read again and retried once. ForceUpdate goes up so that a
    /// worker that exited is redeployed even when its settings did not change.
    private func update(
        id: String, name: String, spec: WorkerSpec, image: String, port: Int, network: String
    ) throws(RuntimeError) {
        for attempt in 0..<2 {
            let current = try call("GET", "/services/\(id)")
            guard current.status == 200, let obj = DockerEngineRuntime.jsonObject(current.body),
                let version = (obj["Version"] as? [String: Any])?["Index"] as? Int
            else { throw engineError(current, doing: "inspect \(name)") }
            let force = ((obj["Spec"] as? [String: Any])?["TaskTemplate"] as? [String: Any])?["ForceUpdate"] as? Int ?? 0
            let body = Self.serviceSpec(
                spec, configuration: configuration, image: image, metricsPort: port, hostNetwork: network,
                forceUpdate: force + 1)
            let r = try call("POST", "/services/\(id)/update?version=\(version)", body: Array(Self.json(body).utf8))
            if r.status == 200 {
                log("updated service \(name) (version \(version))")
                return
            }
            let message = DockerEngineRuntime.jsonObject(r.body)?["message"] as? String ?? ""
            if attempt == 0 && message.contains("out of sequence") { continue }
            throw engineError(r, doing: "update \(name)")
        }
    }

    public func stop(streamID: String, timeout: Double) throws(RuntimeError) {
        // By label as well as by name: no service of a stream outlives its stop.
        let named = WorkerSpec.workerName(streamID: streamID)
        var names = Set(try services(streamID: streamID).map(Self.name))
        names.insert(named)
        for n in names.sorted() { try remove(n) }
    }

    private func remove(_ name: String) throws(RuntimeError) {
        let r = try call("DELETE", "/services/\(DockerEngineRuntime.pathEscape(name))")
        guard [200, 404].contains(r.status) else { throw engineError(r, doing: "remove \(name)") }
        if r.status == 200 { log("removed service \(name)") }
    }

    // MARK: What runs where

    public func list() throws(RuntimeError) -> [WorkerInfo] {
        let items = try services()
        if items.isEmpty { return [] }
        let tasks = try tasksByService(items.compactMap { $0["ID"] as? String })
        let nodes = try self.nodes()
        return items.compactMap { s -> WorkerInfo? in
            let labels = Self.labels(s)
            guard let streamID = labels["vectorflow.stream_id"], let id = s["ID"] as? String else { return nil }
            let placement = Self.placement(tasks: tasks[id] ?? [], nodes: nodes)
            let port = labels[Self.portLabel] ?? ""
            let state: WorkerState = placement?.taskState == "running" ? .running : .restarting
            var info = WorkerInfo(
                streamID: streamID, streamName: labels["vectorflow.stream_name"] ?? "", name: Self.name(s),
                configHash: labels["vectorflow.config_hash"] ?? "", state: state,
                startedAt: state == .running ? placement?.since : nil,
                metricsTarget: state == .running && !(placement?.address ?? "").isEmpty
                    ? "\(placement?.address ?? ""):\(port)" : nil,
                identifier: id)
            info.placement = placement
            return info
        }.sorted { $0.streamID < $1.streamID }
    }

    /// GET /tasks of the given services, grouped by service id.
    private func tasksByService(_ ids: [String]) throws(RuntimeError) -> [String: [[String: Any]]] {
        let filters = DockerEngineRuntime.queryEscape(Self.json(["service": ids]))
        let r = try call("GET", "/tasks?filters=\(filters)")
        guard r.status == 200, let items = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [[String: Any]]
        else { throw engineError(r, doing: "list worker tasks") }
        return Dictionary(grouping: items) { $0["ServiceID"] as? String ?? "" }
    }

    /// What `placement` needs to know of a node.
    struct NodeInfo: Sendable, Equatable {
        var address: String
        var state: String
        var hostname: String = ""
    }

    /// Node id → address, state and hostname.
    private func nodes() throws(RuntimeError) -> [String: NodeInfo] {
        let r = try call("GET", "/nodes")
        guard r.status == 200, let items = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [[String: Any]]
        else { throw engineError(r, doing: "list swarm nodes") }
        return Self.nodeInfos(items)
    }

    /// `GET /nodes` as node id → address, state and hostname.
    static func nodeInfos(_ items: [[String: Any]]) -> [String: NodeInfo] {
        var out: [String: NodeInfo] = [:]
        for n in items {
            guard let id = n["ID"] as? String else { continue }
            let status = n["Status"] as? [String: Any] ?? [:]
            let description = n["Description"] as? [String: Any] ?? [:]
            out[id] = NodeInfo(
                address: status["Addr"] as? String ?? "", state: status["State"] as? String ?? "",
                hostname: description["Hostname"] as? String ?? "")
        }
        return out
    }

    /// Where the service's current task is, in what state, and the engine's latest error: the
    /// task the swarm wants running (the newest one), or, when none, the newest task at all.
    static func placement(tasks: [[String: Any]], nodes: [String: NodeInfo]) -> WorkerPlacement?
    {
        func stamp(_ t: [String: Any]) -> String { t["UpdatedAt"] as? String ?? t["CreatedAt"] as? String ?? "" }
        let newest = tasks.sorted { stamp($0) > stamp($1) }
        guard let task = newest.first(where: { ($0["DesiredState"] as? String) == "running" }) ?? newest.first
        else { return nil }
        let status = task["Status"] as? [String: Any] ?? [:]
        let nodeID = task["NodeID"] as? String ?? ""
        let node = nodes[nodeID]
        var message = status["Err"] as? String ?? ""
        if message.isEmpty, (status["State"] as? String) != "running" {
            // The replacement has no error yet: show why its predecessor ended.
            message =
                newest.lazy.compactMap { (($0["Status"] as? [String: Any])?["Err"] as? String) }.first { !$0.isEmpty }
                ?? ""
        }
        var p = WorkerPlacement(
            nodeID: nodeID, address: node?.address ?? "", taskState: status["State"] as? String ?? "unknown",
            message: message)
        p.nodeName = node?.hostname ?? ""
        p.since = parseTime(status["Timestamp"] as? String ?? "")
        return p
    }

    /// Seconds since 1970 of an RFC 3339 time with up to nine fraction digits (the engine's).
    static func parseTime(_ s: String) -> Double? {
        guard s.count >= 20 else { return nil }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        guard let whole = f.date(from: String(s.prefix(19)) + "Z") else { return nil }
        var fraction = 0.0
        if s.count > 20, s[s.index(s.startIndex, offsetBy: 19)] == "." {
            let digits = s.dropFirst(20).prefix { $0.isNumber }
            fraction = Double("0." + digits) ?? 0
        }
        return whole.timeIntervalSince1970 + fraction
    }

    // MARK: Helpers

    private func call(_ method: String, _ path: String, body: [UInt8]? = nil) throws(RuntimeError) -> CurlHTTP.Response
    {
        try http.request(method, "/v\(try engine.version())\(path)", body: body, timeout: configuration.requestTimeout)
    }

    private func engineError(_ r: CurlHTTP.Response, doing what: String) -> RuntimeError {
        let message =
            DockerEngineRuntime.jsonObject(r.body)?["message"] as? String
            ?? String(decoding: r.body.prefix(300), as: UTF8.self)
        return RuntimeError(.engine, "swarm manager refused to \(what) (HTTP \(r.status)): \(message)")
    }

    static func labels(_ service: [String: Any]) -> [String: String] {
        (service["Spec"] as? [String: Any])?["Labels"] as? [String: String] ?? [:]
    }

    static func name(_ service: [String: Any]) -> String {
        (service["Spec"] as? [String: Any])?["Name"] as? String ?? ""
    }

    static func json(_ value: Any) -> String { String(decoding: EngineJSON.encode(value), as: UTF8.self) }
}

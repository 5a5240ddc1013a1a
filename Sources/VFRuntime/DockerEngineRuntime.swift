import Foundation
import VFSync

/// Settings of the Docker Engine runtime.
public struct DockerRuntimeConfiguration: Sendable {
    /// `DOCKER_HOST`: `unix:///var/run/docker.sock` or `tcp://host:port`.
    public var dockerHost: String
    /// `VF_WORKER_IMAGE`.
    public var image: String
    /// A folder with a Dockerfile to build `image` from when the engine lacks it (nil: never build).
    public var buildContext: String?
    /// The Dockerfile's path inside the build context.
    public var dockerfile: String
    /// `VF_WORKER_NETWORK`: `host`, or a user network where workers are reachable by name.
    public var network: String
    public var redisURL: String
    /// The metrics port inside a user network (each container has its own address).
    public var metricsPort: Int
    /// Overrides the image's CMD (nil keeps it).
    public var command: [String]?
    /// A non-root `uid:gid` (default: the `vectorflow` user of Dockerfile.worker).
    public var user: String
    /// `no`, `on-failure`, `always` or `unless-stopped`.
    public var restartPolicy: String
    /// CPU limit in billionths of a CPU (0: none).
    public var nanoCPUs: Int
    /// Memory limit in bytes (0: none); swap is held to the same figure.
    public var memoryBytes: Int
    /// Most processes and threads in one worker container (0: the engine's default, none).
    public var pidsLimit: Int
    public var extraEnvironment: [String: String]
    /// Bound of every ordinary engine call; stops add their own grace period.
    public var requestTimeout: Double
    /// Bound of an image build.
    public var buildTimeout: Double

    public init(
        dockerHost: String = "unix:///var/run/docker.sock", image: String = "vectorflow-worker:latest",
        buildContext: String? = nil, dockerfile: String = "Dockerfile", network: String = "host",
        redisURL: String = "redis://localhost:6379/0", metricsPort: Int = 9100, command: [String]? = nil,
        user: String = "10001:10001", restartPolicy: String = "unless-stopped",
        nanoCPUs: Int = 1_000_000_000, memoryBytes: Int = 512 * 1024 * 1024, pidsLimit: Int = 128,
        extraEnvironment: [String: String] = [:], requestTimeout: Double = 30, buildTimeout: Double = 900
    ) {
        self.dockerHost = dockerHost
        self.image = image
        self.buildContext = buildContext
        self.dockerfile = dockerfile
        self.network = network
        self.redisURL = redisURL
        self.metricsPort = metricsPort
        self.command = command
        self.user = user
        self.restartPolicy = restartPolicy
        self.nanoCPUs = nanoCPUs
        self.memoryBytes = memoryBytes
        self.pidsLimit = pidsLimit
        self.extraEnvironment = extraEnvironment
        self.requestTimeout = requestTimeout
        self.buildTimeout = buildTimeout
    }
}

/// Runs each worker as a container `vector-worker-<stream id>` through the Docker Engine REST
/// API (libcurl over the unix socket). The API version is negotiated from `/version`; the image
/// is inspected and, if missing, built from the worker's build context; containers run with
/// CapDrop ALL, no-new-privileges, a read-only root file system, a non-root user and CPU/memory
/// limits. Containers are found again by their labels, so the engine itself is the state record.
public final class DockerEngineRuntime: WorkerRuntime, @unchecked Sendable {
    // @unchecked: `apiVersion` and `imageReady` are guarded by `lock`; `http` is Sendable.
    public let kind = "docker"
    public let configuration: DockerRuntimeConfiguration
    private let http: CurlHTTP
    private let log: RuntimeLog
    private let lock = Lock()
    private var apiVersion: String?
    private var imageReady = false

    /// The newest Engine API this code was written against; a newer engine is spoken to at this version.
    static let maxAPIVersion = "1.43"

    static let managedLabel = "vectorflow.managed"

    public init(configuration: DockerRuntimeConfiguration, log: @escaping RuntimeLog = stderrRuntimeLog) {
        self.configuration = configuration
        self.http = CurlHTTP(dockerHost: configuration.dockerHost)
        self.log = log
    }

    /// True when an engine answers `/_ping` within `timeout` (used to pick the default runtime).
    public static func isReachable(dockerHost: String, timeout: Double = 1) -> Bool {
        let http = CurlHTTP(dockerHost: dockerHost, connectTimeout: timeout)
        return (try? http.request("GET", "/_ping", timeout: timeout))?.status == 200
    }

    public func prepare() throws(RuntimeError) {
        _ = try version()
        lock.lock()
        let ready = imageReady
        lock.unlock()
        if ready { return }
        try ensureImage()
        lock.lock()
        imageReady = true
        lock.unlock()
    }

    /// The engine's API version, capped at ours (asked once).
    public func version() throws(RuntimeError) -> String {
        lock.lock()
        if let v = apiVersion {
            lock.unlock()
            return v
        }
        lock.unlock()
        let r = try http.request("GET", "/version", timeout: configuration.requestTimeout)
        guard r.status == 200, let obj = Self.jsonObject(r.body), let server = obj["ApiVersion"] as? String else {
            throw RuntimeError(.engine, "container engine: unexpected /version answer (HTTP \(r.status))")
        }
        let chosen = Self.compare(server, Self.maxAPIVersion) < 0 ? server : Self.maxAPIVersion
        lock.lock()
        apiVersion = chosen
        lock.unlock()
        log("docker engine \(obj["Version"] as? String ?? "?") API \(server); using \(chosen)")
        return chosen
    }

    /// Inspects the image; builds it from the build context when missing.
    public func ensureImage() throws(RuntimeError) {
        let r = try call("GET", "/images/\(Self.pathEscape(configuration.image))/json")
        if r.status == 200 { return }
        guard r.status == 404 else { throw engineError(r, doing: "inspect image \(configuration.image)") }
        guard let context = configuration.buildContext else {
            throw RuntimeError(.engine, "worker image \(configuration.image) not found and no build context configured")
        }
        try buildImage(context: context)
    }

    /// POST /build with a tar of `context`, streaming the build output into the log.
    public func buildImage(context: String) throws(RuntimeError) {
        var tar = TarArchive()
        do { try tar.addFolder(context) } catch { throw RuntimeError(.local, "build context: \(error)") }
        let archive = tar.finish()
        log("building \(configuration.image) from \(context) (\(archive.count / 1024) KiB context)")
        let query =
            "t=\(Self.queryEscape(configuration.image))&dockerfile=\(Self.queryEscape(configuration.dockerfile))&rm=1&forcerm=1"
        let lines = BuildOutput(log: log)
        let r = try http.request(
            "POST", "/v\(try version())/build?\(query)", body: archive,
            contentType: "application/x-tar", timeout: configuration.buildTimeout,
            onChunk: { lines.feed($0) })
        lines.flush()
        if r.status != 200 {
            throw RuntimeError(.engine, "image build failed (HTTP \(r.status)): \(lines.error ?? "no message")")
        }
        if let error = lines.error { throw RuntimeError(.engine, "image build failed: \(error)") }
        log("built \(configuration.image)")
    }

    public func list() throws(RuntimeError) -> [WorkerInfo] {
        let filters = Self.queryEscape("{\"label\":[\"\(Self.managedLabel)=true\"]}")
        let r = try call("GET", "/containers/json?all=1&filters=\(filters)")
        guard r.status == 200 else { throw engineError(r, doing: "list workers") }
        guard let items = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [[String: Any]] else {
            throw RuntimeError(.engine, "container engine: unreadable container list")
        }
        return items.compactMap { item -> WorkerInfo? in
            let labels = item["Labels"] as? [String: String] ?? [:]
            guard let streamID = labels["vectorflow.stream_id"] else { return nil }
            let state: WorkerState
            switch item["State"] as? String ?? "" {
            // "created" is not running: a container whose start never came (the API died between
            // create and start) must be replaced, not waited for.
            case "running", "paused": state = .running
            case "restarting": state = .restarting
            default: state = .exited
            }
            let name = ((item["Names"] as? [String])?.first ?? "").trimmingCharacters(
                in: CharacterSet(charactersIn: "/"))
            return WorkerInfo(
                streamID: streamID, streamName: labels["vectorflow.stream_name"] ?? "", name: name,
                configHash: labels["vectorflow.config_hash"] ?? "", state: state,
                startedAt: Double(labels["vectorflow.started_at"] ?? "") ?? (item["Created"] as? Double),
                metricsTarget: labels["vectorflow.metrics_target"], identifier: item["Id"] as? String ?? "")
        }.sorted { $0.streamID < $1.streamID }
    }

    public func start(_ spec: WorkerSpec) throws(RuntimeError) -> WorkerInfo {
        try prepare()
        let name = spec.workerName
        // Every container labelled with this stream goes, not only the one of the expected name
        // (a renamed or hand-made one would be a second worker): at most one per stream, ever.
        try removeAll(streamID: spec.streamID, except: name)
        try remove(name: name)
        let hostNetwork = configuration.network == "host"
        let port: Int
        let target: String
        if hostNetwork {
            let taken = Set(
                (try? list())?.compactMap { $0.metricsTarget?.split(separator: ":").last.flatMap { Int($0) } } ?? [])
            guard let p = ProcessSupport.freeLoopbackPort(excluding: taken) else {
                throw RuntimeError(.local, "no free loopback port for the worker's metrics")
            }
            port = p
            target = "127.0.0.1:\(p)"
        } else {
            port = configuration.metricsPort
            target = "\(name):\(port)"
        }
        var env = configuration.extraEnvironment
        for (k, v) in spec.environment(
            redisURL: configuration.redisURL, metricsHost: hostNetwork ? "127.0.0.1" : "0.0.0.0",
            metricsPort: port)
        {
            env[k] = v
        }
        // The source URL (camera credentials) goes into a file, not the environment that
        // `docker inspect` shows: written into the container's own volume before it starts.
        env["SOURCE_URL"] = nil
        env["SOURCE_URL_FILE"] = Self.sourceURLFile
        let startedAt = Date().timeIntervalSince1970
        var hostConfig: [String: Any] = [
            "NetworkMode": configuration.network,
            "RestartPolicy": ["Name": configuration.restartPolicy] as [String: Any],
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "ReadonlyRootfs": true,
            "Tmpfs": ["/tmp": "rw,noexec,nosuid,size=16m"],
            // The engine's init (docker-init) as PID 1: the kernel drops a SIGTERM sent to a PID 1
            // that has not yet blocked or handled it, so a worker stopped in its first ~0.2 s
            // would otherwise wait out the stop timeout and be SIGKILLed.
            "Init": true,
            // A volume of this container only (removed with it), the one writable place the
            // source URL file can be put before the start on a read-only root.
            "Mounts": [["Type": "volume", "Target": Self.secretsFolder] as [String: Any]],
        ]
        if configuration.nanoCPUs > 0 { hostConfig["NanoCpus"] = configuration.nanoCPUs }
        if configuration.memoryBytes > 0 {
            hostConfig["Memory"] = configuration.memoryBytes
            // Swap equal to the limit: no swap on top of it (the engine's default doubles it).
            hostConfig["MemorySwap"] = configuration.memoryBytes
        }
        // A worker runs a handful of threads; a fork bomb in a decoder gets no further than this.
        if configuration.pidsLimit > 0 { hostConfig["PidsLimit"] = configuration.pidsLimit }
        var body: [String: Any] = [
            "Image": configuration.image,
            "Env": env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" },
            "User": configuration.user,
            "Labels": [
                Self.managedLabel: "true",
                "vectorflow.stream_id": spec.streamID,
                "vectorflow.stream_name": spec.streamName,
                "vectorflow.config_hash": spec.configHash,
                "vectorflow.metrics_target": target,
                "vectorflow.started_at": String(startedAt),
            ],
            "HostConfig": hostConfig,
        ]
        if let command = configuration.command { body["Cmd"] = command }
        let json = EngineJSON.encode(body)
        let create = try call("POST", "/containers/create?name=\(Self.queryEscape(name))", body: json)
        guard create.status == 201, let id = Self.jsonObject(create.body)?["Id"] as? String else {
            if create.status == 404 {
                lock.lock()
                imageReady = false  // the image went away: inspect (and build) again next time
                lock.unlock()
            }
            throw engineError(create, doing: "create \(name)")
        }
        do {
            try putSourceURL(spec.settings.source, container: id)
        } catch {
            try? remove(name: id)
            throw error
        }
        let started = try call("POST", "/containers/\(id)/start")
        guard started.status == 204 || started.status == 304 else {
            let error = engineError(started, doing: "start \(name)")
            try? remove(name: id)
            throw error
        }
        log("started container \(name) (\(id.prefix(12))) metrics \(target)")
        return WorkerInfo(
            streamID: spec.streamID, streamName: spec.streamName, name: name, configHash: spec.configHash,
            state: .running, startedAt: startedAt, metricsTarget: target, identifier: id)
    }

    public func stop(streamID: String, timeout: Double) throws(RuntimeError) {
        let name = WorkerSpec.workerName(streamID: streamID)
        let seconds = max(0, Int(timeout.rounded(.up)))
        let r = try http.request(
            "POST", "/v\(try version())/containers/\(Self.queryEscape(name))/stop?t=\(seconds)",
            timeout: configuration.requestTimeout + Double(seconds))
        guard [204, 304, 404].contains(r.status) else { throw engineError(r, doing: "stop \(name)") }
        try remove(name: name)
        if r.status != 404 { log("stopped container \(name)") }
    }

    /// Where a worker container finds its source URL (`SOURCE_URL_FILE`).
    static let secretsFolder = "/run/vectorflow"
    static let sourceURLFile = "/run/vectorflow/source_url"

    /// Writes the source URL into the created container's secrets volume, readable by the
    /// worker's user only.
    private func putSourceURL(_ url: String, container id: String) throws(RuntimeError) {
        let ids = configuration.user.split(separator: ":").map { Int($0) }
        var tar = TarArchive()
        do {
            try tar.addFile(
                name: "source_url", contents: Array(url.utf8), mode: 0o400,
                uid: ids.first.flatMap { $0 } ?? 0, gid: ids.count > 1 ? ids[1] ?? 0 : 0)
        } catch {
            throw RuntimeError(.local, "cannot pack the source URL: \(error)")
        }
        let r = try call(
            "PUT", "/containers/\(id)/archive?path=\(Self.queryEscape(Self.secretsFolder))", body: tar.finish(),
            contentType: "application/x-tar")
        guard r.status == 200 else { throw engineError(r, doing: "give the worker its source URL") }
    }

    /// Force-removes the managed containers of `streamID` other than `name` (found by label).
    private func removeAll(streamID: String, except name: String) throws(RuntimeError) {
        let filters = Self.queryEscape(
            "{\"label\":[\"\(Self.managedLabel)=true\",\"vectorflow.stream_id=\(streamID)\"]}")
        let r = try call("GET", "/containers/json?all=1&filters=\(filters)")
        guard r.status == 200 else { throw engineError(r, doing: "list the containers of \(streamID)") }
        let items = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [[String: Any]] ?? []
        for item in items {
            let names = (item["Names"] as? [String] ?? []).map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "/")) }
            guard !names.contains(name), let id = item["Id"] as? String else { continue }
            log("removing extra container \(names.first ?? id) of stream \(streamID)")
            try remove(name: id)
        }
    }

    /// Force-removes a container by name or id; a missing one is fine.
    private func remove(name: String) throws(RuntimeError) {
        // v=1: the container's own volume (its source URL file) goes with it.
        let r = try call("DELETE", "/containers/\(Self.queryEscape(name))?force=1&v=1")
        guard [204, 404].contains(r.status) else { throw engineError(r, doing: "remove \(name)") }
    }

    private func call(
        _ method: String, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json"
    ) throws(RuntimeError) -> CurlHTTP.Response {
        try http.request(
            method, "/v\(try version())\(path)", body: body, contentType: contentType,
            timeout: configuration.requestTimeout)
    }

    /// The engine's own message (`{"message": ...}`) with what we were doing.
    private func engineError(_ r: CurlHTTP.Response, doing what: String) -> RuntimeError {
        let message =
            Self.jsonObject(r.body)?["message"] as? String
            ?? String(decoding: r.body.prefix(300), as: UTF8.self)
        return RuntimeError(.engine, "container engine refused to \(what) (HTTP \(r.status)): \(message)")
    }

    static func jsonObject(_ bytes: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
    }

    /// Dotted version comparison ("1.41" < "1.43").
    static func compare(_ a: String, _ b: String) -> Int {
        let x = a.split(separator: ".").map { Int($0) ?? 0 }
        let y = b.split(separator: ".").map { Int($0) ?? 0 }
        for i in 0..<max(x.count, y.count) {
            let l = i < x.count ? x[i] : 0
            let r = i < y.count ? y[i] : 0
            if l != r { return l < r ? -1 : 1 }
        }
        return 0
    }

    static func pathEscape(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~:/@")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    static func queryEscape(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }
}

/// Splits the build's JSON-lines output, logs each step, and keeps the first error.
private final class BuildOutput {
    private var buffer: [UInt8] = []
    private let log: RuntimeLog
    var error: String?

    init(log: @escaping RuntimeLog) { self.log = log }

    func feed(_ chunk: [UInt8]) {
        buffer.append(contentsOf: chunk)
        while let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
            line(Array(buffer[..<nl]))
            buffer.removeSubrange(...nl)
        }
    }

    func flush() {
        if !buffer.isEmpty { line(buffer) }
        buffer = []
    }

    private func line(_ bytes: [UInt8]) {
        guard let obj = DockerEngineRuntime.jsonObject(bytes) else { return }
        if let s = obj["stream"] as? String {
            let text = s.trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty { log("build: \(text)") }
        }
        if let e = obj["error"] as? String, error == nil {
            error = e
            log("build error: \(e)")
        }
    }
}

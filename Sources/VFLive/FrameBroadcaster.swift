import Foundation
import Logging
import Synchronization
import VFBus
import VFCore
import VFNet
import VFSync

/// A stream's live status as its worker reports it in the `vectorflow:status:<id>` hash.
public struct StreamStatus: Sendable, Equatable, Codable {
    public var state: String
    public var fps: Double?
    public var lastError: String?
    /// Seconds since 1970 of the worker's last refresh.
    public var updatedAt: Double?
    /// A cluster runtime's task (swarm); nil for the local runtimes.
    public var task: TaskStatus?

    public init(
        state: String, fps: Double? = nil, lastError: String? = nil, updatedAt: Double? = nil, task: TaskStatus? = nil
    ) {
        self.state = state
        self.fps = fps
        self.lastError = lastError
        self.updatedAt = updatedAt
        self.task = task
    }

    enum CodingKeys: String, CodingKey {
        case state, fps, task
        case lastError = "last_error"
        case updatedAt = "updated_at"
    }
}

/// Where a cluster runtime runs a stream's worker, as the leader's reconciler last saw it
/// (`vectorflow:task:<id>`): the engine's task state, the node and the engine's error.
public struct TaskStatus: Sendable, Equatable, Codable {
    /// The engine's task state (`running`, `preparing`, `rejected`, ...).
    public var state: String
    /// The node's hostname (may be shared by several nodes) and its id (unique).
    public var node: String?
    public var nodeID: String?
    /// The engine's error for the task, as written (masked) by the reconciler; nil when none.
    public var error: String?

    public init(state: String, node: String? = nil, nodeID: String? = nil, error: String? = nil) {
        self.state = state
        self.node = node
        self.nodeID = nodeID
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case state, node, error
        case nodeID = "node_id"
    }

    /// The hash fields, as `StartFailureReporter` writes them; nil without a state.
    init?(fields: [String: String]) {
        guard let state = fields["state"], !state.isEmpty else { return nil }
        func nonEmpty(_ k: String) -> String? { fields[k].flatMap { $0.isEmpty ? nil : $0 } }
        self.init(state: state, node: nonEmpty("node"), nodeID: nonEmpty("node_id"), error: nonEmpty("error"))
    }
}

/// Fans live frames out to WebSocket viewers: ONE Redis pattern subscription
/// (`vectorflow:frames:*`) for the whole API, each frame forwarded verbatim (one binary message)
/// to the clients of its stream and to the "all streams" clients, with "latest frame wins" per
/// client so a slow viewer costs one pending frame and never slows the others. It also tells
/// workers which streams are watched (`vectorflow:viewers:<id>`, TTL ~10 s, refreshed every ~3 s),
/// so they annotate and encode only when someone looks. "Latest wins" is per client (VFNet keeps
/// one pending message per socket): an all-streams client gets frames of streams that arrive
/// within microseconds of each other as the last of them only.
public final class FrameBroadcaster: Sendable {
    public static let channelPrefix = RedisKeys.framesPrefix
    public static let viewersPrefix = RedisKeys.viewersPrefix
    public static let statusPrefix = RedisKeys.statusPrefix
    /// A cluster runtime's task of a stream (hash: state, node, node_id, error), kept by the leader.
    public static let taskPrefix = RedisKeys.taskPrefix
    /// The largest message a viewer may send on `/ws/frames` (it needs none; pings are control frames).
    public static let maxClientMessageBytes = 4096

    private struct Registry {
        var byStream: [String: [WebSocket]] = [:]
        var all: [WebSocket] = []
        /// Streams the "all streams" clients received a frame of, with when (monotonic seconds).
        var seenByAll: [String: Double] = [:]
        /// Streams whose viewer marker should be written now (first viewer) or removed (last left).
        var markNow: Set<String> = []
        var clearNow: Set<String> = []
        var running = true
        var forwarded = 0
    }

    private let registry = Locked(Registry())
    private let wake = NSCondition()
    /// Set before signalling `wake`, so a wake-up that comes while the marker is busy is not lost.
    private let woken = Atomic<Bool>(false)
    private let redis: RedisClient
    private let subscriber: Locked<RedisSubscriber?> = Locked(nil)
    private let redisURL: String
    private let viewerTTL: Int
    private let refreshInterval: Double
    private let log: @Sendable (String) -> Void

    public init(
        redisURL: String, viewerTTL: Int = 10, refreshInterval: Double = 3,
        log: @escaping @Sendable (String) -> Void = liveLog
    ) throws {
        self.redisURL = redisURL
        self.redis = try RedisClient(url: redisURL, timeout: 1)
        self.viewerTTL = viewerTTL
        self.refreshInterval = refreshInterval
        self.log = log
    }

    /// Subscribes to the frame channels and starts the viewer-marker thread.
    public func start() {
        let sub = RedisSubscriber(url: redisURL, patterns: [RedisKeys.framesPattern]) { [weak self] channel, payload in
            self?.deliver(channel: channel, payload: payload)
        }
        let first = subscriber.withLock { current -> Bool in
            guard current == nil else { return false }
            current = sub
            return true
        }
        guard first else { return }  // already started
        sub.start()
        let thread = Thread { [self] in markViewers() }
        thread.name = "vf-viewer-marker"
        thread.start()
    }

    public func stop() {
        subscriber.withLock { $0 }?.stop()
        registry.withLock { $0.running = false }
        woken.store(true, ordering: .releasing)
        wake.lock()
        wake.signal()
        wake.unlock()
    }

    /// Registers `GET /ws/frames?stream_id=<uuid>` (no stream_id: every stream). A malformed
    /// stream_id refuses the upgrade (400). Handlers run on the connection's loop and only touch
    /// the registry (a short lock), never Redis.
    public func install(on router: inout Router) {
        router.webSocket("/ws/frames") { [self] request in
            let raw = request.query["stream_id"] ?? ""
            if !raw.isEmpty && !Self.isUUID(raw) { return nil }
            let streamID: String? = raw.isEmpty ? nil : raw.lowercased()
            var handlers = WebSocketHandlers(
                onOpen: { [self] ws in add(ws, streamID: streamID) },
                onClose: { [self] ws, _ in remove(ws, streamID: streamID) })
            // Viewers only receive; whatever they send is read and dropped, a few KiB at most.
            handlers.maxMessageBytes = Self.maxClientMessageBytes
            handlers.subprotocol = Self.chooseSubprotocol(request.headers["Sec-WebSocket-Protocol"])
            return handlers
        }
    }

    /// The subprotocol to answer with: `vectorflow.frames` when offered, else the first one offered
    /// (a browser fails a handshake that offered protocols and got none back; a browser sends its
    /// token as one, `bearer.<token>`, which the access check has read by then). nil: none offered.
    static func chooseSubprotocol(_ offered: String?) -> String? {
        let list = (offered ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        return list.contains("vectorflow.frames") ? "vectorflow.frames" : list.first
    }

    /// Number of connected viewers (per stream and "all streams" together).
    public var viewerCount: Int {
        registry.withLock { r in r.all.count + r.byStream.values.reduce(0) { $0 + $1.count } }
    }

    /// Frames handed to clients so far (one per client per frame).
    public var framesForwarded: Int { registry.withLock { $0.forwarded } }

    /// The workers' status hashes and their cluster tasks, all in one round trip (a read-only Lua
    /// script doing HGETALL per key). Blocks on Redis (≤ ~1 s per attempt): call it from a worker
    /// pool, never from an event loop. Streams with neither (or all, if Redis is down) are absent
    /// from the result; a task without a worker status yet (the engine still placing or pulling)
    /// shows as `starting`.
    public func statuses(for ids: [String]) -> [String: StreamStatus] {
        guard !ids.isEmpty else { return [:] }
        let script = "local r = {} for i, k in ipairs(KEYS) do r[i] = redis.call('HGETALL', k) end return r"
        let keys = ids.flatMap { [Self.statusPrefix + $0, Self.taskPrefix + $0] }
        guard let reply = try? redis.command(["EVAL", script, String(keys.count)] + keys),
            case .array(let hashes) = reply, hashes.count == keys.count
        else { return [:] }
        func fields(_ hash: RedisReply) -> [String: String] {
            guard case .array(let items) = hash else { return [:] }
            var out: [String: String] = [:]
            var i = 0
            while i + 1 < items.count {
                if let k = items[i].text, let v = items[i + 1].text { out[k] = v }
                i += 2
            }
            return out
        }
        var out: [String: StreamStatus] = [:]
        for (n, id) in ids.enumerated() {
            let worker = fields(hashes[2 * n])
            let task = TaskStatus(fields: fields(hashes[2 * n + 1]))
            guard let state = worker["state"] ?? (task == nil ? nil : "starting") else { continue }
            let lastError = worker["last_error"].flatMap { $0.isEmpty ? nil : $0 }
            out[id] = StreamStatus(
                state: state, fps: worker["fps"].flatMap(Double.init), lastError: lastError,
                updatedAt: worker["updated_at"].flatMap(Double.init), task: task)
        }
        return out
    }

    // MARK: - internals

    static func isUUID(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard u.count == 36 else { return false }
        for (i, c) in u.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                if c != UInt8(ascii: "-") { return false }
            } else if !((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70)) {
                return false
            }
        }
        return true
    }

    private func add(_ ws: WebSocket, streamID: String?) {
        let first = registry.withLock { r -> Bool in
            guard let id = streamID else {
                r.all.append(ws)
                return false
            }
            var list = r.byStream[id] ?? []
            list.append(ws)
            r.byStream[id] = list
            r.clearNow.remove(id)
            if list.count == 1 {
                r.markNow.insert(id)
                return true
            }
            return false
        }
        if first { signalMarker() }
    }

    private func remove(_ ws: WebSocket, streamID: String?) {
        let last = registry.withLock { r -> Bool in
            guard let id = streamID else {
                r.all.removeAll { $0 === ws }
                return false
            }
            var list = r.byStream[id] ?? []
            list.removeAll { $0 === ws }
            if list.isEmpty {
                r.byStream[id] = nil
                r.markNow.remove(id)
                if r.seenByAll[id] == nil {
                    r.clearNow.insert(id)
                    return true
                }
                return false
            }
            r.byStream[id] = list
            return false
        }
        if last { signalMarker() }
    }

    /// On the subscriber thread, once per frame: a short lock to take the recipients (arrays are
    /// shared, not copied), then one `sendLatest` each outside the lock.
    private func deliver(channel: String, payload: [UInt8]) {
        guard channel.hasPrefix(Self.channelPrefix) else { return }
        let id = String(channel.utf8.dropFirst(Self.channelPrefix.utf8.count))!
        let (targets, all, firstSeen) = registry.withLock { r -> ([WebSocket], [WebSocket], Bool) in
            let targets = r.byStream[id] ?? []
            var firstSeen = false
            if !r.all.isEmpty {
                firstSeen = r.seenByAll.updateValue(monotonicNow(), forKey: id) == nil
                if firstSeen && targets.isEmpty { r.markNow.insert(id) }
            }
            r.forwarded += targets.count + r.all.count
            return (targets, r.all, firstSeen && targets.isEmpty)
        }
        for ws in targets { ws.sendLatest(binary: payload) }
        for ws in all { ws.sendLatest(binary: payload) }
        if firstSeen { signalMarker() }
    }

    private func signalMarker() {
        woken.store(true, ordering: .releasing)
        wake.lock()
        wake.signal()
        wake.unlock()
    }

    /// The viewer-marker thread: every `refreshInterval` (or at once on a first viewer) SETs
    /// `vectorflow:viewers:<id>` with a TTL for each watched stream; DELs it when the last leaves.
    private func markViewers() {
        var lastRefresh = 0.0
        var lastError = ""
        while true {
            let now = monotonicNow()
            let refreshAll = now - lastRefresh >= refreshInterval
            let (running, mark, clear) = registry.withLock { r -> (Bool, Set<String>, Set<String>) in
                // Streams the "all" clients have not received for a TTL are no longer watched by them.
                r.seenByAll = r.seenByAll.filter { now - $0.value < Double(viewerTTL) && !r.all.isEmpty }
                var mark = r.markNow
                if refreshAll {
                    mark.formUnion(r.byStream.keys)
                    mark.formUnion(r.seenByAll.keys)
                }
                let clear = r.clearNow
                r.markNow = []
                r.clearNow = []
                return (r.running, mark, clear)
            }
            if !running { return }
            if refreshAll { lastRefresh = now }
            do {
                for id in mark {
                    _ = try redis.command(["SET", Self.viewersPrefix + id, "1", "EX", String(viewerTTL)])
                }
                for id in clear {
                    _ = try redis.command(["DEL", Self.viewersPrefix + id])
                }
                lastError = ""
            } catch {
                if "\(error)" != lastError { log("cannot mark viewers: \(error)") }
                lastError = "\(error)"
            }
            wake.lock()
            if !woken.load(ordering: .acquiring) {
                _ = wake.wait(
                    until: Date(timeIntervalSinceNow: max(0.05, refreshInterval - (monotonicNow() - lastRefresh))))
            }
            woken.store(false, ordering: .relaxed)
            wake.unlock()
        }
    }
}


/// The live fan-out's default log (Redis subscription lost and regained, and the like): swift-log,
/// label `vectorflow-api.live`.
public let liveLog: @Sendable (String) -> Void = { liveLogger.notice("\($0)") }
private let liveLogger = Logger(label: "vectorflow-api.live")

import VFText

/// A camera stream as stored (`camera_streams`) and as the API returns it: its identity, the
/// settings its worker runs with, whether it should run, and what the reconciler recorded of it.
/// Timestamps are ISO-8601 UTC strings.
public struct CameraStream: Sendable, Equatable {
    public var id: String
    public var name: String
    public var settings: StreamSettings
    public var isActive: Bool
    public var workerContainerName: String?
    public var workerStartedAt: String?
    public var createdAt: String
    /// Live worker status (Redis `vectorflow:status:<id>`), merged in by the stream service; null
    /// when the stream has no worker reporting.
    public var status: JSONValue?

    public init(
        id: String, name: String, settings: StreamSettings, isActive: Bool, workerContainerName: String? = nil,
        workerStartedAt: String? = nil, createdAt: String, status: JSONValue? = nil
    ) {
        self.id = id
        self.name = name
        self.settings = settings
        self.isActive = isActive
        self.workerContainerName = workerContainerName
        self.workerStartedAt = workerStartedAt
        self.createdAt = createdAt
        self.status = status
    }

    /// Writes the stream's JSON object (the API's response shape).
    public func write(to w: inout JSONWriter) {
        w.raw("{\"id\":")
        w.string(id)
        w.raw(",\"name\":")
        w.string(name)
        w.raw(",\"rtsp_url\":")  // StreamSettings.Field, in the order the API has always written them
        // Never the camera's password: what the API shows, `PUT` accepts back unchanged.
        w.string(Credentials.maskURL(settings.source))
        w.raw(",\"grid_size\":")
        w.int(settings.gridSize)
        w.raw(",\"threshold\":")
        w.raw(Array(JSONSerializer.number(settings.threshold).utf8))
        w.raw(isActive ? ",\"is_active\":true" : ",\"is_active\":false")
        w.raw(",\"worker_container_name\":")
        if let n = workerContainerName { w.string(n) } else { w.raw("null") }
        w.raw(",\"worker_started_at\":")
        if let t = workerStartedAt { w.string(t) } else { w.raw("null") }
        w.raw(",\"created_at\":")
        w.string(createdAt)
        w.raw(",\"status\":")
        if let status { JSONSerializer.append(status, to: &w.bytes) } else { w.raw("null") }
        w.raw("}")
    }

    public var json: [UInt8] {
        var w = JSONWriter(capacity: 320)
        write(to: &w)
        return w.bytes
    }
}

extension JSONSerializer {
    /// JSON text for a double: Swift's shortest round-trip spelling ("1.2", "16.0", "1e-05"),
    /// which is valid JSON for every finite value.
    public static func number(_ v: Double) -> String {
        v.isFinite ? "\(v)" : "null"
    }
}

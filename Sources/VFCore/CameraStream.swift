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

    /// Appends the stream's JSON object (the API's response shape) to `out`.
    public func appendJSON(to out: inout [UInt8]) {
        func key(_ k: StaticString) {
            k.withUTF8Buffer { out.append(contentsOf: $0) }
        }
        func optional(_ s: String?) {
            if let s { JSONSerializer.appendString(s, to: &out) } else { key("null") }
        }
        key("{\"id\":")
        JSONSerializer.appendString(id, to: &out)
        key(",\"name\":")
        JSONSerializer.appendString(name, to: &out)
        key(",\"rtsp_url\":")  // StreamSettings.Field, in the order the API has always written them
        // Never the camera's password: what the API shows, `PUT` accepts back unchanged.
        JSONSerializer.appendString(Credentials.maskURL(settings.source), to: &out)
        key(",\"grid_size\":")
        out.append(contentsOf: String(settings.gridSize).utf8)
        key(",\"threshold\":")
        out.append(contentsOf: JSONSerializer.number(settings.threshold).utf8)
        key(isActive ? ",\"is_active\":true" : ",\"is_active\":false")
        key(",\"worker_container_name\":")
        optional(workerContainerName)
        key(",\"worker_started_at\":")
        optional(workerStartedAt)
        key(",\"created_at\":")
        JSONSerializer.appendString(createdAt, to: &out)
        key(",\"status\":")
        if let status { JSONSerializer.append(status, to: &out) } else { key("null") }
        out.append(UInt8(ascii: "}"))
    }

    public var json: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(320)
        appendJSON(to: &out)
        return out
    }
}

extension JSONSerializer {
    /// JSON text for a double: Swift's shortest round-trip spelling ("1.2", "16.0", "1e-05"),
    /// which is valid JSON for every finite value.
    public static func number(_ v: Double) -> String {
        v.isFinite ? "\(v)" : "null"
    }
}

import VFCore

/// One entry of a Redis Stream: its id and its fields (binary-safe values).
public struct StreamEntry: Sendable, Equatable {
    public var id: String
    public var fields: [String: [UInt8]]

    public init(id: String, fields: [String: [UInt8]]) {
        self.id = id
        self.fields = fields
    }
}

/// A consumer of one Redis Stream in a consumer group, on a connection of its own (XREADGROUP
/// blocks it). Not thread-safe: it belongs to the one thread that reads the stream. Every command
/// that fails on I/O drops the connection; the next call connects again (the caller backs off).
public final class RedisStreamReader {
    public let url: RedisURL
    public let stream: String
    public let group: String
    public let consumer: String
    /// The socket timeout: longer than any BLOCK the caller asks for.
    private let timeout: Double
    private var connection: RedisConnection?

    public init(url: String, stream: String, group: String, consumer: String, timeout: Double = 5)
        throws(RedisError)
    {
        self.url = try RedisURL(url)
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.timeout = timeout
    }

    public var isConnected: Bool { connection != nil }

    public func disconnect() { connection = nil }

    private func command(_ args: [String]) throws(RedisError) -> RedisReply {
        let c: RedisConnection
        if let existing = connection {
            c = existing
        } else {
            c = try RedisConnection(url: url, timeout: timeout)
            connection = c
        }
        do throws(RedisError) {
            return try c.command(args.map { Array($0.utf8) })
        } catch {
            connection = nil
            throw error
        }
    }

    /// `XGROUP CREATE <stream> <group> $ MKSTREAM`; a group that exists already (BUSYGROUP) is fine.
    public func createGroup() throws(RedisError) {
        let reply = try command(["XGROUP", "CREATE", stream, group, "$", "MKSTREAM"])
        if case .error(let e) = reply, !e.hasPrefix("BUSYGROUP") { throw RedisError("XGROUP CREATE: \(e)") }
    }

    /// `XREADGROUP ... STREAMS <stream> <from>`: `">"` for new entries (waiting up to `blockMs`),
    /// `"0"` for this consumer's own pending ones (delivered before, not acknowledged).
    public func read(from: String, count: Int, blockMs: Int?) throws(RedisError) -> [StreamEntry] {
        var args = ["XREADGROUP", "GROUP", group, consumer, "COUNT", String(count)]
        if let blockMs { args += ["BLOCK", String(blockMs)] }
        args += ["STREAMS", stream, from]
        let reply = try command(args)
        switch reply {
        case .null: return []
        case .error(let e):
            // The group (or the stream) vanished, e.g. Redis restarted empty: create it again.
            if e.hasPrefix("NOGROUP") { try createGroup() }
            throw RedisError("XREADGROUP: \(e)")
        case .array(let streams):
            guard case .array(let pair)? = streams.first, pair.count == 2, case .array(let items) = pair[1] else {
                return []
            }
            return Self.entries(items)
        default: return []
        }
    }

    /// `XAUTOCLAIM`: takes entries other consumers (a replica that died) left pending longer than
    /// `minIdleMs`. Returns them and the cursor of the next call ("0-0": the scan went round).
    public func claim(minIdleMs: Int, start: String, count: Int) throws(RedisError) -> ([StreamEntry], String) {
        let reply = try command(
            ["XAUTOCLAIM", stream, group, consumer, String(minIdleMs), start, "COUNT", String(count)])
        if case .error(let e) = reply { throw RedisError("XAUTOCLAIM: \(e)") }
        guard case .array(let parts) = reply, parts.count >= 2, let next = parts[0].text,
            case .array(let items) = parts[1]
        else { return ([], "0-0") }
        return (Self.entries(items), next)
    }

    /// `XACK` then `XDEL`: the entries are applied for good and need not stay in Redis.
    public func acknowledge(_ ids: [String]) throws(RedisError) {
        guard !ids.isEmpty else { return }
        if case .error(let e) = try command(["XACK", stream, group] + ids) { throw RedisError("XACK: \(e)") }
        if case .error(let e) = try command(["XDEL", stream] + ids) { throw RedisError("XDEL: \(e)") }
    }

    /// `[[id, [field, value, ...]], ...]`; an entry deleted meanwhile comes back without fields
    /// (nil): it has an id and no fields.
    static func entries(_ items: [RedisReply]) -> [StreamEntry] {
        var out: [StreamEntry] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard case .array(let e) = item, e.count == 2, let id = e[0].text else { continue }
            var fields: [String: [UInt8]] = [:]
            if case .array(let kv) = e[1] {
                var k = 0
                while k + 1 < kv.count {
                    if let name = kv[k].text, case .string(let value) = kv[k + 1] { fields[name] = value }
                    k += 2
                }
            }
            out.append(StreamEntry(id: id, fields: fields))
        }
        return out
    }
}

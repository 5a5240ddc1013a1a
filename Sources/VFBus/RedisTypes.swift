/// A parsed `redis://[[user]:password@]host[:port][/db]` URL.
public struct RedisURL: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var db: Int
    public var username: String?
    public var password: String?

    public init(_ url: String) throws(RedisError) {
        guard url.hasPrefix("redis://") else { throw RedisError("REDIS_URL must start with redis://, got \"\(url)\"") }
        var rest = Substring(url.dropFirst("redis://".count))
        username = nil
        password = nil
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let user = String(userinfo[..<colon])
                username = user.isEmpty ? nil : Self.percentDecoded(user)
                password = Self.percentDecoded(String(userinfo[userinfo.index(after: colon)...]))
            } else if !userinfo.isEmpty {
                password = Self.percentDecoded(String(userinfo))
            }
        }
        var dbText = ""
        if let slash = rest.firstIndex(of: "/") {
            dbText = String(rest[rest.index(after: slash)...])
            rest = rest[..<slash]
        }
        if let q = dbText.firstIndex(of: "?") { dbText = String(dbText[..<q]) }
        var hostPart = rest
        var portText = ""
        if hostPart.hasPrefix("[") {  // [IPv6]:port
            guard let close = hostPart.firstIndex(of: "]") else { throw RedisError("bad host in REDIS_URL \"\(url)\"") }
            let after = hostPart[hostPart.index(after: close)...]
            if after.hasPrefix(":") { portText = String(after.dropFirst()) }
            hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
        } else if let colon = hostPart.lastIndex(of: ":") {
            portText = String(hostPart[hostPart.index(after: colon)...])
            hostPart = hostPart[..<colon]
        }
        host = hostPart.isEmpty ? "localhost" : String(hostPart)
        if portText.isEmpty {
            port = 6379
        } else {
            guard let p = Int(portText), (1...65535).contains(p) else {
                throw RedisError("bad port in REDIS_URL \"\(url)\"")
            }
            port = p
        }
        if dbText.isEmpty {
            db = 0
        } else {
            guard let d = Int(dbText), d >= 0 else { throw RedisError("bad database number in REDIS_URL \"\(url)\"") }
            db = d
        }
    }

    private static func percentDecoded(_ s: String) -> String {
        guard s.contains("%") else { return s }
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let b = bytes.popFirst() {
            if b == 0x25, bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) {
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// One Redis reply, copied out of hiredis.
public enum RedisReply: Sendable, Equatable {
    case string([UInt8])
    case status(String)
    case integer(Int)
    case array([RedisReply])
    case null
    case error(String)

    /// The reply as text, for bulk strings and status replies.
    public var text: String? {
        switch self {
        case .string(let b): return String(decoding: b, as: UTF8.self)
        case .status(let s): return s
        default: return nil
        }
    }
}

/// A connection-level failure (Redis unreachable, I/O error, timeout, bad URL). Error replies
/// from the server are not thrown: they come back as `RedisReply.error`.
public struct RedisError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

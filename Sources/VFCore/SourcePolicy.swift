import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Which network addresses a stream's source may reach (`VF_SOURCE_ALLOW`, `VF_SOURCE_DENY`).
/// Checked by the worker on every address a source's host resolves to, at every (re)connect and,
/// for HTTP sources, on every connection FFmpeg makes (redirects included, see the worker's
/// SourceProxy). An address is allowed when no deny rule matches it and, if allow rules are set,
/// one of them does: deny wins, so the platform's own services stay out of reach whatever is allowed.
///
/// A rule is `CIDR` (`10.0.0.0/8`, `fe80::/10`), an address (`10.1.2.3`, `::1`), either with a port
/// (`127.0.0.1:6379`, `[::1]:6379`, `10.0.0.0/8:554`), or `name:port` (`redis:6379`), whose name is
/// resolved at each check (the platform's services by their compose names).
public struct SourcePolicy: Sendable, Equatable {
    public var allow: [Rule]
    public var deny: [Rule]

    /// Denied unless the operator says otherwise: link-local (cloud metadata at 169.254.169.254
    /// and its IPv6 forms), "this network" and the unspecified address.
    public static let defaultDeny = "169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32,0.0.0.0/8,::/128"

    public init(allow: [Rule] = [], deny: [Rule] = []) {
        self.allow = allow
        self.deny = deny
    }

    /// Reads `VF_SOURCE_ALLOW` (default: empty, anything not denied) and `VF_SOURCE_DENY` (default
    /// `defaultDeny`; an explicit value replaces it), plus `services`: `host:port` of the platform's
    /// own services, always denied.
    /// The two settings, declared once (the API's and the worker's `--help`).
    public static let declarations: [Setting] = [
        .string(
            "VF_SOURCE_ALLOW", "", shown: "empty: any address not denied",
            "comma-separated CIDR[:port], address[:port] or name:port rules a source's addresses must match"),
        .string(
            "VF_SOURCE_DENY", defaultDeny,
            "rules no source may reach (replaces the default; the platform's own services are always added)"),
    ]

    public init(_ c: ConfigurationSource, services: [String] = []) throws(ConfigurationError) {
        allow = try Self.parse(c.string("VF_SOURCE_ALLOW"), setting: "VF_SOURCE_ALLOW")
        deny = try Self.parse(c.string("VF_SOURCE_DENY"), setting: "VF_SOURCE_DENY")
        for s in services {
            if let r = Rule(s), !deny.contains(r) { deny.append(r) }
        }
    }

    /// The policy as the two settings, for a worker's environment.
    public var environment: [String: String] {
        ["VF_SOURCE_ALLOW": allow.map(\.description).joined(separator: ","),
         "VF_SOURCE_DENY": deny.map(\.description).joined(separator: ",")]
    }

    public static func parse(_ list: String, setting: String) throws(ConfigurationError) -> [Rule] {
        var rules: [Rule] = []
        for item in list.split(separator: ",") {
            let s = item.trimmingCharacters(in: .whitespaces)
            if s.isEmpty { continue }
            guard let r = Rule(s) else {
                throw ConfigurationError(
                    "\(setting) must be a comma-separated list of CIDR[:port], address[:port] or name:port, got \"\(s)\"")
            }
            rules.append(r)
        }
        return rules
    }

    /// Why `address` (4 or 16 bytes) at `port` may not be reached, or nil when it may. `resolve`
    /// turns the names of `name:port` rules into addresses.
    public func refusal(address: [UInt8], port: Int, resolve: (String) -> [[UInt8]] = SourcePolicy.resolve)
        -> String?
    {
        let a = Self.normalized(address)
        for r in deny where r.matches(a, port: port, resolve: resolve) {
            return "address \(Self.format(a)) port \(port) is denied by VF_SOURCE_DENY (\(r))"
        }
        if !allow.isEmpty && !allow.contains(where: { $0.matches(a, port: port, resolve: resolve) }) {
            return "address \(Self.format(a)) port \(port) is not in VF_SOURCE_ALLOW"
        }
        return nil
    }

    /// Resolves `host` and checks every address it has: the addresses when all are allowed, else
    /// the first refusal (a name that also resolves to a denied address is refused as a whole).
    public func check(host: String, port: Int, resolve: (String) -> [[UInt8]] = SourcePolicy.resolve)
        -> Result<[[UInt8]], SourcePolicyError>
    {
        let addresses = resolve(host)
        guard !addresses.isEmpty else { return .failure(SourcePolicyError("cannot resolve host \"\(host)\"")) }
        for a in addresses {
            if let why = refusal(address: a, port: port, resolve: resolve) {
                return .failure(SourcePolicyError("source policy: \(host) → \(why)"))
            }
        }
        return .success(addresses)
    }

    // MARK: Rules

    public struct Rule: Sendable, Equatable, CustomStringConvertible {
        public enum Target: Sendable, Equatable {
            /// An address prefix: 4 or 16 bytes and the prefix length in bits.
            case network([UInt8], bits: Int)
            /// A host name, resolved at each check.
            case name(String)
        }

        public var target: Target
        public var port: Int?

        public init?(_ text: String) {
            var s = Substring(text)
            var port: Int? = nil
            if s.hasPrefix("[") {
                // [v6 or v6/bits]:port or [v6]
                guard let close = s.firstIndex(of: "]") else { return nil }
                let inner = s[s.index(after: s.startIndex)..<close]
                let rest = s[s.index(after: close)...]
                if !rest.isEmpty {
                    guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), (1...65535).contains(p) else { return nil }
                    port = p
                }
                s = inner
            } else if s.filter({ $0 == ":" }).count == 1, let colon = s.firstIndex(of: ":") {
                // v4[/bits]:port or name:port (an IPv6 address has two colons or more)
                guard let p = Int(s[s.index(after: colon)...]), (1...65535).contains(p) else { return nil }
                port = p
                s = s[..<colon]
            }
            var bits: Int? = nil
            if let slash = s.firstIndex(of: "/") {
                guard let b = Int(s[s.index(after: slash)...]) else { return nil }
                bits = b
                s = s[..<slash]
            }
            if var bytes = SourcePolicy.parseAddress(String(s)) {
                var b = bits ?? bytes.count * 8
                let v4 = SourcePolicy.normalized(bytes)
                if v4.count == 4 && bytes.count == 16 && b >= 96 {
                    (bytes, b) = (v4, b - 96)  // ::ffff:a.b.c.d/n is the IPv4 network it names
                }
                guard (0...(bytes.count * 8)).contains(b) else { return nil }
                target = .network(SourcePolicy.masked(bytes, bits: b), bits: b)
            } else {
                // A name only with a port (a bare name would be a typo of an address or a CIDR).
                guard bits == nil, port != nil, SourcePolicy.isHostName(String(s)) else { return nil }
                target = .name(s.lowercased())
            }
            self.port = port
        }

        public var description: String {
            switch target {
            case .network(let bytes, let bits):
                let full = bits == bytes.count * 8
                let addr = SourcePolicy.format(bytes) + (full ? "" : "/\(bits)")
                guard let p = port else { return addr }
                return bytes.count == 16 ? "[\(addr)]:\(p)" : "\(addr):\(p)"
            case .name(let n):
                return port.map { "\(n):\($0)" } ?? n
            }
        }

        func matches(_ address: [UInt8], port: Int, resolve: (String) -> [[UInt8]]) -> Bool {
            if let p = self.port, p != port { return false }
            switch target {
            case .network(let prefix, let bits):
                return prefix.count == address.count && SourcePolicy.masked(address, bits: bits) == prefix
            case .name(let n):
                return resolve(n).contains { SourcePolicy.normalized($0) == address }
            }
        }
    }

    // MARK: Addresses

    /// 4 or 16 bytes for a numeric IPv4 or IPv6 address, nil for anything else.
    public static func parseAddress(_ s: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, s, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    public static func format(_ bytes: [UInt8]) -> String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let ok = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buf, socklen_t(buf.count)) } != nil
        return ok ? String(cString: buf) : "?"
    }

    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it is.
    static func normalized(_ a: [UInt8]) -> [UInt8] {
        if a.count == 16 && a[0..<10].allSatisfy({ $0 == 0 }) && a[10] == 0xff && a[11] == 0xff {
            return Array(a[12..<16])
        }
        return a
    }

    static func masked(_ a: [UInt8], bits: Int) -> [UInt8] {
        var out = a
        for i in 0..<out.count {
            let keep = max(0, min(8, bits - i * 8))
            out[i] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - keep))
        }
        return out
    }

    static func isHostName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 253
            && s.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x2e || $0 == 0x5f }
    }

    /// Every address `host` resolves to (a numeric host is its own address), deduplicated, in
    /// the resolver's order; empty when it does not resolve.
    public static func resolve(_ host: String) -> [[UInt8]] {
        if let a = parseAddress(host) { return [normalized(a)] }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0 else { return [] }
        defer { freeaddrinfo(list) }
        var out: [[UInt8]] = []
        var p = list
        while let ai = p {
            if let sa = ai.pointee.ai_addr {
                var a: [UInt8]?
                if ai.pointee.ai_family == AF_INET {
                    a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                        withUnsafeBytes(of: sin.pointee.sin_addr) { Array($0) }
                    }
                } else if ai.pointee.ai_family == AF_INET6 {
                    a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                        withUnsafeBytes(of: sin6.pointee.sin6_addr) { Array($0) }
                    }
                }
                if let a, !out.contains(normalized(a)) { out.append(normalized(a)) }
            }
            p = ai.pointee.ai_next
        }
        return out
    }
}

public struct SourcePolicyError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Scheme, host and port of a network source URL (`scheme://[user[:pass]@]host[:port][/...]`),
/// with where the host sits in the text so that it can be replaced by a checked address.
public struct SourceEndpoint: Sendable, Equatable {
    public var scheme: String
    public var host: String
    public var port: Int
    /// The host as written (brackets included for IPv6), as a range of the URL's UTF-8 offsets.
    public var hostRange: Range<Int>

    public static let defaultPorts = ["http": 80, "https": 443, "rtsp": 554, "rtsps": 322]

    /// `defaultPort`: for other schemes (a service's URL: postgresql, redis), the port when none is written.
    public init?(_ url: String, defaultPort other: Int? = nil) {
        let b = Array(url.utf8)
        guard let sep = url.range(of: "://") else { return nil }
        scheme = url[..<sep.lowerBound].lowercased()
        guard let defaultPort = Self.defaultPorts[scheme] ?? other else { return nil }
        let start = url.utf8.distance(from: url.utf8.startIndex, to: sep.upperBound)
        var end = start
        while end < b.count, b[end] != UInt8(ascii: "/"), b[end] != UInt8(ascii: "?"), b[end] != UInt8(ascii: "#") {
            end += 1
        }
        var hostStart = start
        // userinfo ends at the last '@' of the authority (a password may hold '@' only encoded,
        // but be lenient as FFmpeg is).
        if let at = b[start..<end].lastIndex(of: UInt8(ascii: "@")) { hostStart = at + 1 }
        var hostEnd = end
        var portValue = defaultPort
        if hostStart < end && b[hostStart] == UInt8(ascii: "[") {
            guard let close = b[hostStart..<end].firstIndex(of: UInt8(ascii: "]")) else { return nil }
            hostEnd = close + 1
            host = String(decoding: b[(hostStart + 1)..<close], as: UTF8.self)
        } else {
            if let colon = b[hostStart..<end].lastIndex(of: UInt8(ascii: ":")) { hostEnd = colon }
            host = String(decoding: b[hostStart..<hostEnd], as: UTF8.self)
        }
        if hostEnd < end {
            guard b[hostEnd] == UInt8(ascii: ":"), let p = Int(String(decoding: b[(hostEnd + 1)..<end], as: UTF8.self)),
                (1...65535).contains(p)
            else { return nil }
            portValue = p
        }
        guard !host.isEmpty else { return nil }
        port = portValue
        hostRange = hostStart..<hostEnd
    }

    /// `host:port` (IPv6 in brackets), the form of a deny rule for a service.
    public var rule: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The URL with its host replaced by `address` (IPv6 in brackets).
    public func replacingHost(in url: String, with address: [UInt8]) -> String {
        var b = Array(url.utf8)
        let text = SourcePolicy.format(address)
        b.replaceSubrange(hostRange, with: Array((address.count == 16 ? "[\(text)]" : text).utf8))
        return String(decoding: b, as: UTF8.self)
    }
}

import Foundation

/// The project's one configuration loader: each setting comes from `--kebab-case-name VALUE`
/// (or `--kebab-case-name=VALUE`) on the command line, else from the `UPPER_SNAKE` environment
/// variable, else from its default. Errors name the setting, so `main` can print one line and exit 2.
public struct ConfigurationSource: Sendable {
    public let environment: [String: String]
    public let flags: [String: String]
    /// Arguments that are not `--flags` (subcommands, positional paths), in order.
    public let positional: [String]

    public init(arguments: [String], environment: [String: String]) throws(ConfigurationError) {
        var flags: [String: String] = [:]
        var positional: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a.hasPrefix("--") && a.count > 2 {
                let body = a.dropFirst(2)
                if let eq = body.firstIndex(of: "=") {
                    flags[String(body[..<eq])] = String(body[body.index(after: eq)...])
                } else if i + 1 < arguments.count && !arguments[i + 1].hasPrefix("--") {
                    flags[String(body)] = arguments[i + 1]
                    i += 1
                } else {
                    flags[String(body)] = "true"  // a bare switch such as --preview
                }
            } else {
                positional.append(a)
            }
            i += 1
        }
        self.flags = flags
        self.positional = positional
        self.environment = environment
    }

    public static func kebab(_ envName: String) -> String {
        envName.lowercased().replacingOccurrences(of: "_", with: "-")
    }

    /// The raw value of a setting, flag first, then environment.
    public func raw(_ envName: String) -> String? {
        if let v = flags[Self.kebab(envName)] { return v }
        if let v = environment[envName], !v.isEmpty { return v }
        return nil
    }

    public func string(_ envName: String, default value: String) -> String {
        raw(envName) ?? value
    }

    public func int(_ envName: String, default value: Int, range: ClosedRange<Int>? = nil) throws(ConfigurationError) -> Int {
        guard let s = raw(envName) else { return value }
        guard let v = Int(s.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigurationError("\(envName) must be an integer, got \"\(s)\"")
        }
        if let r = range, !r.contains(v) {
            throw ConfigurationError("\(envName) must be within \(r.lowerBound)...\(r.upperBound), got \(v)")
        }
        return v
    }

    public func double(_ envName: String, default value: Double, range: ClosedRange<Double>? = nil) throws(ConfigurationError) -> Double {
        guard let s = raw(envName) else { return value }
        guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v.isFinite else {
            throw ConfigurationError("\(envName) must be a finite number, got \"\(s)\"")
        }
        if let r = range, !r.contains(v) {
            throw ConfigurationError("\(envName) must be within \(r.lowerBound)...\(r.upperBound), got \(v)")
        }
        return v
    }

    public func bool(_ envName: String, default value: Bool) throws(ConfigurationError) -> Bool {
        guard let s = raw(envName) else { return value }
        switch s.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ConfigurationError("\(envName) must be true or false, got \"\(s)\"")
        }
    }
}

public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

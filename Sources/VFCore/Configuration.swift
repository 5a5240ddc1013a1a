import Foundation

/// One setting of an executable, declared once: its environment variable (`UPPER_SNAKE`; the flag
/// is its `--kebab-case`), its kind, its default and its meaning. `--help` is generated from these
/// declarations, and the command line accepts no flag that none of them claims.
public struct Setting: Sendable {
    public enum Kind: String, Sendable {
        /// A switch: `--name` is true, `--name=false` false; it never takes the next word.
        case bool
        case int, double, string
    }

    /// The environment variable.
    public let name: String
    public let kind: Kind
    /// The value when neither the flag nor the variable is set, written as either would be; nil
    /// when the setting is unset by default or its default is computed where it is read.
    public let defaultValue: String?
    /// How `--help` shows the default.
    public let defaultDescription: String
    public let help: String

    public init(_ name: String, _ kind: Kind, default value: String?, shown: String? = nil, _ help: String) {
        self.name = name
        self.kind = kind
        self.defaultValue = value
        self.defaultDescription = shown ?? value.map { $0.isEmpty ? "empty" : $0 } ?? "unset"
        self.help = help
    }

    public static func bool(_ name: String, _ value: Bool, _ help: String) -> Setting {
        Setting(name, .bool, default: value ? "true" : "false", help)
    }
    public static func int(_ name: String, _ value: Int?, shown: String? = nil, _ help: String) -> Setting {
        Setting(name, .int, default: value.map(String.init), shown: shown, help)
    }
    public static func double(_ name: String, _ value: Double?, shown: String? = nil, _ help: String) -> Setting {
        Setting(
            name, .double, default: value.map { v in v == v.rounded() ? String(Int(v)) : String(v) }, shown: shown, help
        )
    }
    public static func string(_ name: String, _ value: String?, shown: String? = nil, _ help: String) -> Setting {
        Setting(name, .string, default: value, shown: shown, help)
    }

    /// `--kebab-case-name`.
    public var flag: String { "--" + ConfigurationSource.kebab(name) }

    /// What the flag takes in `--help`.
    var metavar: String {
        switch kind {
        case .bool: return ""
        case .int: return " N"
        case .double: return " X"
        case .string: return " VALUE"
        }
    }
}

/// The project's one configuration loader: each setting comes from `--kebab-case-name VALUE`
/// (or `--kebab-case-name=VALUE`; bool settings are switches) on the command line, else from the
/// `UPPER_SNAKE` environment variable, else from its declared default. A flag that no declared
/// setting claims, or a value without its flag, is an error; errors name the word or the setting,
/// so `main` can print one line and exit 2.
public struct ConfigurationSource: Sendable {
    public let environment: [String: String]
    public let flags: [String: String]
    /// Arguments that are not `--flags` or their values (subcommands, positional paths), in order.
    public let positional: [String]
    /// The declared settings, by environment variable.
    public let settings: [String: Setting]

    public init(arguments: [String], environment: [String: String], settings declared: [Setting])
        throws(ConfigurationError)
    {
        var byName: [String: Setting] = [:]
        var byFlag: [String: Setting] = [:]
        for s in declared {
            byName[s.name] = s
            byFlag[Self.kebab(s.name)] = s
        }
        var flags: [String: String] = [:]
        var positional: [String] = []
        var i = 0
        var onlyPositional = false
        while i < arguments.count {
            let a = arguments[i]
            i += 1
            if onlyPositional || a == "-" || !a.hasPrefix("-") {
                positional.append(a)
                continue
            }
            if a == "--" {
                onlyPositional = true
                continue
            }
            guard a.hasPrefix("--"), a.count > 2 else { throw ConfigurationError("unknown option \"\(a)\"") }
            let body = a.dropFirst(2)
            let key: String
            var value: String?
            if let eq = body.firstIndex(of: "=") {
                key = String(body[..<eq])
                value = String(body[body.index(after: eq)...])
            } else {
                key = String(body)
            }
            guard let setting = byFlag[key] else { throw ConfigurationError("unknown option \"--\(key)\"") }
            if setting.kind == .bool {
                // A switch never swallows the next word; a bool word right after it is almost
                // certainly meant as its value, so say how to write that.
                if value == nil, i < arguments.count, Self.parseBool(arguments[i]) != nil {
                    throw ConfigurationError(
                        "\(setting.flag) is a switch: write \(setting.flag)=\(arguments[i]), not \"\(arguments[i])\" after it"
                    )
                }
                flags[key] = value ?? "true"
                continue
            }
            if value == nil {
                guard i < arguments.count, !arguments[i].hasPrefix("--") else {
                    throw ConfigurationError("\(setting.flag) needs a value")
                }
                value = arguments[i]
                i += 1
            }
            flags[key] = value
        }
        self.flags = flags
        self.positional = positional
        self.environment = environment
        self.settings = byName
    }

    public static func kebab(_ envName: String) -> String {
        envName.lowercased().replacingOccurrences(of: "_", with: "-")
    }

    static func parseBool(_ s: String) -> Bool? {
        switch s.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: return nil
        }
    }

    private func declared(_ envName: String) -> Setting {
        guard let s = settings[envName] else {
            // A programming error: every setting read must be declared, or --help would miss it.
            preconditionFailure("setting \(envName) is read but not declared")
        }
        return s
    }

    /// The raw value of a setting, flag first, then environment; nil when neither is set.
    public func raw(_ envName: String) -> String? {
        _ = declared(envName)
        if let v = flags[Self.kebab(envName)] { return v }
        if let v = environment[envName], !v.isEmpty { return v }
        return nil
    }

    /// The raw value, else the declared default.
    private func valueOrDefault(_ envName: String) -> String? {
        raw(envName) ?? declared(envName).defaultValue
    }

    public func string(_ envName: String) -> String {
        valueOrDefault(envName) ?? ""
    }

    /// For a setting whose default is computed where it is read.
    public func string(_ envName: String, default value: String) -> String {
        raw(envName) ?? value
    }

    public func int(_ envName: String, range: ClosedRange<Int>? = nil) throws(ConfigurationError) -> Int {
        guard let s = valueOrDefault(envName) else { preconditionFailure("\(envName) has no default") }
        return try Self.int(envName, s, range: range)
    }

    /// For a setting whose default is computed where it is read.
    public func int(_ envName: String, default value: Int, range: ClosedRange<Int>? = nil) throws(ConfigurationError)
        -> Int
    {
        guard let s = raw(envName) else { return value }
        return try Self.int(envName, s, range: range)
    }

    private static func int(_ envName: String, _ s: String, range: ClosedRange<Int>?) throws(ConfigurationError) -> Int
    {
        guard let v = Int(s.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigurationError("\(envName) must be an integer, got \"\(s)\"")
        }
        if let r = range, !r.contains(v) {
            throw ConfigurationError("\(envName) must be within \(r.lowerBound)...\(r.upperBound), got \(v)")
        }
        return v
    }

    public func double(_ envName: String, range: ClosedRange<Double>? = nil) throws(ConfigurationError) -> Double {
        guard let s = valueOrDefault(envName) else { preconditionFailure("\(envName) has no default") }
        guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v.isFinite else {
            throw ConfigurationError("\(envName) must be a finite number, got \"\(s)\"")
        }
        if let r = range, !r.contains(v) {
            throw ConfigurationError("\(envName) must be within \(r.lowerBound)...\(r.upperBound), got \(v)")
        }
        return v
    }

    public func bool(_ envName: String) throws(ConfigurationError) -> Bool {
        guard let s = valueOrDefault(envName) else { preconditionFailure("\(envName) has no default") }
        guard let v = Self.parseBool(s) else {
            throw ConfigurationError("\(envName) must be true or false, got \"\(s)\"")
        }
        return v
    }

    /// Fails on a positional argument past the first `count` (the command and its operands).
    public func expectPositional(atMost count: Int) throws(ConfigurationError) {
        if positional.count > count {
            throw ConfigurationError("unexpected argument \"\(positional[count])\"")
        }
    }
}

public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What a command line asks for before any setting is read: `-h/--help`, `--version`, or a run.
public enum CommandLineRequest: Equatable, Sendable {
    case help, version, run

    /// `-h`, `--help` or `--version` anywhere before a `--` asks for that and nothing else.
    public static func of(_ arguments: [String]) -> CommandLineRequest {
        for a in arguments {
            if a == "--" { break }
            if a == "-h" || a == "--help" { return .help }
            if a == "--version" { return .version }
        }
        return .run
    }
}

/// `--help` text generated from the declarations.
public enum SettingsHelp {
    /// One entry per setting: the flag, then the variable and default, then the meaning, indented.
    public static func render(title: String, _ settings: [Setting]) -> String {
        var out = title + "\n"
        for s in settings {
            out += "  \(s.flag)\(s.metavar)  (\(s.name), default: \(s.defaultDescription))\n"
            out += "      \(s.help)\n"
        }
        return out
    }

    /// `NAME VERSION (commit SHA)`: the `--version` line.
    public static func versionLine(program: String) -> String {
        "\(program) \(BuildInfo.version) (commit \(BuildInfo.commit))"
    }
}

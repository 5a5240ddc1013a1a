import Foundation
import Logging

/// The logging settings both executables read.
public enum LogSettings {
    public static let declarations: [Setting] = [
        .string(
            "LOG_LEVEL", "info", "least severe level logged: trace, debug, info, notice, warning, error or critical"),
        .string(
            "LOG_FORMAT", "text",
            "text (one line: time, level, label, message, key=value metadata) or json (one object per line)"),
    ]
}

/// How log lines are written.
public enum LogFormat: String, Sendable {
    case text, json
}

/// The process's one way to log: swift-log, bootstrapped once with `LineLogHandler`.
public enum Log {
    /// Reads `LOG_LEVEL` and `LOG_FORMAT` and bootstraps swift-log with them (once per process).
    public static func bootstrap(_ c: ConfigurationSource, label: String) throws(ConfigurationError) {
        let levelText = c.string("LOG_LEVEL").lowercased()
        guard let level = Logger.Level(rawValue: levelText) else {
            throw ConfigurationError(
                "LOG_LEVEL must be trace, debug, info, notice, warning, error or critical, got \"\(levelText)\"")
        }
        guard let format = LogFormat(rawValue: c.string("LOG_FORMAT").lowercased()) else {
            throw ConfigurationError("LOG_FORMAT must be text or json, got \"\(c.string("LOG_FORMAT"))\"")
        }
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: level, format: format) }
    }
}

/// One line per event on stderr (or into `sink`): `2026-01-02T03:04:05.678Z info LABEL: message
/// key=value …`, or with `.json` one JSON object per line (`ts`, `level`, `label`, `message`, then
/// the metadata keys). Every URL in the message and the metadata goes through `Credentials.maskText`
/// first, so a camera password cannot reach the log whatever the caller passed.
public struct LineLogHandler: LogHandler {
    public typealias Sink = @Sendable ([UInt8]) -> Void

    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level
    public let label: String
    public let format: LogFormat
    private let sink: Sink

    /// One `write(2)` per line (`Console`): lines from several threads never interleave (each is
    /// well under PIPE_BUF in practice, and stderr is unbuffered), and a closed stderr loses lines only.
    public static let standardError: Sink = { bytes in Console.write(2, bytes) }

    public init(
        label: String, level: Logger.Level = .info, format: LogFormat = .text, sink: @escaping Sink = standardError
    ) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        sink(
            Self.line(
                time: Self.timestamp(), level: event.level, label: label, message: "\(event.message)", metadata: all,
                format: format))
    }

    /// The bytes of one line, newline included (separate from I/O for the tests).
    public static func line(
        time: String, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, format: LogFormat
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + message.utf8.count)
        let keys = metadata.keys.sorted()
        switch format {
        case .text:
            out.append(contentsOf: time.utf8)
            out.append(0x20)
            out.append(contentsOf: level.rawValue.utf8)
            out.append(0x20)
            out.append(contentsOf: label.utf8)
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: masked(oneLine(message)).utf8)
            for key in keys {
                guard let value = metadata[key] else { continue }
                out.append(0x20)
                out.append(contentsOf: key.utf8)
                out.append(UInt8(ascii: "="))
                let text = masked(oneLine(render(value)))
                if text.isEmpty || text.utf8.contains(where: { $0 == 0x20 || $0 == 0x22 || $0 == 0x3D }) {
                    JSONSerializer.appendString(text, to: &out)  // quoted, with escapes
                } else {
                    out.append(contentsOf: text.utf8)
                }
            }
        case .json:
            out.append(contentsOf: "{\"ts\":".utf8)
            JSONSerializer.appendString(time, to: &out)
            out.append(contentsOf: ",\"level\":".utf8)
            JSONSerializer.appendString(level.rawValue, to: &out)
            out.append(contentsOf: ",\"label\":".utf8)
            JSONSerializer.appendString(label, to: &out)
            out.append(contentsOf: ",\"message\":".utf8)
            JSONSerializer.appendString(masked(message), to: &out)
            for key in keys {
                guard let value = metadata[key] else { continue }
                out.append(UInt8(ascii: ","))
                // Metadata never overwrites the line's own fields.
                JSONSerializer.appendString(reservedKeys.contains(key) ? "meta_" + key : key, to: &out)
                out.append(UInt8(ascii: ":"))
                JSONSerializer.appendString(masked(render(value)), to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(0x0A)
        return out
    }

    /// `Credentials.maskText`, skipped for text without a colon (no URL): most lines, such as the
    /// access log's, cost one scan.
    private static func masked(_ s: String) -> String {
        s.utf8.contains(UInt8(ascii: ":")) ? Credentials.maskText(s) : s
    }

    private static let reservedKeys: Set<String> = ["ts", "level", "label", "message"]

    private static func render(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): return s
        case .stringConvertible(let s): return s.description
        default: return value.description
        }
    }

    /// A text line stays one line: line breaks inside a message become spaces.
    private static func oneLine(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }) else { return s }
        return String(s.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 })
    }

    /// Now, as ISO 8601 in UTC with milliseconds: `2026-01-02T03:04:05.678Z`.
    public static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return timestamp(seconds: Int(ts.tv_sec), milliseconds: Int(ts.tv_nsec / 1_000_000))
    }

    public static func timestamp(seconds: Int, milliseconds: Int) -> String {
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(milliseconds), 3))Z"
    }
}

import Foundation

/// What a stream asks of its worker: where its video comes from and how its flow is sampled.
/// The one type that carries these settings from a request body to the worker process, with their
/// rules as their only constants and three codecs as the only places their names are spelled:
/// the API's JSON body (`rtsp_url`, `grid_size`, `threshold`: StreamValidator, CameraStream's
/// JSON, the OpenAPI document), the `camera_streams` row (StreamRepository) and the worker's
/// environment (`SOURCE_URL`, `GRID_SIZE`, `THRESHOLD`: the runtimes write it, the worker reads it).
public struct StreamSettings: Sendable, Equatable {
    /// The video source: `rtsp(s)://`, `http(s)://` or `file://` (StreamRules.isValidURL).
    public var source: String
    /// Pixels between sample points; the first point sits half a cell in.
    public var gridSize: Int
    /// A vector counts when its magnitude is strictly above this many pixels.
    public var threshold: Double

    public static let gridSizeRange = 4...256
    public static let gridSizeDefault = 16
    public static let thresholdRange = 0.0...1000.0
    public static let thresholdDefault = 1.2

    public init(source: String, gridSize: Int = gridSizeDefault, threshold: Double = thresholdDefault) {
        self.source = source
        self.gridSize = gridSize
        self.threshold = threshold
    }

    // MARK: The JSON body

    /// The members of a stream's JSON that hold these settings.
    public enum Field: String, CaseIterable, Sendable {
        case source = "rtsp_url"
        case gridSize = "grid_size"
        case threshold = "threshold"
    }

    // MARK: The database row

    /// The `camera_streams` columns, in the order `init(row:)` reads them.
    public static let columns = "rtsp_url, grid_size, threshold"

    /// From the text of `columns` (libpq's text format). The columns are NOT NULL; a value that
    /// is missing or unreadable anyway reads as its default, the same one everywhere.
    public init(row: ArraySlice<String?>) {
        let i = row.startIndex
        source = row[i] ?? ""
        gridSize = row[i + 1].flatMap { Int($0) } ?? Self.gridSizeDefault
        threshold = row[i + 2].flatMap { Double($0) } ?? Self.thresholdDefault
    }

    /// The values of `columns` as statement parameters.
    public var rowParameters: [String?] { [source, String(gridSize), Self.text(threshold)] }

    /// A threshold as the database and the environment get it: the shortest round-trip spelling.
    public static func text(_ threshold: Double) -> String { "\(threshold)" }

    // MARK: The worker's environment

    public enum Variable {
        public static let source = "SOURCE_URL"
        /// The source in a file instead (the Docker runtime keeps camera credentials out of the
        /// container's inspectable environment).
        public static let sourceFile = "SOURCE_URL_FILE"
        public static let gridSize = "GRID_SIZE"
        public static let threshold = "THRESHOLD"
    }

    /// The source's variables, declared once (the worker's `--help`).
    public static let sourceDeclarations: [Setting] = [
        .string(
            Variable.source, nil, shown: "required, or \(Variable.sourceFile)",
            "the video: rtsp://, rtsps://, http(s)://, file:///PATH or a path"),
        .string(Variable.sourceFile, nil, "a file holding \(Variable.source) (keeps credentials out of the environment)"),
    ]

    /// The sampling's variables, declared once, with the rules' own defaults and ranges.
    public static let samplingDeclarations: [Setting] = [
        .int(
            Variable.gridSize, gridSizeDefault,
            "pixels between sample points (\(gridSizeRange.lowerBound)-\(gridSizeRange.upperBound))"),
        .double(
            Variable.threshold, thresholdDefault,
            "a vector counts when its magnitude is strictly above this many pixels (\(Int(thresholdRange.lowerBound))-\(Int(thresholdRange.upperBound)))"
        ),
    ]

    /// The variables a worker reads these settings from.
    public var environment: [String: String] {
        [Variable.source: source, Variable.gridSize: String(gridSize), Variable.threshold: Self.text(threshold)]
    }

    /// Reads what `environment` wrote (flags `--source-url` and the like too), with the same rules
    /// as the API's validation for the numbers. The source comes from `SOURCE_URL`, else from the
    /// file `SOURCE_URL_FILE` names; `requireSource: false` (offline commands, whose source is an
    /// argument) leaves it empty. The variables read must be declared (`sourceDeclarations`,
    /// `samplingDeclarations`).
    public init(_ c: ConfigurationSource, requireSource: Bool = true) throws(ConfigurationError) {
        gridSize = try c.int(Variable.gridSize, range: Self.gridSizeRange)
        threshold = try c.double(Variable.threshold, range: Self.thresholdRange)
        if !requireSource {
            source = ""
        } else if let s = c.raw(Variable.source) {
            source = s
        } else if let path = c.raw(Variable.sourceFile) {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigurationError("\(Variable.sourceFile) \(path) cannot be read")
            }
            source = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !source.isEmpty else { throw ConfigurationError("\(Variable.sourceFile) \(path) is empty") }
        } else {
            throw ConfigurationError("\(Variable.source) (or \(Variable.sourceFile)) is required")
        }
    }
}

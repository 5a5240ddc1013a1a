import Foundation
import VFCore

// Entry point: `run` (the default), `bench`, `flow`. Exit 2 = bad configuration, one line on stderr.
let arguments = Array(CommandLine.arguments.dropFirst())
let code: Int32
do {
    let config = try ConfigurationSource(arguments: arguments, environment: ProcessInfo.processInfo.environment)
    switch config.positional.first ?? "run" {
    case "bench": code = try benchCommand(config)
    case "flow": code = try flowCommand(config)
    case "run":
        guard config.positional.count <= 1 else { throw ConfigurationError("run takes no positional arguments") }
        code = try runCommand(config)
    case let other: throw ConfigurationError("unknown command \"\(other)\" (use run, bench or flow)")
    }
} catch {
    printError("vectorflow-worker: \(error)")
    code = 2
}
// _exit, not exit: after SIGTERM the capture thread may still be inside a blocking FFmpeg read, and
// running OpenCV's static destructors under it could crash the exit that should report 0.
fflush(nil)
_exit(code)

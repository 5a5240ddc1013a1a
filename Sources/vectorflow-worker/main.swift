import Foundation
import VFCore

// Entry point: `run` (the default), `bench`, `flow`. Exit 2 = bad configuration, one line on stderr.

/// The subcommands and the settings each one reads (its `--help` and the flags it accepts).
enum WorkerCommand: String, CaseIterable {
    case run, bench, flow

    var declarations: [Setting] {
        switch self {
        case .run:
            return LogSettings.declarations + FlowSettings.declarations + WorkerSettings.declarations
                + WorkerSettings.encodingDeclarations
        case .bench:
            return LogSettings.declarations + FlowSettings.declarations + benchDeclarations
                + WorkerSettings.encodingDeclarations
        case .flow: return LogSettings.declarations + FlowSettings.declarations
        }
    }

    /// The command a command line names: its first word when that is not a flag, else `run`.
    static func of(_ arguments: [String]) throws(ConfigurationError) -> WorkerCommand {
        guard let first = arguments.first, !first.hasPrefix("-") else { return .run }
        guard let command = WorkerCommand(rawValue: first) else {
            throw ConfigurationError("unknown command \"\(first)\" (use run, bench or flow)")
        }
        return command
    }

    static var helpText: String {
        var out = """
            Usage: vectorflow-worker [run] [options]               analyse a stream and publish it (the default)
                   vectorflow-worker bench SOURCE [options]        the analysis loop unpaced, timed per stage (JSON)
                   vectorflow-worker flow IMAGE1 IMAGE2 [options]  the flow between two stills (JSON)
                   vectorflow-worker -h | --help | --version

            Each setting is a flag or an environment variable; the flag wins. Bool settings are switches
            (--preview, --loop=false). Exit status 2: a bad setting, flag or argument.


            """
        out += SettingsHelp.render(title: "Logging (every command):", LogSettings.declarations) + "\n"
        out += SettingsHelp.render(title: "Flow (run, bench, flow):", FlowSettings.declarations) + "\n"
        out += SettingsHelp.render(title: "run:", WorkerSettings.declarations) + "\n"
        out += SettingsHelp.render(title: "run and bench:", WorkerSettings.encodingDeclarations) + "\n"
        out += SettingsHelp.render(title: "bench:", benchDeclarations)
        return out
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
let code: Int32
switch CommandLineRequest.of(arguments) {
case .help:
    Console.out(WorkerCommand.helpText)
    code = 0
case .version:
    Console.out(SettingsHelp.versionLine(program: "vectorflow-worker") + "\n")
    code = 0
case .run:
    do {
        let command = try WorkerCommand.of(arguments)
        let config = try ConfigurationSource(
            arguments: arguments, environment: ProcessInfo.processInfo.environment, settings: command.declarations)
        try Log.bootstrap(config, label: "vectorflow-worker")
        switch command {
        case .bench: code = try benchCommand(config)
        case .flow: code = try flowCommand(config)
        case .run:
            // `run` is optional: the first positional word, if any, must be it.
            let operands = config.positional.first == "run" ? 1 : 0
            try config.expectPositional(atMost: operands)
            code = try runCommand(config)
        }
    } catch {
        printUsageError("vectorflow-worker: \(error)")
        code = 2
    }
}
// _exit, not exit: after SIGTERM the capture thread may still be inside a blocking FFmpeg read, and
// running OpenCV's static destructors under it could crash the exit that should report 0.
fflush(nil)
_exit(code)

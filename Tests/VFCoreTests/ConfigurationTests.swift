import XCTest

@testable import VFCore

final class ConfigurationTests: XCTestCase {
    let declared: [Setting] = [
        .int("VF_PORT", 8000, "port"),
        .bool("PREVIEW", false, "switch"),
        .bool("LOOP", true, "switch on by default"),
        .string("DUMP_VECTORS", nil, "file"),
        .double("THRESHOLD", 1.2, "px"),
        .string("VF_WORKER_BIN", nil, shown: "beside the API", "computed default"),
    ]

    func source(_ arguments: [String], _ environment: [String: String] = [:]) throws(ConfigurationError)
        -> ConfigurationSource
    {
        try ConfigurationSource(arguments: arguments, environment: environment, settings: declared)
    }

    func error(_ arguments: [String]) -> String? {
        do {
            _ = try source(arguments)
            return nil
        } catch {
            return error.description
        }
    }

    func testFlagThenEnvironmentThenDeclaredDefault() throws {
        XCTAssertEqual(try source([]).int("VF_PORT"), 8000)
        XCTAssertEqual(try source([], ["VF_PORT": "9000"]).int("VF_PORT"), 9000)
        XCTAssertEqual(try source(["--vf-port", "7000"], ["VF_PORT": "9000"]).int("VF_PORT"), 7000)
        XCTAssertEqual(try source(["--vf-port=6000"]).int("VF_PORT"), 6000)
        XCTAssertEqual(try source([], ["VF_PORT": ""]).int("VF_PORT"), 8000, "an empty variable is unset")
        XCTAssertEqual(try source([]).double("THRESHOLD"), 1.2)
        XCTAssertEqual(try source([]).string("VF_WORKER_BIN", default: "/x/w"), "/x/w")
        XCTAssertNil(try source([]).raw("DUMP_VECTORS"))
        XCTAssertTrue(try source([]).bool("LOOP"))
    }

    func testSwitchesNeverTakeTheNextWord() throws {
        let c = try source(["bench", "--preview", "clip.mp4"])
        XCTAssertTrue(try c.bool("PREVIEW"))
        XCTAssertEqual(c.positional, ["bench", "clip.mp4"])
        XCTAssertFalse(try source(["--loop=false"]).bool("LOOP"))
        XCTAssertTrue(try source(["--loop=yes"]).bool("LOOP"))
        XCTAssertThrowsError(try source(["--preview=maybe"]).bool("PREVIEW"))
    }

    func testUnknownFlagsAndMisplacedValuesAreNamed() throws {
        XCTAssertEqual(error(["--port", "9000"]), "unknown option \"--port\"")
        XCTAssertEqual(error(["--port=9000"]), "unknown option \"--port\"")
        XCTAssertEqual(error(["-p"]), "unknown option \"-p\"")
        XCTAssertEqual(error(["--dump-vectors"]), "--dump-vectors needs a value")
        XCTAssertEqual(error(["--dump-vectors", "--preview"]), "--dump-vectors needs a value")
        XCTAssertEqual(error(["--preview", "false"]).map { $0.hasPrefix("--preview is a switch") }, true)
        XCTAssertThrowsError(try source(["bench", "a.mp4", "extra"]).expectPositional(atMost: 2)) { e in
            XCTAssertEqual("\(e)", "unexpected argument \"extra\"")
        }
        XCTAssertThrowsError(try source(["--vf-port", "clip.mp4"]).int("VF_PORT")) { e in
            XCTAssertTrue("\(e)".contains("clip.mp4"), "\(e)")
        }
        // A negative number is a value, and `--` ends the flags.
        XCTAssertThrowsError(try source(["--vf-port", "-5"]).int("VF_PORT", range: 0...65535))
        XCTAssertEqual(try source(["--", "--preview"]).positional, ["--preview"])
    }

    func testRequestsAnsweredBeforeAnySetting() {
        XCTAssertEqual(CommandLineRequest.of(["bench", "--help"]), .help)
        XCTAssertEqual(CommandLineRequest.of(["-h"]), .help)
        XCTAssertEqual(CommandLineRequest.of(["--version", "--port"]), .version)
        XCTAssertEqual(CommandLineRequest.of(["--", "--help"]), .run)
        XCTAssertEqual(CommandLineRequest.of(["--vf-port", "1"]), .run)
    }

    func testHelpListsEverySettingWithFlagVariableDefaultAndMeaning() {
        let help = SettingsHelp.render(title: "Settings:", declared)
        for s in declared {
            XCTAssertTrue(help.contains("\(s.flag)"), s.name)
            XCTAssertTrue(help.contains("(\(s.name), default: \(s.defaultDescription))"), s.name)
            XCTAssertTrue(help.contains(s.help), s.name)
        }
        XCTAssertTrue(help.contains("--preview  (PREVIEW, default: false)"), "a switch shows no value")
        XCTAssertTrue(help.contains("--vf-port N  (VF_PORT, default: 8000)"))
        XCTAssertTrue(help.contains("(VF_WORKER_BIN, default: beside the API)"))
    }
}

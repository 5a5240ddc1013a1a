import Foundation
import PackagePlugin

/// Gives VFCore the git commit it is built from: before every build, a shell step writes
/// `BuildCommit.swift` (`let generatedBuildCommit = "<sha>"`) into the plugin's work folder, never
/// into the sources. The commit is `VF_BUILD_COMMIT` when set (Docker builds, which copy the
/// sources without .git), else `git rev-parse HEAD` of the package, else "unknown": no git, no
/// .git or any other failure never fails the build. The file is rewritten only when its text
/// changes, so an unchanged commit recompiles nothing.
@main
struct BuildCommitPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        let environment = ProcessInfo.processInfo.environment
        return [
            .prebuildCommand(
                displayName: "Writing the build commit for \(target.name)",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", Self.script, "build-commit", context.package.directoryURL.path, output.path],
                environment: [
                    "PATH": environment["PATH"] ?? "/usr/bin:/bin",
                    "VF_BUILD_COMMIT": environment["VF_BUILD_COMMIT"] ?? "",
                ],
                outputFilesDirectory: output)
        ]
    }

    /// `$1`: the package folder, `$2`: where the generated file goes. Always exits 0.
    static let script = #"""
        commit="${VF_BUILD_COMMIT:-}"
        if [ -z "$commit" ] && command -v git >/dev/null 2>&1; then
            commit=$(git -C "$1" rev-parse HEAD 2>/dev/null) || commit=""
        fi
        case "$commit" in ""|*[!0-9a-fA-F]*) commit=unknown ;; esac
        mkdir -p "$2" || exit 0
        text="// Generated before each build by BuildCommitPlugin; never committed.
        let generatedBuildCommit = \"$commit\""
        if [ "$(cat "$2/BuildCommit.swift" 2>/dev/null)" != "$text" ]; then
            printf '%s\n' "$text" > "$2/BuildCommit.swift.tmp" && mv "$2/BuildCommit.swift.tmp" "$2/BuildCommit.swift"
        fi
        exit 0
        """#
}

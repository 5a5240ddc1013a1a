import Foundation
import PackagePlugin

/// Gives VFCore the git commit it is built from: a shell step writes `BuildCommit.swift`
/// (`let generatedBuildCommit = "<sha>"`) into the plugin's work folder, never into the sources.
/// The commit is `VF_BUILD_COMMIT` when set (Docker builds, which copy the sources without .git),
/// else `git rev-parse HEAD` of the package, else "unknown": no git, no .git or any other failure
/// never fails the build.
///
/// A build command, not a prebuild one: SwiftPM reuses its build plan between builds, so a prebuild
/// step does not run again after a commit. The step's inputs are the checkout's `HEAD` and its
/// reflog (`logs/HEAD`, appended to by every commit, checkout or reset), so the build runs it again
/// exactly when HEAD moves. The file is rewritten only when its text changes, so a step that runs
/// again for the same commit recompiles nothing.
@main
struct BuildCommitPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let package = context.package.directoryURL
        let folder = context.pluginWorkDirectoryURL.appending(path: "generated")
        let environment = ProcessInfo.processInfo.environment
        return [
            .buildCommand(
                displayName: "Writing the build commit for \(target.name)",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", Self.script, "build-commit", package.path, folder.path],
                environment: [
                    "PATH": environment["PATH"] ?? "/usr/bin:/bin",
                    "VF_BUILD_COMMIT": environment["VF_BUILD_COMMIT"] ?? "",
                ],
                inputFiles: Self.headFiles(of: package),
                outputFiles: [folder.appending(path: "BuildCommit.swift")])
        ]
    }

    /// `HEAD` and `logs/HEAD` of the package's git folder, those that exist (none without .git).
    /// `.git` is a folder in a clone and a `gitdir: PATH` file in a worktree.
    static func headFiles(of package: URL) -> [URL] {
        let dotGit = package.appending(path: ".git")
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dotGit.path, isDirectory: &isFolder) else { return [] }
        var gitFolder = dotGit
        if !isFolder.boolValue {
            guard let text = try? String(contentsOf: dotGit, encoding: .utf8), text.hasPrefix("gitdir:") else {
                return []
            }
            let path = text.dropFirst("gitdir:".count).trimmingCharacters(in: .whitespacesAndNewlines)
            gitFolder = path.hasPrefix("/") ? URL(fileURLWithPath: path) : package.appending(path: path)
        }
        return [gitFolder.appending(path: "HEAD"), gitFolder.appending(path: "logs/HEAD")].filter {
            FileManager.default.fileExists(atPath: $0.path)
        }
    }

    /// `$1`: the package folder, `$2`: where the generated file goes. Always writes it, exits 0.
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

/// What build this is: `--version`, `vector_flow_build_info` and the OpenAPI document's version.
public enum BuildInfo {
    /// The platform's release version (the API contract's version in /openapi.json too).
    public static let version = "1.0.0"
    /// The git commit the binary was built from, or "unknown" where the build could not tell
    /// (written by BuildCommitPlugin whenever HEAD moves: `VF_BUILD_COMMIT`, else `git rev-parse HEAD`).
    public static var commit: String { generatedBuildCommit }
}

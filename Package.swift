// swift-tools-version:6.1
import PackageDescription

// OpenCV's headers live in /usr/include/opencv4, an absolute path SwiftPM's header-path
// setting cannot name; an unsafe flag is fine for a root package.
let openCVLibraries: [LinkerSetting] = [
    "opencv_core", "opencv_imgproc", "opencv_video", "opencv_videoio", "opencv_imgcodecs", "swscale", "avutil", "m",
].map { .linkedLibrary($0) }

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")

let package = Package(
    name: "vectorflow",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "vectorflow-api", targets: ["vectorflow-api"]),
        .executable(name: "vectorflow-worker", targets: ["vectorflow-worker"]),
        .executable(name: "vfnet-testserver", targets: ["vfnet-testserver"]),
    ],
    dependencies: [
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // HMAC-SHA256 of the webhook signatures (no hand-written crypto).
        .package(url: "https://github.com/apple/swift-crypto.git", .upToNextMinor(from: "3.12.3")),
    ],
    targets: [
        // System libraries: a module map and a one-line shim header each, nothing else.
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // C++ over OpenCV behind a plain-C header: no OpenCV type crosses it.
        .target(
            name: "CVFOpenCV",
            cxxSettings: [.unsafeFlags(["-I/usr/include/opencv4", "-O2"])],
            // decoder_threads.cpp's avcodec_open2 and avcodec_receive_frame must sit in the
            // executable's dynamic symbol table to come before FFmpeg's in OpenCV's lookup.
            // connect_guard.cpp's `connect` likewise, before libc's in FFmpeg's lookup.
            linkerSettings: openCVLibraries + [
                .unsafeFlags([
                    "-Xlinker", "--export-dynamic-symbol=avcodec_open2",
                    "-Xlinker", "--export-dynamic-symbol=avcodec_receive_frame", "-Xlinker", "--export-dynamic-symbol=connect",
                ])
            ]
        ),
        // epoll/eventfd headers for VFNet's event loop (not in Swift's Glibc module).
        .systemLibrary(name: "CVFNetLinux"),
        // Bytes and text every layer shares: the one JSON writer and string escaper, hex digits.
        .target(name: "VFText", swiftSettings: strict),
        // The one lock primitive (a pthread mutex ThreadSanitizer sees).
        .target(name: "VFSync", swiftSettings: strict),
        .target(name: "VFNet", dependencies: ["CVFNetLinux", "VFText", "VFSync"], swiftSettings: strict),
        // The git commit of the build, for `--version` and `vector_flow_build_info`.
        .plugin(name: "BuildCommitPlugin", capability: .buildTool(), path: "Sources/BuildCommitPlugin"),
        .target(
            name: "VFCore",
            dependencies: [
                "VFText", "VFSync", .product(name: "Prometheus", package: "swift-prometheus"), logging,
            ],
            swiftSettings: strict,
            plugins: ["BuildCommitPlugin"]
        ),
        .target(name: "VFStore", dependencies: ["CLibPQ", "VFCore", "VFSync", "VFText", logging], swiftSettings: strict),
        .target(name: "VFBus", dependencies: ["CHiredis", "VFCore", "VFSync"], swiftSettings: strict),
        .target(name: "VFRuntime", dependencies: ["CCurl", "VFCore", "VFSync", "VFText", logging], swiftSettings: strict),
        // The control plane: the streams' operations with typed results (the API maps them to
        // HTTP), and the reconciler's wiring to the store and the live status.
        .target(
            name: "VFControl",
            dependencies: [
                "VFCore", "VFStore", "VFRuntime", "VFBus", "VFLive", "VFText", "VFSync", logging,
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict),
        // The HTTP face: routes (one table for the router and /openapi.json), auth, CORS, docs.
        .target(
            name: "VFAPI", dependencies: ["VFNet", "VFCore", "VFStore", "VFControl", "VFBus", "VFRuntime", "VFText", logging],
            swiftSettings: strict),
        .target(name: "VFLive", dependencies: ["VFNet", "VFBus", "VFCore", "VFSync", logging], swiftSettings: strict),
        .target(name: "VFFlow", dependencies: ["CVFOpenCV", "VFCore", "VFText", "VFSync", logging], swiftSettings: strict),
        .executableTarget(
            name: "vectorflow-api",
            dependencies: ["VFNet", "VFCore", "VFStore", "VFControl", "VFAPI", "VFBus", "VFRuntime", "VFLive", logging],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "vectorflow-worker",
            dependencies: [
                "VFNet", "VFCore", "VFBus", "VFFlow", "VFText", "VFSync", .product(name: "Prometheus", package: "swift-prometheus"),
                logging,
            ],
            swiftSettings: strict
        ),
        // A minimal server on VFNet for the protocol tests and bench/http.
        .executableTarget(name: "vfnet-testserver", dependencies: ["VFNet"], swiftSettings: strict),
        // Helpers shared by the test targets (a plain library: it builds without XCTest).
        .target(name: "VFTestSupport", dependencies: ["VFCore"], path: "Tests/VFTestSupport", swiftSettings: strict),
        .testTarget(name: "VFNetTests", dependencies: ["VFNet"], swiftSettings: strict),
        .testTarget(name: "VFCoreTests", dependencies: ["VFCore"], swiftSettings: strict),
        .testTarget(name: "VFAPITests", dependencies: ["VFAPI", "VFNet", "VFCore", "VFTestSupport"], swiftSettings: strict),
        .testTarget(name: "VFStoreTests", dependencies: ["VFStore", "VFControl", "VFTestSupport"], swiftSettings: strict),
        .testTarget(name: "VFFlowTests", dependencies: ["VFFlow", "VFText", "VFTestSupport"], swiftSettings: strict),
        .testTarget(name: "VFBusTests", dependencies: ["VFBus", "VFTestSupport"], swiftSettings: strict),
        .testTarget(name: "VFRuntimeTests", dependencies: ["VFRuntime", "VFTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "VFLiveTests", dependencies: ["VFLive", "VFNet", "VFBus", "VFRuntime", "VFTestSupport"],
            swiftSettings: strict),
    ]
)

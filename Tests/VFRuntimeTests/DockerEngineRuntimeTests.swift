import Foundation
import Glibc
import VFCore
import VFTestSupport
import XCTest

@testable import VFRuntime

/// The Docker runtime against a REAL dockerd that the test starts (scripts/docker-engine.sh) in
/// its own folder. Skipped only when no engine can start on this machine, with the reason.
/// The image is built `FROM scratch` out of a real binary and its `ldd` closure.
final class DockerEngineRuntimeTests: XCTestCase {
    nonisolated(unsafe) static var engineDir: String?
    nonisolated(unsafe) static var dockerHost: String?
    nonisolated(unsafe) static var skipReason: String?

    override class func setUp() {
        super.setUp()
        let dir = "/tmp/vf-dockerd-\(getpid())"  // short: unix socket paths are limited to 108 bytes
        let result = runCommand(["/bin/bash", "\(repositoryRoot)/scripts/docker-engine.sh", "start", dir])
        if result.status == 0, let host = result.output.split(separator: "\n").last.map(String.init),
            host.hasPrefix("unix://")
        {
            engineDir = dir
            dockerHost = host
        } else {
            skipReason = "dockerd cannot start here: \(result.output.trimmingCharacters(in: .whitespacesAndNewlines))"
            print(skipReason ?? "")
        }
    }

    override class func tearDown() {
        if let dir = engineDir {
            runCommand(["/bin/bash", "\(repositoryRoot)/scripts/docker-engine.sh", "stop", dir])
            try? FileManager.default.removeItem(atPath: dir)
        }
        super.tearDown()
    }

    func host() throws -> String {
        if let reason = Self.skipReason { throw XCTSkip(reason) }
        return try XCTUnwrap(Self.dockerHost)
    }

    /// A build context: Dockerfile + rootfs holding `binary` and every library `ldd` lists.
    func makeContext(binary: String) throws -> String {
        let dir = makeTestFolder("docker-context")
        let rootfs = "\(dir)/rootfs"
        var files = [binary]
        let ldd = runCommand(["/usr/bin/ldd", binary]).output
        for line in ldd.split(separator: "\n") {
            if let path = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first(where: { $0.hasPrefix("/") }) {
                files.append(String(path))
            }
        }
        for file in files {
            let dest = rootfs + file
            try FileManager.default.createDirectory(
                atPath: (dest as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let resolved = URL(fileURLWithPath: file).resolvingSymlinksInPath().path
            try? FileManager.default.removeItem(atPath: dest)
            try FileManager.default.copyItem(atPath: resolved, toPath: dest)
        }
        try """
        FROM scratch
        COPY rootfs/ /
        ENTRYPOINT ["\(binary)"]
        CMD ["300"]
        """.write(toFile: "\(dir)/Dockerfile.worker", atomically: true, encoding: .utf8)
        return dir
    }

    func engine(_ host: String, _ path: String) -> [String: Any]? {
        let http = CurlHTTP(dockerHost: host)
        guard let r = try? http.request("GET", path, timeout: 10), r.status == 200 else { return nil }
        return DockerEngineRuntime.jsonObject(r.body)
    }

    func testBuildCreateListStopRemove() throws {
        let host = try host()
        let log = LogCollector()
        let image = "vf-test-worker:\(getpid())"
        let config = DockerRuntimeConfiguration(
            dockerHost: host, image: image, buildContext: try makeContext(binary: "/usr/bin/sleep"),
            dockerfile: "Dockerfile.worker", network: "host", redisURL: "redis://127.0.0.1:6390/0", requestTimeout: 20)
        let runtime = DockerEngineRuntime(configuration: config, log: log.sink)

        // Missing image → built through /build, progress streamed into the log.
        try runtime.prepare()
        XCTAssertTrue(log.all.contains { $0.hasPrefix("build: Step 1/") }, "\(log.all)")
        XCTAssertNotNil(engine(host, "/images/\(image)/json"))
        // A second instance finds the image and does not build again.
        let log2 = LogCollector()
        try DockerEngineRuntime(configuration: config, log: log2.sink).prepare()
        XCTAssertFalse(log2.all.contains { $0.hasPrefix("build:") })

        let s = spec(IDs.a, name: "Lobby", threshold: 2.0)
        let info = try runtime.start(s)
        XCTAssertEqual(info.name, "vector-worker-\(IDs.a)")
        let inspect = try XCTUnwrap(engine(host, "/containers/vector-worker-\(IDs.a)/json"))
        let state = try XCTUnwrap(inspect["State"] as? [String: Any])
        XCTAssertEqual(state["Running"] as? Bool, true, "\(state)")
        let configJSON = try XCTUnwrap(inspect["Config"] as? [String: Any])
        let labels = try XCTUnwrap(configJSON["Labels"] as? [String: String])
        XCTAssertEqual(labels["vectorflow.stream_id"], IDs.a)
        XCTAssertEqual(labels["vectorflow.stream_name"], "Lobby")
        XCTAssertEqual(labels["vectorflow.config_hash"], s.configHash)
        XCTAssertEqual(configJSON["User"] as? String, "10001:10001")
        let env = try XCTUnwrap(configJSON["Env"] as? [String])
        XCTAssertTrue(env.contains("STREAM_ID=\(IDs.a)"))
        // The source URL is not in what `docker inspect` shows: the worker reads it from a file.
        XCTAssertFalse(env.contains { $0.hasPrefix("SOURCE_URL=") }, "\(env)")
        XCTAssertTrue(env.contains("SOURCE_URL_FILE=/run/vectorflow/source_url"))
        XCTAssertFalse(String(describing: inspect).contains(s.settings.source))
        let archive = try CurlHTTP(dockerHost: host).request(
            "GET", "/containers/vector-worker-\(IDs.a)/archive?path=/run/vectorflow/source_url", timeout: 10)
        XCTAssertEqual(archive.status, 200)
        XCTAssertTrue(
            String(decoding: archive.body, as: UTF8.self).contains(s.settings.source), "the file holds the URL")
        XCTAssertTrue(env.contains("THRESHOLD=2.0"))
        XCTAssertTrue(env.contains("REDIS_URL=redis://127.0.0.1:6390/0"))
        XCTAssertTrue(env.contains("METRICS_HOST=127.0.0.1"))
        let hostConfig = try XCTUnwrap(inspect["HostConfig"] as? [String: Any])
        XCTAssertEqual(hostConfig["NetworkMode"] as? String, "host")
        XCTAssertEqual(hostConfig["CapDrop"] as? [String], ["ALL"])
        XCTAssertEqual(hostConfig["SecurityOpt"] as? [String], ["no-new-privileges"])
        XCTAssertEqual(hostConfig["ReadonlyRootfs"] as? Bool, true)
        XCTAssertEqual((hostConfig["RestartPolicy"] as? [String: Any])?["Name"] as? String, "unless-stopped")
        XCTAssertEqual(hostConfig["Memory"] as? Int, 512 * 1024 * 1024)
        XCTAssertEqual(hostConfig["MemorySwap"] as? Int, 512 * 1024 * 1024, "no swap beyond the memory limit")
        XCTAssertEqual(hostConfig["PidsLimit"] as? Int, 128)
        XCTAssertEqual(hostConfig["NanoCpus"] as? Int, 1_000_000_000)

        let listed = try runtime.list()
        XCTAssertEqual(listed.map(\.streamID), [IDs.a])
        if listed.first?.state != .running {
            let logs = try? CurlHTTP(dockerHost: host).request(
                "GET", "/containers/vector-worker-\(IDs.a)/logs?stdout=1&stderr=1", timeout: 5)
            print("container state: \(engine(host, "/containers/vector-worker-\(IDs.a)/json")?["State"] ?? "?")")
            print("container logs: \(String(decoding: logs?.body ?? [], as: UTF8.self))")
        }
        XCTAssertEqual(listed.first?.state, .running)
        XCTAssertEqual(listed.first?.configHash, s.configHash)
        XCTAssertEqual(listed.first?.metricsTarget, info.metricsTarget)
        XCTAssertTrue(info.metricsTarget?.hasPrefix("127.0.0.1:") ?? false)

        // Starting again replaces the container (never two of one stream).
        let again = try runtime.start(s)
        XCTAssertNotEqual(again.identifier, info.identifier)
        XCTAssertEqual(try runtime.list().count, 1)

        // What a crash can leave: a container created but never started (the API died between
        // the two calls) is not taken for a running worker, and a second container labelled for
        // the same stream under another name goes at the next start: exactly one remains.
        let engineHTTP = CurlHTTP(dockerHost: host)
        let stray: [String: Any] = [
            "Image": image, "Cmd": ["/usr/bin/sleep", "300"],
            "Labels": [
                "vectorflow.managed": "true", "vectorflow.stream_id": IDs.a, "vectorflow.config_hash": s.configHash,
            ],
            "HostConfig": ["NetworkMode": "host"],
        ]
        let created = try engineHTTP.request(
            "POST", "/containers/create?name=vf-stray-\(IDs.a.prefix(8))",
            body: Array(try JSONSerialization.data(withJSONObject: stray)), timeout: 10)
        XCTAssertEqual(created.status, 201, String(decoding: created.body, as: UTF8.self))
        XCTAssertEqual(try runtime.list().filter { $0.streamID == IDs.a }.map(\.state).sorted { $0.rawValue < $1.rawValue },
                       [.exited, .running], "the never-started container counts as exited")
        let third = try runtime.start(s)
        let left = try runtime.list()
        XCTAssertEqual(left.map(\.identifier), [third.identifier], "one container for the stream, the new one")

        // sleep is PID 1 in the container and so ignores SIGTERM: the engine kills it after t=1.
        let t0 = monotonicNow()
        try runtime.stop(streamID: IDs.a, timeout: 1)
        XCTAssertLessThan(monotonicNow() - t0, 8)
        XCTAssertEqual(try runtime.list().count, 0)
        XCTAssertNil(engine(host, "/containers/vector-worker-\(IDs.a)/json"))
        try runtime.stop(streamID: IDs.a, timeout: 1)  // nothing left to stop: fine

        // The reconciler drives the same runtime.
        let dir = makeTestFolder("docker-reconcile")
        let store = JSONFileStore(path: "\(dir)/streams.json", rows: [JSONFileStore.row(IDs.b)])
        let reconciler = StreamReconciler(
            store: store, runtime: runtime, fileSD: FileSDWriter(path: "\(dir)/sd.json"),
            stopTimeout: 1, log: { _ in })
        XCTAssertEqual(reconciler.reconcileNow().started, [IDs.b])
        XCTAssertEqual(store.row(IDs.b)?.worker_container_name, "vector-worker-\(IDs.b)")
        try store.update { $0[0].is_active = false }
        XCTAssertEqual(reconciler.reconcileNow().stopped, [IDs.b])
        XCTAssertEqual(try runtime.list().count, 0)
        XCTAssertNil(store.row(IDs.b)?.worker_container_name)
    }

    func testEngineErrorsAreClearAndQuick() throws {
        let host = try host()
        // An image that does not exist and cannot be built.
        var config = DockerRuntimeConfiguration(dockerHost: host, image: "vf-no-such-image:nope", requestTimeout: 10)
        var t0 = monotonicNow()
        XCTAssertThrowsError(try DockerEngineRuntime(configuration: config, log: { _ in }).start(spec(IDs.c))) {
            error in
            guard let e = error as? RuntimeError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.kind, .engine)
            XCTAssertEqual(e.httpStatus, 502)
            XCTAssertTrue(e.message.contains("vf-no-such-image:nope"), e.message)
        }
        XCTAssertLessThan(monotonicNow() - t0, 5)

        // A malformed image name: the engine's own message comes through.
        config.image = "Bad Image Name!"
        t0 = monotonicNow()
        XCTAssertThrowsError(try DockerEngineRuntime(configuration: config, log: { _ in }).prepare()) { error in
            guard let e = error as? RuntimeError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.kind, .engine)
            XCTAssertTrue(e.message.contains("HTTP 400") || e.message.contains("invalid"), e.message)
        }
        XCTAssertLessThan(monotonicNow() - t0, 5)

        // No engine behind the socket: 503, quickly.
        config.dockerHost = "unix:///tmp/vf-no-engine-\(getpid()).sock"
        t0 = monotonicNow()
        XCTAssertThrowsError(try DockerEngineRuntime(configuration: config, log: { _ in }).list()) { error in
            guard let e = error as? RuntimeError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.kind, .unavailable)
            XCTAssertEqual(e.httpStatus, 503)
        }
        XCTAssertLessThan(monotonicNow() - t0, 2)
        XCTAssertFalse(DockerEngineRuntime.isReachable(dockerHost: config.dockerHost))
        XCTAssertTrue(DockerEngineRuntime.isReachable(dockerHost: host))
    }

    func testAHungEngineTimesOut() throws {
        // A unix socket that accepts connections but never answers.
        let path = "/tmp/vf-hung-\(getpid()).sock"
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            for (i, b) in path.utf8.enumerated() { buf[i] = b }
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        XCTAssertEqual(bound, 0)
        listen(fd, 8)
        defer {
            close(fd)
            unlink(path)
        }
        let runtime = DockerEngineRuntime(
            configuration: DockerRuntimeConfiguration(dockerHost: "unix://\(path)", requestTimeout: 0.5),
            log: { _ in })
        let t0 = monotonicNow()
        XCTAssertThrowsError(try runtime.list()) { error in
            XCTAssertEqual((error as? RuntimeError)?.kind, .unavailable)
            XCTAssertTrue("\(error)".contains("timed out"), "\(error)")
        }
        XCTAssertLessThan(monotonicNow() - t0, 2)
    }

    func testTarArchiveIsReadableByTar() throws {
        let dir = makeTestFolder("tar")
        let deep = "\(dir)/src/" + String(repeating: "long-folder-name/", count: 8)
        try FileManager.default.createDirectory(atPath: deep, withIntermediateDirectories: true)
        try "hello".write(toFile: "\(deep)/file.txt", atomically: true, encoding: .utf8)
        try "#!/bin/sh\n".write(toFile: "\(dir)/src/run.sh", atomically: true, encoding: .utf8)
        chmod("\(dir)/src/run.sh", 0o755)
        symlink("run.sh", "\(dir)/src/link")
        var tar = TarArchive()
        try tar.addFolder("\(dir)/src")
        try Data(tar.finish()).write(to: URL(fileURLWithPath: "\(dir)/ctx.tar"))
        let listing = runCommand(["/bin/tar", "-tvf", "\(dir)/ctx.tar"])
        XCTAssertEqual(listing.status, 0, listing.output)
        XCTAssertTrue(listing.output.contains("-rwxr-xr-x"), listing.output)
        XCTAssertTrue(listing.output.contains("link -> run.sh"), listing.output)
        try FileManager.default.createDirectory(atPath: "\(dir)/out", withIntermediateDirectories: true)
        XCTAssertEqual(runCommand(["/bin/tar", "-xf", "\(dir)/ctx.tar", "-C", "\(dir)/out"]).status, 0)
        // .dockerignore: excluded folders and patterns stay out; "!" brings a file back.
        try ".build-x\n*.o\n**/__pycache__\nlogs\n!logs/keep.txt\n".write(
            toFile: "\(dir)/src/.dockerignore", atomically: true, encoding: .utf8)
        for f in [".build-x/debug/big.bin", "a.o", "pkg/__pycache__/m.pyc", "logs/drop.txt", "logs/keep.txt", "kept.c"]
        {
            try FileManager.default.createDirectory(
                atPath: ("\(dir)/src/\(f)" as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try "x".write(toFile: "\(dir)/src/\(f)", atomically: true, encoding: .utf8)
        }
        var filtered = TarArchive()
        try filtered.addFolder("\(dir)/src")
        try Data(filtered.finish()).write(to: URL(fileURLWithPath: "\(dir)/filtered.tar"))
        let names = Set(
            runCommand(["/bin/tar", "-tf", "\(dir)/filtered.tar"]).output.split(separator: "\n").map(String.init))
        XCTAssertTrue(names.contains("kept.c"), "\(names)")
        XCTAssertTrue(names.contains("logs/keep.txt"), "\(names)")
        XCTAssertTrue(names.contains("run.sh"))
        for gone in [".build-x/", ".build-x/debug/big.bin", "a.o", "pkg/__pycache__/m.pyc", "logs/drop.txt"] {
            XCTAssertFalse(names.contains(gone), "\(gone) should be excluded: \(names)")
        }
        let back = try String(
            contentsOfFile: "\(dir)/out/" + String(repeating: "long-folder-name/", count: 8) + "file.txt",
            encoding: .utf8)
        XCTAssertEqual(back, "hello")
    }
}

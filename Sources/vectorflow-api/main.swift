import Foundation
import VFBus
import VFCore
import VFNet

// Block the stop signals before any thread starts, so every thread inherits the mask and the
// main thread alone takes them with sigwait: a clean stop, no async-signal-safety concerns.
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
sigaddset(&stopSignals, SIGTERM)
sigaddset(&stopSignals, SIGINT)
pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
signal(SIGPIPE, SIG_IGN)

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("vectorflow-api: \(message)\n".utf8))
    exit(2)
}

let config: APIConfiguration
let redis: RedisClient
do {
    let source = try ConfigurationSource(
        arguments: Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment)
    config = try APIConfiguration(source)
} catch {
    fail(error.description)
}
do {
    redis = try RedisClient(url: config.redisURL)
} catch {
    fail("REDIS_URL is not valid: \(error)")
}

let api = APIServer(config: config, redis: redis)
var serverConfig = HTTPServerConfiguration()
serverConfig.host = config.host
serverConfig.port = config.port
serverConfig.hooks = api.makeHooks()
let server = HTTPServer(configuration: serverConfig, router: api.makeRouter())
let port: Int
do {
    port = try server.start()
} catch {
    fail("cannot listen on \(config.host):\(config.port): \(error)")
}
api.connectDatabase()
if api.staticFiles == nil {
    FileHandle.standardError.write(
        Data("vectorflow-api: static folder \(config.staticDir) not found; serving the API only\n".utf8))
}
// Unbuffered write: scripts and tests wait for this line.
FileHandle.standardOutput.write(Data("vectorflow-api listening on http://\(config.host):\(port)\n".utf8))

var received: Int32 = 0
sigwait(&stopSignals, &received)
server.stop()
api.pool.shutdown()
exit(0)

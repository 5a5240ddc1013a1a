import Foundation
import Logging
import VFAPI
import VFBus
import VFControl
import VFCore
import VFLive
import VFNet
import VFRuntime
import VFStore

// Block the stop signals before any thread starts, so every thread inherits the mask and the
// main thread alone takes them with sigwait: a clean stop, no async-signal-safety concerns.
// SIGHUP too (a terminal hanging up stops the API like Ctrl-C does); a signal the parent set to
// be ignored (`nohup`, a non-interactive shell's `&` for SIGINT) stays ignored: sigwait never sees it.
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
sigaddset(&stopSignals, SIGTERM)
sigaddset(&stopSignals, SIGINT)
sigaddset(&stopSignals, SIGHUP)
pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
signal(SIGPIPE, SIG_IGN)

/// A bad configuration, or a start that cannot go on: one line on stderr, exit 2.
func fail(_ message: String) -> Never {
    Console.error("vectorflow-api: \(message)\n")
    exit(2)
}

// --help and --version answer before anything is read, bound or connected.
let arguments = Array(CommandLine.arguments.dropFirst())
switch CommandLineRequest.of(arguments) {
case .help:
    let usage = """
        Usage: vectorflow-api [options]
               vectorflow-api -h | --help | --version

        The REST and WebSocket API and the worker orchestrator. Each setting is a flag or an environment
        variable; the flag wins. Bool settings are switches (--vf-allow-file-sources, --vf-access-log=false).
        Exit status 2: a bad setting or flag, or the port cannot be bound.


        """
    Console.out(usage + SettingsHelp.render(title: "Settings:", APIConfiguration.declarations))
    exit(0)
case .version:
    Console.out(SettingsHelp.versionLine(program: "vectorflow-api") + "\n")
    exit(0)
case .run:
    break
}

let config: APIConfiguration
let runtimeSettings: RuntimeSettings
let redis: RedisClient
let live: FrameBroadcaster
do {
    let source = try ConfigurationSource(
        arguments: arguments, environment: ProcessInfo.processInfo.environment, settings: APIConfiguration.declarations)
    try source.expectPositional(atMost: 0)
    try Log.bootstrap(source, label: "vectorflow-api")
    config = try APIConfiguration(source)
    let apiDir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        .deletingLastPathComponent().path
    runtimeSettings = try RuntimeSettings(
        source, redisURL: config.redisURL, apiBinaryDirectory: apiDir, platformServices: config.platformServices)
} catch {
    fail(error.description)
}
let log = Logger(label: "vectorflow-api")
let runtimeLog = Logger(label: "vectorflow-api.runtime")
do {
    redis = try RedisClient(url: config.redisURL)
    live = try FrameBroadcaster(redisURL: config.redisURL)
} catch {
    fail("REDIS_URL is not valid: \(error)")
}

// The reconciler reads the desired state through a one-connection pool of its own.
let reconcilerPool = DatabasePool(url: config.databaseURL, size: 1)
// Replicas share the database: only the holder of its advisory lock reconciles (see LeaderLock).
let leaderLock = LeaderLock(url: config.databaseURL, log: { log.notice("\($0)") })
let reconciler: StreamReconciler
do throws(RuntimeError) {
    let failures = StartFailureReporter(
        redis: redis, ttl: max(15, Int((3 * runtimeSettings.reconcileInterval).rounded(.up))))
    reconciler = try runtimeSettings.makeReconciler(
        store: PostgresDesiredState(pool: reconcilerPool), log: { runtimeLog.info("\($0)") },
        onReport: { failures.publish($0) },
        isLeader: { leaderLock.isLeader })
} catch {
    fail(error.description)
}
let api = APIServer(
    config: config, redis: redis, observer: ReconcilingObserver(reconciler: reconciler),
    statuses: live.statusProvider, workerStarted: reconciler.workerStartObserver,
    role: { leaderLock.isLeader ? "leader" : "standby" })
// Motion events: the consumer of vectorflow:events, the webhook sender and the retention sweep,
// each on a thread of its own, sharing a small pool of their own (never the requests' pool).
let eventPool = DatabasePool(url: config.databaseURL, size: 2)
let eventMetrics = EventMetrics(registry: api.metrics.registry)
let eventHub = EventHub()
let webhooks = WebhookSender(settings: config.events, pool: eventPool, metrics: eventMetrics)
let ingest = EventIngest(
    settings: config.events, redisURL: config.redisURL, pool: eventPool, metrics: eventMetrics,
    onApplied: { eventHub.publish($0) }, onDeliveriesQueued: { webhooks.wakeUp() })
let retention = EventRetention(
    settings: config.events, pool: eventPool, metrics: eventMetrics, isLeader: { leaderLock.isLeader })
var serverConfig = HTTPServerConfiguration()
serverConfig.host = config.host
serverConfig.port = config.port
serverConfig.hooks = api.makeHooks()
var router = api.makeRouter()
live.install(on: &router)  // WS /ws/frames
eventHub.install(on: &router)  // WS /ws/events
let server = HTTPServer(configuration: serverConfig, router: router)
// Before listening: a replica alone leads from its first request (LeaderLock.start).
leaderLock.start { isLeader in if isLeader { reconciler.kick() } }  // a new leader acts at once
let port: Int
do {
    port = try server.start()
} catch {
    fail("cannot listen on \(config.host):\(config.port): \(error)")
}
api.connectDatabase()
live.start()
reconciler.start()  // a first pass at once, then every VF_RECONCILE_INTERVAL seconds
ingest.start()
webhooks.start()
retention.start()
if !api.servesDashboard {
    log.warning("static folder \(config.staticDir) not found; serving the API only")
}
log.info(
    "listening on http://\(config.host):\(port)",
    metadata: ["version": "\(BuildInfo.version)", "commit": "\(BuildInfo.commit)"])
// Unbuffered write: scripts and tests wait for this line. Best-effort: with nobody reading (a
// `make run | tee` whose tee Ctrl-C ended) the API goes on to its stop rather than trapping.
Console.out("vectorflow-api listening on http://\(config.host):\(port)\n")

var received: Int32 = 0
sigwait(&stopSignals, &received)
// The stop is bounded: past the bound (the workers' stop when it is asked for, plus a margin)
// the process ends anyway, so a stop signal always ends the API and whoever waits on it (a
// supervisor, the run script) never meets one that lingers.
let stopBound = (config.stopWorkersOnExit ? runtimeSettings.stopTimeout + 15 : 0) + 10
Thread {
    Thread.sleep(forTimeInterval: stopBound)
    log.error("the stop did not finish within \(Int(stopBound)) s; exiting")
    _exit(1)
}.start()
// A standby replica leaves the workers to the leader.
if config.stopWorkersOnExit && leaderLock.isLeader {
    // Compose: no worker may outlive `docker compose down`. The stops run in parallel, each bounded
    // by VF_WORKER_STOP_TIMEOUT (then SIGKILL); the margin covers the engine calls around them. Past
    // the bound the API exits anyway, before compose's stop_grace_period runs out.
    log.notice("stopping every worker (VF_STOP_WORKERS_ON_EXIT)")
    let stopped = DispatchSemaphore(value: 0)
    Thread {
        let errors = reconciler.stopAllWorkers()
        if !errors.isEmpty {
            log.error("\(errors.count) worker(s) could not be stopped")
        }
        stopped.signal()
    }.start()
    let bound = runtimeSettings.stopTimeout + 15
    if stopped.wait(timeout: .now() + bound) == .timedOut {
        log.warning("workers still stopping after \(Int(bound)) s; exiting anyway")
    }
} else {
    // Workers keep running: the next API instance adopts them (the run script stops them with the platform).
    reconciler.stop()
}
ingest.stop()
webhooks.stop()
retention.stop()
leaderLock.stop()
live.stop()
server.stop()
api.pool.shutdown()
reconcilerPool.shutdown()
// _exit, not exit: the background threads above were told to stop, not joined, and exit's
// teardown (atexit handlers, library destructors) would run under them. Nothing is buffered:
// the log and Console write straight to their descriptors; fflush covers any stdio output.
fflush(nil)
_exit(0)

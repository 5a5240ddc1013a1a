import Foundation
import Logging
import VFBus
import VFCore
import VFFlow

/// `vectorflow-worker run`: starts the capture loop, the Redis publisher and status threads and the
/// metrics server, then waits for SIGTERM/SIGINT (exit 0 within 2 s) or the end of a finite source.
func runCommand(_ c: ConfigurationSource) throws(ConfigurationError) -> Int32 {
    let settings = try WorkerSettings(c)
    let client: RedisClient
    do {
        client = try RedisClient(url: settings.redisURL, timeout: 1)
    } catch {
        throw ConfigurationError(error.description)
    }
    VideoStream.setThreads(settings.threads)
    // FFmpeg bypasses its http_proxy option for hosts in `no_proxy`, and a proxy from the
    // environment must not stand in for the worker's own (the source policy lives there).
    for name in ["no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"] { unsetenv(name) }

    // Signals are taken synchronously by this thread (sigtimedwait), so they are blocked before any
    // other thread starts and inherits the mask. SIGPIPE would kill the process when Redis or a
    // scraper drops a connection mid-write: ignore it, the write reports EPIPE instead.
    signal(SIGPIPE, SIG_IGN)
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGTERM)
    sigaddset(&signals, SIGINT)
    pthread_sigmask(SIG_BLOCK, &signals, nil)

    var log = Logger(label: "vectorflow-worker")
    log[metadataKey: "stream_id"] = "\(settings.streamID)"
    VideoStream.routeFFmpegLog(to: log)
    let metrics = WorkerMetrics(streamID: settings.streamID, streamName: settings.streamName, zones: settings.zones)
    let housekeeper = Housekeeper(
        client: client, streamID: settings.streamID, previewAlways: settings.previewAlways, log: log,
        stateGauge: metrics.state)
    let publisher = FramePublisher(client: client, channel: RedisKeys.frames(settings.streamID), metrics: metrics)
    // A client of its own: an entry waiting on a slow Redis never delays a frame, nor the reverse.
    let eventsClient: RedisClient
    do {
        eventsClient = try RedisClient(url: settings.redisURL, timeout: 1)
    } catch {
        throw ConfigurationError(error.description)
    }
    let events = EventPublisher(
        client: eventsClient, maxLen: settings.eventsStreamMaxLen, capacity: settings.eventsQueueSize,
        metrics: metrics, log: log)
    let server: MetricsServer
    do {
        server = try MetricsServer(
            host: settings.metricsHost, port: settings.metricsPort, metrics: metrics, housekeeper: housekeeper)
    } catch {
        log.critical("cannot serve metrics on \(settings.metricsHost):\(settings.metricsPort): \(error)")
        return 1
    }
    let capture = CaptureLoop(
        settings: settings, metrics: metrics, housekeeper: housekeeper, publisher: publisher,
        events: events, log: log)
    log.info(
        "starting: source \(Credentials.maskURL(settings.source)), metrics on port \(server.port)",
        metadata: [
            "version": "\(BuildInfo.version)", "commit": "\(BuildInfo.commit)",
            "opencv": "\(VideoStream.openCVVersion)",
        ])
    housekeeper.start()
    publisher.start()
    events.start()
    capture.start()

    var stoppedBySignal = false
    var timeout = timespec(tv_sec: 0, tv_nsec: 100_000_000)
    while true {
        let sig = sigtimedwait(&signals, nil, &timeout)
        if sig == SIGTERM || sig == SIGINT {
            stoppedBySignal = true
            break
        }
        if capture.isFinished { break }
    }
    // Everything below is bounded so that the process is gone within 2 s of SIGTERM: the capture
    // thread may sit in a blocking read, and the process exits without it if it does not return.
    log.info(stoppedBySignal ? "stopping (signal)" : "stopping (the source ended)")
    capture.stop()
    _ = capture.join(timeout: 1.0)
    // The capture thread ended the events going on: their end entries get a short while to reach Redis.
    events.stop(flushWithin: 0.5)
    publisher.stop()
    housekeeper.stop(removeStatus: stoppedBySignal)
    server.stop()
    return 0
}

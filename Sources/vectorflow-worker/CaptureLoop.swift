import Foundation
import Logging
import Synchronization
import VFCore
import VFFlow

/// The analysis loop of `run`, on its own thread: capture → grey → flow → threshold → stats →
/// (annotate → JPEG, only for watched streams) → publish, reconnecting when the source is lost.
final class CaptureLoop: Sendable {
    private let settings: WorkerSettings
    private let metrics: WorkerMetrics
    private let housekeeper: Housekeeper
    private let publisher: FramePublisher
    private let events: EventPublisher
    /// Source errors and reconnects (carries `stream_id`); URLs in them are masked.
    private let log: Logger
    private let stopFlag = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    /// Set when the loop ended by itself (a finite source with LOOP=false).
    let ended = Atomic<Bool>(false)

    /// Bounds on a blocking open or read of the source (FFmpeg's own timeouts, via OpenCV).
    private static let openTimeout = 5.0
    private static let readTimeout = 5.0

    init(
        settings: WorkerSettings, metrics: WorkerMetrics, housekeeper: Housekeeper, publisher: FramePublisher,
        events: EventPublisher, log: Logger
    ) {
        self.events = events
        self.log = log
        self.settings = settings
        self.metrics = metrics
        self.housekeeper = housekeeper
        self.publisher = publisher
    }

    var isStopping: Bool { stopFlag.load(ordering: .relaxed) }

    func start() {
        let t = Thread { [self] in
            // The stream handle lives and dies on this thread.
            self.run(VideoStream())
            self.finished.store(true, ordering: .releasing)
            self.done.signal()
        }
        t.name = "capture"
        t.stackSize = 1 << 22
        t.start()
    }

    func stop() { stopFlag.store(true, ordering: .relaxed) }

    private let finished = Atomic<Bool>(false)
    var isFinished: Bool { finished.load(ordering: .acquiring) }

    /// Waits for the loop to finish; false on timeout (it may be inside a blocking open or read).
    func join(timeout: Double) -> Bool {
        if isFinished { return true }
        guard done.wait(timeout: .now() + timeout) == .success else { return false }
        return true
    }

    private func run(_ stream: VideoStream) {
        settings.flow.configure(stream)
        let guardian = SourceGuard(source: settings.source, policy: settings.sourcePolicy)
        var backoff = Backoff()
        var firstAttempt = true
        var openFailures = 0
        var session = Session(settings: settings)
        while !isStopping {
            if firstAttempt { housekeeper.update(state: .connecting) }
            do {
                let prepared = try guardian.prepare()
                VideoStream.guardConnections(prepared.peers)  // this thread's FFmpeg calls, reads too
                try stream.open(
                    prepared.url, openTimeout: Self.openTimeout, readTimeout: Self.readTimeout,
                    httpProxy: prepared.httpProxy)
            } catch {
                // A local file that cannot be opened will rarely fix itself: `failed` says so
                // (retries continue, slowly), and so does a source the policy refuses; a network
                // source is `reconnecting`.
                let refusal = error is SourcePolicyError ? "\(error)" : guardian.takeRefusal()
                let isFile = settings.sourceKind == .file
                let reason = Credentials.maskText(refusal ?? ("\(error)" + Self.fileProblem(settings)))
                housekeeper.update(
                    state: isFile || refusal != nil ? .failed : (firstAttempt ? .connecting : .reconnecting),
                    fps: 0, lastError: reason)
                metrics.fps.set(0.0)
                firstAttempt = false
                openFailures += 1
                let delay = backoff.nextDelay()
                log.error(
                    "cannot open the source: \(reason); retrying in \(Self.seconds(delay)) s",
                    metadata: [
                        "source": "\(Credentials.maskURL(settings.source))", "attempt": "\(openFailures)",
                        "retry_in_s": "\(Self.seconds(delay))",
                    ])
                sleep(until: monotonicNow() + delay) { isStopping }
                continue
            }
            firstAttempt = false
            if openFailures > 0 { log.info("source opened after \(openFailures) failed attempt(s)") }
            openFailures = 0
            let outcome = session.play(stream, loop: self)
            // Whatever ended the session (a stop, the source's end or its loss), the events going
            // on end with it: their end entries leave with the frames they saw.
            session.endEvents(stream, loop: self)
            switch outcome {
            case .stopped:
                return
            case .finished:
                // A file or an HTTP video reached its end: like a camera that never stops, start
                // it over at once (LOOP=true), or report `ended` and let the process exit.
                backoff.reset()
                if !settings.loop {
                    housekeeper.update(state: .ended, fps: 0)
                    metrics.fps.set(0.0)
                    ended.store(true, ordering: .relaxed)
                    return
                }
            case .lost(let reason, let hadFrames):
                if hadFrames { backoff.reset() }
                metrics.reconnects.increment()
                metrics.fps.set(0.0)
                // A read can connect too (an HTTP source reopened at its end): say if the policy stopped it.
                let masked = Credentials.maskText(guardian.takeRefusal() ?? reason)
                housekeeper.update(state: .reconnecting, fps: 0, lastError: masked)
                let delay = backoff.nextDelay()
                log.warning(
                    "source lost: \(masked); reconnecting in \(Self.seconds(delay)) s",
                    metadata: ["retry_in_s": "\(Self.seconds(delay))"])
                sleep(until: monotonicNow() + delay) { isStopping }
            }
            stream.close()
        }
    }

    /// Why a file source cannot be read, as the system says it (" (No such file or directory)"),
    /// or "" when it can be read (then the container or codec is the problem) or is no file.
    static func fileProblem(_ settings: WorkerSettings) -> String {
        guard settings.sourceKind == .file else { return "" }
        let path = settings.source.hasPrefix("file://") ? String(settings.source.dropFirst(7)) : settings.source
        guard access(path, R_OK) != 0 else { return "" }
        return " (\(String(cString: strerror(errno))))"
    }

    /// A delay for the log: seconds with one decimal.
    static func seconds(_ d: Double) -> String { String(format: "%.1f", d) }

    // MARK: - what one session (open → end or loss) needs from the loop

    func report(fps: Double) {
        metrics.fps.set(fps)
        housekeeper.update(fps: fps)
    }

    func markRunning() { housekeeper.update(state: .running, lastError: "") }
    var viewersPresent: Bool { housekeeper.viewers.load(ordering: .relaxed) }
    func publish(_ message: [UInt8]) { publisher.offer(message) }
    func append(_ event: MotionEvent) { events.offer(event) }
    var workerMetrics: WorkerMetrics { metrics }
}

/// The per-stream analysis state that survives reconnects (sequence numbers, pacing, buffers).
struct Session {
    enum Outcome {
        case stopped
        case finished
        case lost(String, hadFrames: Bool)
    }

    let settings: WorkerSettings
    var seq: UInt64 = 0
    var kept: [Float] = []
    var jpeg: [UInt8] = []
    var nextPreview = 0.0
    var fpsWindowStart = 0.0
    var fpsWindowFrames = 0
    var fps = 0.0
    var detector: ZoneDetector
    var snapshots: ZoneSnapshots

    init(settings: WorkerSettings) {
        self.settings = settings
        detector = ZoneDetector(zones: settings.zones, streamID: settings.streamID, streamName: settings.streamName)
        snapshots = ZoneSnapshots(zoneCount: detector.zones.count)
    }

    mutating func play(_ stream: VideoStream, loop: CaptureLoop) -> Outcome {
        let finite = settings.sourceKind != .rtsp && stream.sourceFrameCount > 0
        let sourceFPS = stream.sourceFPS
        let frameInterval = 1 / ((1...240).contains(sourceFPS) ? sourceFPS : 25)
        let previewInterval = 1 / settings.previewFPS
        let metrics = loop.workerMetrics
        var framesThisSession = 0
        var consecutiveCorrupt = 0
        var nextDue = monotonicNow()
        fpsWindowStart = nextDue
        fpsWindowFrames = 0
        while !loop.isStopping {
            if finite {
                // Played at its own frame rate, like a camera. After a stall, carry on from now
                // rather than rushing to catch up.
                sleep(until: nextDue) { loop.isStopping }
                let now = monotonicNow()
                nextDue = max(nextDue + frameInterval, now - frameInterval)
            }
            switch stream.read() {
            case .corrupt:
                metrics.framesDropped.increment()
                consecutiveCorrupt += 1
                if consecutiveCorrupt > CaptureLoopLimits.maxConsecutiveCorrupt {
                    return .lost("too many unusable frames in a row", hadFrames: framesThisSession > 0)
                }
                continue
            case .end:
                if finite && framesThisSession > 0 { return .finished }
                return .lost(
                    framesThisSession > 0 ? "the source stopped sending frames" : "the source sent no frame",
                    hadFrames: framesThisSession > 0)
            case .failed(let reason):
                return .lost(reason, hadFrames: framesThisSession > 0)
            case .frame:
                break
            }
            let capturedAt = unixNow()
            consecutiveCorrupt = 0
            if framesThisSession == 0 { loop.markRunning() }
            framesThisSession += 1
            seq += 1
            var stats: FlowStats
            do {
                stats = try stream.flow { v in
                    FlowStats.analyse(v, threshold: settings.flow.threshold, kept: &kept)
                }
            } catch {
                metrics.framesDropped.increment()
                continue
            }
            for (reason, counter) in metrics.rejected.enumerated() {
                let n = stream.lastRejected(reason)
                stats.rejected += n
                if n > 0 { counter.increment(by: Int64(n)) }
            }
            metrics.magnitudeAvg.set(stats.magnitudeAvg)
            metrics.magnitudeMax.set(stats.magnitudeMax)
            metrics.vectorCount.set(Double(stats.vectorCount))
            for (k, gauge) in metrics.directions.enumerated() { gauge.set(Double(stats.directions[k])) }
            metrics.framesProcessed.increment()
            if !detector.isEmpty {
                detector.prepare(width: stream.width, height: stream.height, gridSize: settings.flow.gridSize)
                detector.process(kept: kept, at: capturedAt)
                if detector.peakRose != 0 || !detector.entries.isEmpty { deliverZoneOutput(stream, loop: loop) }
            }
            let now = monotonicNow()
            fpsWindowFrames += 1
            if now - fpsWindowStart >= 1 {
                fps = Double(fpsWindowFrames) / (now - fpsWindowStart)
                fpsWindowStart = now
                fpsWindowFrames = 0
                loop.report(fps: fps)
            }
            // The preview runs at PREVIEW_FPS whatever the analysis rate; the 5 ms slack keeps
            // a 10 fps source from missing every other slot through timer jitter.
            if now + 0.005 >= nextPreview {
                nextPreview = max(nextPreview + previewInterval, now - previewInterval / 2)
                publishPreview(stream, stats: stats, capturedAt: capturedAt, loop: loop)
            }
        }
        return .stopped
    }

    /// Keeps the frame of each zone whose peak rose (copied, not encoded), and hands the
    /// detector's entries to the event publisher, with the snapshot JPEG when one goes with them.
    private mutating func deliverZoneOutput(_ stream: VideoStream, loop: CaptureLoop) {
        snapshots.keepRisingPeaks(of: detector, stream: stream, kept: kept, maxWidth: settings.previewMaxWidth)
        deliverEntries(stream, loop: loop)
    }

    private mutating func deliverEntries(_ stream: VideoStream, loop: CaptureLoop) {
        let metrics = loop.workerMetrics
        for entry in detector.entries {
            var event = entry.event
            if entry.needsSnapshot {
                event.snapshot = snapshots.jpeg(zone: entry.zoneIndex, stream: stream, quality: settings.jpegQuality)
            }
            switch event.phase {
            case .start:
                metrics.eventsStarted[entry.zoneIndex].increment()
                metrics.zoneActive[entry.zoneIndex].set(1.0)
            case .end:
                metrics.zoneActive[entry.zoneIndex].set(0.0)
            case .update:
                break
            }
            loop.append(event)
        }
    }

    /// Ends the events going on (the session is over).
    mutating func endEvents(_ stream: VideoStream, loop: CaptureLoop) {
        guard !detector.isEmpty else { return }
        detector.finish(at: unixNow())
        deliverEntries(stream, loop: loop)
    }

    private mutating func publishPreview(_ stream: VideoStream, stats: FlowStats, capturedAt: Double, loop: CaptureLoop)
    {
        let width = stream.width
        let height = stream.height
        var pw = width
        var ph = height
        if width > settings.previewMaxWidth {
            pw = settings.previewMaxWidth
            ph = max(1, Int((Double(height) * Double(pw) / Double(width)).rounded()))
        }
        jpeg.removeAll(keepingCapacity: true)
        var withJPEG = false
        if settings.previewAlways || loop.viewersPresent {
            do {
                let size = try stream.annotate(vectors: kept, maxWidth: settings.previewMaxWidth)
                (pw, ph) = (size.width, size.height)
                try stream.encodeJPEG(quality: settings.jpegQuality, into: &jpeg)
                withJPEG = true
            } catch {
                jpeg.removeAll(keepingCapacity: true)
            }
        }
        let header = FrameHeader(
            streamID: settings.streamID, streamName: settings.streamName, seq: seq, capturedAt: capturedAt,
            width: width, height: height, fps: fps, stats: stats, vectors: kept, jpeg: withJPEG,
            previewWidth: pw, previewHeight: ph)
        loop.publish(FrameEnvelope.encode(header, jpeg: jpeg))
    }
}

enum CaptureLoopLimits {
    /// Consecutive unusable frames after which the source counts as lost.
    static let maxConsecutiveCorrupt = 50
}

/// A motion event of one zone of one stream, as the worker reports it and the API keeps it.
///
/// The worker appends one Redis Stream entry (`RedisKeys.events`) each time an event starts, at
/// most once a second while it goes on (only when something changed), and when it ends. Every
/// entry carries the event's whole state so far, numbered by `seq` (1, 2, ...): the newest `seq`
/// is the event, whatever order entries are applied in, and applying an entry twice changes
/// nothing (the API's insert is keyed by `id` and guarded by `seq`). These field names are the
/// one spelling of that entry, shared by the producer (the worker) and the consumer (the API).
public struct MotionEvent: Sendable, Equatable {
    public enum Phase: String, Sendable, CaseIterable {
        case start, update, end
    }

    /// A UUID chosen by the worker when the event starts (canonical, lower case).
    public var id: String
    /// 1 for the start entry, one more for each later entry of the same event.
    public var seq: Int
    public var phase: Phase
    public var streamID: String
    public var streamName: String
    public var zoneID: String
    public var zoneName: String
    /// Seconds since 1970 (the capture time of the frames).
    public var startedAt: Double
    /// The last frame on which the zone's rule held.
    public var lastMotionAt: Double
    /// Set on the end entry only.
    public var endedAt: Double?
    /// The largest mean speed of the zone's vectors on one frame, px per frame, and when.
    public var peakSpeed: Double
    public var peakAt: Double
    /// The mean magnitude of every counted vector of the event, px per frame.
    public var meanSpeed: Double
    /// The direction of the sum of the event's counted vectors, degrees in image axes
    /// (0 = +x, 90 = +y, i.e. down; ZoneRule's convention); nil when they cancel out.
    public var meanDirectionDeg: Double?
    /// Counted vectors (reliable, above the stream's threshold, inside the zone, passing the
    /// zone's direction rule) summed over the event's frames, and the most on one frame.
    public var vectorCount: Int
    public var peakVectors: Int
    /// Frames on which the rule held.
    public var frames: Int
    /// A JPEG of the frame at the peak, annotated: on the end entry always, on an update when the
    /// peak changed and a few seconds passed since the last one (ZoneDetector.snapshotInterval).
    /// Absent otherwise.
    public var snapshot: [UInt8]?

    public init(
        id: String, seq: Int, phase: Phase, streamID: String, streamName: String, zoneID: String, zoneName: String,
        startedAt: Double, lastMotionAt: Double, endedAt: Double? = nil, peakSpeed: Double, peakAt: Double,
        meanSpeed: Double, meanDirectionDeg: Double?, vectorCount: Int, peakVectors: Int, frames: Int,
        snapshot: [UInt8]? = nil
    ) {
        self.id = id
        self.seq = seq
        self.phase = phase
        self.streamID = streamID
        self.streamName = streamName
        self.zoneID = zoneID
        self.zoneName = zoneName
        self.startedAt = startedAt
        self.lastMotionAt = lastMotionAt
        self.endedAt = endedAt
        self.peakSpeed = peakSpeed
        self.peakAt = peakAt
        self.meanSpeed = meanSpeed
        self.meanDirectionDeg = meanDirectionDeg
        self.vectorCount = vectorCount
        self.peakVectors = peakVectors
        self.frames = frames
        self.snapshot = snapshot
    }

    /// The Redis Stream entry's field names.
    public enum Field: String, CaseIterable, Sendable {
        case id = "event_id"
        case seq
        case phase
        case streamID = "stream_id"
        case streamName = "stream_name"
        case zoneID = "zone_id"
        case zoneName = "zone_name"
        case startedAt = "started_at"
        case lastMotionAt = "last_motion_at"
        case endedAt = "ended_at"
        case peakSpeed = "peak_speed"
        case peakAt = "peak_at"
        case meanSpeed = "mean_speed"
        case meanDirectionDeg = "mean_direction_deg"
        case vectorCount = "vector_count"
        case peakVectors = "peak_vectors"
        case frames
        case snapshot
    }

    /// The entry as XADD's field/value pairs (numbers as text; the snapshot as raw bytes).
    public var streamFields: [[UInt8]] {
        var out: [[UInt8]] = []
        out.reserveCapacity(36)
        func put(_ f: Field, _ v: String) {
            out.append(Array(f.rawValue.utf8))
            out.append(Array(v.utf8))
        }
        put(.id, id)
        put(.seq, String(seq))
        put(.phase, phase.rawValue)
        put(.streamID, streamID)
        put(.streamName, streamName)
        put(.zoneID, zoneID)
        put(.zoneName, zoneName)
        put(.startedAt, "\(startedAt)")
        put(.lastMotionAt, "\(lastMotionAt)")
        if let endedAt { put(.endedAt, "\(endedAt)") }
        put(.peakSpeed, "\(peakSpeed)")
        put(.peakAt, "\(peakAt)")
        put(.meanSpeed, "\(meanSpeed)")
        if let meanDirectionDeg { put(.meanDirectionDeg, "\(meanDirectionDeg)") }
        put(.vectorCount, String(vectorCount))
        put(.peakVectors, String(peakVectors))
        put(.frames, String(frames))
        if let snapshot {
            out.append(Array(Field.snapshot.rawValue.utf8))
            out.append(snapshot)
        }
        return out
    }

    /// Reads an entry's fields back; nil (with the reason) when a required one is missing or
    /// unreadable: such an entry can never be applied and is dropped by its consumer.
    public static func decode(fields: [String: [UInt8]]) -> Result<MotionEvent, MotionEventDecodingError> {
        func text(_ f: Field) -> String? { fields[f.rawValue].map { String(decoding: $0, as: UTF8.self) } }
        func need(_ f: Field) throws(MotionEventDecodingError) -> String {
            guard let v = text(f), !v.isEmpty else { throw MotionEventDecodingError(field: f.rawValue) }
            return v
        }
        func int(_ f: Field) throws(MotionEventDecodingError) -> Int {
            guard let v = Int(try need(f)) else { throw MotionEventDecodingError(field: f.rawValue) }
            return v
        }
        func double(_ f: Field) throws(MotionEventDecodingError) -> Double {
            guard let v = Double(try need(f)), v.isFinite else { throw MotionEventDecodingError(field: f.rawValue) }
            return v
        }
        func optionalDouble(_ f: Field) throws(MotionEventDecodingError) -> Double? {
            guard text(f) != nil else { return nil }
            return try double(f)
        }
        do throws(MotionEventDecodingError) {
            guard let phase = Phase(rawValue: try need(.phase)) else { throw MotionEventDecodingError(field: "phase") }
            let event = MotionEvent(
                id: try need(.id), seq: try int(.seq), phase: phase, streamID: try need(.streamID),
                streamName: text(.streamName) ?? "", zoneID: try need(.zoneID), zoneName: text(.zoneName) ?? "",
                startedAt: try double(.startedAt), lastMotionAt: try double(.lastMotionAt),
                endedAt: try optionalDouble(.endedAt), peakSpeed: try double(.peakSpeed), peakAt: try double(.peakAt),
                meanSpeed: try double(.meanSpeed), meanDirectionDeg: try optionalDouble(.meanDirectionDeg),
                vectorCount: try int(.vectorCount), peakVectors: try int(.peakVectors), frames: try int(.frames),
                snapshot: fields[Field.snapshot.rawValue])
            guard event.seq >= 1 else { throw MotionEventDecodingError(field: "seq") }
            return .success(event)
        } catch {
            return .failure(error)
        }
    }
}

public struct MotionEventDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var description: String { "the event entry's \(field) is missing or unreadable" }
}

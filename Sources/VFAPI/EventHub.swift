import Foundation
import VFControl
import VFCore
import VFNet
import VFStore
import VFSync
import VFText

/// `WS /ws/events[?stream_id=]`: every applied motion-event entry, after its commit, as one text
/// message `{"type":"event","phase":...,"event":{...}}` to the clients of its stream and to the
/// "all streams" clients. Auth and Origin are checked in the upgrade hook like /ws/frames. A
/// message is queued whole (none may be skipped, unlike frames); a client that stops reading is
/// closed once VFNet's per-connection output limit (HTTPLimits.outputHardLimit) is passed, so a
/// slow client never grows memory without bound.
public final class EventHub: Sendable {
    private struct Clients {
        var byStream: [String: [WebSocket]] = [:]
        var all: [WebSocket] = []
    }

    private let clients = Locked(Clients())
    /// Clients only listen: what they send is read and dropped, a few KiB at most.
    static let maxClientMessageBytes = 4096

    public init() {}

    public var clientCount: Int {
        clients.withLock { c in c.all.count + c.byStream.values.reduce(0) { $0 + $1.count } }
    }

    public func install(on router: inout Router) {
        router.webSocket("/ws/events") { [self] request in
            let raw = request.query["stream_id"] ?? ""
            let streamID: String? = raw.isEmpty ? nil : UUIDText.canonical(raw)
            if !raw.isEmpty && streamID == nil { return nil }  // 400: a malformed filter
            var handlers = WebSocketHandlers(
                onOpen: { [self] ws in
                    clients.withLock { c in
                        if let streamID { c.byStream[streamID, default: []].append(ws) } else { c.all.append(ws) }
                    }
                },
                onClose: { [self] ws, _ in
                    clients.withLock { c in
                        if let streamID {
                            c.byStream[streamID]?.removeAll { $0 === ws }
                            if c.byStream[streamID]?.isEmpty == true { c.byStream[streamID] = nil }
                        } else {
                            c.all.removeAll { $0 === ws }
                        }
                    }
                })
            handlers.maxMessageBytes = Self.maxClientMessageBytes
            handlers.subprotocol = Self.chooseSubprotocol(request.headers["Sec-WebSocket-Protocol"])
            return handlers
        }
    }

    /// `vectorflow.events` when offered, else the first protocol offered (a browser sends its
    /// token as one, `bearer.<token>`, and fails a handshake that offered protocols and got none).
    static func chooseSubprotocol(_ offered: String?) -> String? {
        let list = (offered ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        return list.contains("vectorflow.events") ? "vectorflow.events" : list.first
    }

    /// The message of one applied entry.
    public static func message(_ a: AppliedEvent) -> String {
        var w = JSONWriter(capacity: 700)
        w.raw("{\"type\":\"event\",\"phase\":")
        w.string(a.phase.rawValue)
        w.raw(",\"event\":")
        a.event.write(to: &w)
        w.raw("}")
        return String(decoding: w.bytes, as: UTF8.self)
    }

    /// Called by the ingest after the commit (its own thread): a short lock, then the sends.
    public func publish(_ applied: [AppliedEvent]) {
        let (byStream, all) = clients.withLock { ($0.byStream, $0.all) }
        if all.isEmpty && byStream.isEmpty { return }
        for a in applied {
            let targets = byStream[a.event.streamID] ?? []
            if targets.isEmpty && all.isEmpty { continue }
            let text = Self.message(a)
            for ws in targets { ws.send(text: text) }
            for ws in all { ws.send(text: text) }
        }
    }
}

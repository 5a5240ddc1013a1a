import VFCore
import VFNet

/// One operation of the API: the row of the route table both the router (APIServer.makeRouter,
/// which attaches the handler of the same `id` and checks the token where `authenticated`) and
/// this document are built from.
struct Operation: Sendable {
    var method: String
    var path: String
    var id: String
    var summary: String
    var authenticated = false
    var params: [JSONValue] = []
    var body: JSONValue? = nil
    var responses: [(String, JSONValue)]
}

/// Builds `/openapi.json` (OpenAPI 3.1). Generated from the route table (`operations`) and the
/// same rules the validator enforces (`StreamRules`, `StreamSettings`, `HTTPLimits`), and listing
/// every status each operation can answer, transport errors included, so that the document is
/// an exact contract (checked by schemathesis in the tests).
enum OpenAPIDocument {
    typealias J = JSONValue

    private static func o(_ members: (String, J)...) -> J { .object(members) }
    private static func s(_ v: String) -> J { .string(v) }
    private static func ref(_ name: String) -> J { o(("$ref", s("#/components/schemas/\(name)"))) }
    private static func jsonContent(_ schema: J) -> J { o(("application/json", o(("schema", schema)))) }
    private static func response(_ description: String, _ schema: J? = nil) -> J {
        if let schema { return o(("description", s(description)), ("content", jsonContent(schema))) }
        return o(("description", s(description)))
    }
    private static func textResponse(_ description: String, _ mediaType: String) -> J {
        o(("description", s(description)), ("content", o((mediaType, o(("schema", o(("type", s("string")))))))))
    }

    /// "1 MiB", "64 KiB": a limit as the document states it.
    private static func sizeText(_ bytes: Int) -> String {
        bytes % (1 << 20) == 0 ? "\(bytes >> 20) MiB" : bytes % 1024 == 0 ? "\(bytes >> 10) KiB" : "\(bytes) bytes"
    }

    private static let error = ref("ErrorMessage")
    /// Answers the HTTP layer itself may give to any request, before a handler runs.
    private static let transport: [(String, J)] = [
        ("400", response("Malformed HTTP request", error)),
        ("408", response("Request not received in time", error)),
        ("413", response("Request body larger than \(sizeText(HTTPLimits().maxBodyBytes))", error)),
        ("414", response("Request line too long", error)),
        ("431", response("Request headers too large", error)),
    ]
    private static let validation = response("Validation error", ref("HTTPValidationError"))
    private static let unavailable = response("Database unavailable or not answering in time, or server busy", error)
    private static let serverError = response("Unexpected database error", error)
    private static let notFound = response("Stream not found", error)
    private static let unsupported = response("Content-Type is not application/json", error)
    private static let unauthorized = response("Missing or wrong bearer token", error)
    private static let stream = response("The stream", ref("Stream"))
    private static let idParam = o(
        ("name", s("id")), ("in", s("path")), ("required", .bool(true)),
        ("schema", o(("type", s("string")), ("format", s("uuid")))))

    private static let zoneParam = o(
        ("name", s("zone_id")), ("in", s("path")), ("required", .bool(true)),
        ("schema", o(("type", s("string")), ("format", s("uuid")))))
    private static let zoneNotFound = response("Stream not found, or zone not found", error)
    private static let zone = response("The zone", ref("Zone"))
    private static let zoneConflict = response(
        "A zone of this stream has this name already, or the stream has \(ZoneRules.maxZonesPerStream) zones", error)

    private static func queryParam(_ name: String, _ schema: J, _ description: String) -> J {
        o(("name", s(name)), ("in", s("query")), ("required", .bool(false)), ("schema", schema), ("description", s(description)))
    }

    /// GET /events' filters (checked by EventRoutes.query with the same bounds).
    private static let eventListParams: [J] = {
        let time = o(
            (
                "anyOf",
                .array([
                    o(("type", s("number")), ("minimum", .int(0)), ("maximum", .int(Int(EventRoutes.maxUnixSeconds)))),
                    o(("type", s("string")), ("format", s("date-time"))),
                ])
            ))
        return [
            queryParam("stream_id", o(("type", s("string")), ("format", s("uuid"))), "Only this stream's events"),
            queryParam(
                "zone", o(("type", s("string")), ("minLength", .int(1)), ("maxLength", .int(EventRoutes.zoneMaxLength))),
                "Only this zone's events: a zone id or a zone name"),
            queryParam("since", time, "Events started at or after this time (ISO 8601 with a zone, or unix seconds)"),
            queryParam("until", time, "Events started at or before this time (ISO 8601 with a zone, or unix seconds)"),
            queryParam(
                "limit",
                o(
                    ("type", s("integer")), ("minimum", .int(EventRoutes.limitRange.lowerBound)),
                    ("maximum", .int(EventRoutes.limitRange.upperBound)), ("default", .int(EventRoutes.limitDefault))),
                "Events per page"),
            queryParam(
                "cursor", o(("type", s("string"))),
                "Where the page starts: the next_cursor of the previous page (opaque; any other value is refused)"),
        ]
    }()

    /// A motion event as the API answers it (StoredEvent.write), REST, WebSocket and webhooks alike.
    private static let eventProperties: [(String, J)] = {
        let time = o(("type", s("string")), ("format", s("date-time")))
        let uuid = o(("type", s("string")), ("format", s("uuid")))
        return [
            ("id", uuid), ("stream_id", uuid), ("stream_name", o(("type", s("string")))), ("zone_id", uuid),
            ("zone_name", o(("type", s("string")))),
            ("state", o(("type", s("string")), ("enum", .array([s("active"), s("ended")])))),
            ("started_at", time), ("last_motion_at", time),
            ("ended_at", o(("type", .array([s("string"), s("null")])), ("format", s("date-time")))),
            ("duration_s", o(("type", s("number")))),
            ("peak_speed", o(("type", s("number")), ("description", s("Largest mean speed on one frame, px/frame")))),
            ("peak_at", time), ("mean_speed", o(("type", s("number")))),
            (
                "mean_direction_deg",
                o(
                    ("type", .array([s("number"), s("null")])),
                    ("description", s("Direction of the sum of the counted vectors, image axes (0: right, 90: down)")))
            ),
            ("vector_count", o(("type", s("integer")))), ("peak_vectors", o(("type", s("integer")))),
            ("frames", o(("type", s("integer")))), ("has_snapshot", o(("type", s("boolean")))),
            ("snapshot_url", o(("type", .array([s("string"), s("null")])))),
        ]
    }()

    private static func eventSchema(extra: [(String, J)]) -> J {
        let props = eventProperties + extra
        return o(
            ("type", s("object")), ("required", .array(props.map { s($0.0) })), ("additionalProperties", .bool(false)),
            ("properties", .object(props)))
    }

    private static let deliverySchema: J = {
        let nullableTime = o(("type", .array([s("string"), s("null")])), ("format", s("date-time")))
        let props: [(String, J)] = [
            ("url", o(("type", s("string")), ("description", s("The webhook URL, credentials masked")))),
            ("phase", o(("type", s("string")), ("enum", .array([s("start"), s("end")])))),
            ("state", o(("type", s("string")), ("enum", .array([s("pending"), s("delivered"), s("failed")])))),
            ("attempts", o(("type", s("integer")))),
            ("last_error", o(("type", .array([s("string"), s("null")])))),
            ("next_attempt_at", nullableTime), ("delivered_at", nullableTime),
        ]
        return o(
            ("type", s("object")), ("required", .array(props.map { s($0.0) })), ("additionalProperties", .bool(false)),
            ("properties", .object(props)))
    }()

    /// The route table, in the document's order.
    static let operations: [Operation] = [
        Operation(
            method: "GET", path: "/health", id: "health", summary: "Health of the API and its database and Redis",
            responses: [
                ("200", response("Healthy", ref("Health"))),
                // 503 is the health report, or the plain error when the pool queue is full.
                (
                    "503",
                    response(
                        "Database unavailable or not answering in time (or server busy)",
                        o(("anyOf", .array([ref("Health"), ref("ErrorMessage")]))))
                ),
            ]),
        Operation(
            method: "GET", path: "/streams", id: "list_streams", summary: "List streams (oldest first)",
            authenticated: true,
            responses: [
                ("200", response("All streams", o(("type", s("array")), ("items", ref("Stream"))))),
                ("500", serverError), ("503", unavailable),
            ]),
        Operation(
            method: "POST", path: "/streams", id: "create_stream", summary: "Create a stream", authenticated: true,
            body: ref("StreamCreate"),
            responses: [
                ("201", response("Created", ref("Stream"))),
                ("415", unsupported), ("422", validation), ("500", serverError), ("503", unavailable),
            ]),
        Operation(
            method: "GET", path: "/streams/{id}", id: "get_stream", summary: "Fetch a stream", authenticated: true,
            params: [idParam],
            responses: [
                ("200", stream), ("404", notFound), ("422", validation), ("500", serverError), ("503", unavailable),
            ]),
        Operation(
            method: "PUT", path: "/streams/{id}", id: "update_stream",
            summary: "Update a stream (partial: only the fields sent change)", authenticated: true, params: [idParam],
            body: ref("StreamUpdate"),
            responses: [
                ("200", stream), ("404", notFound), ("415", unsupported), ("422", validation), ("500", serverError),
                ("503", unavailable),
            ]),
        Operation(
            method: "DELETE", path: "/streams/{id}", id: "delete_stream", summary: "Delete a stream",
            authenticated: true, params: [idParam],
            responses: [
                ("204", response("Deleted")), ("404", notFound), ("422", validation), ("500", serverError),
                ("503", unavailable),
            ]),
        Operation(
            method: "POST", path: "/streams/{id}/activate", id: "activate_stream",
            summary: "Mark a stream active (starts its worker)", authenticated: true, params: [idParam],
            responses: [
                ("200", stream), ("404", notFound), ("422", validation), ("500", serverError),
                ("502", response("The container engine refused to start the worker", error)),
                ("503", response("Database or container engine unavailable, or server busy", error)),
            ]),
        Operation(
            method: "POST", path: "/streams/{id}/deactivate", id: "deactivate_stream",
            summary: "Mark a stream inactive (stops its worker)", authenticated: true, params: [idParam],
            responses: [
                ("200", stream), ("404", notFound), ("422", validation), ("500", serverError), ("503", unavailable),
            ]),
        Operation(
            method: "GET", path: "/streams/{id}/zones", id: "list_zones", summary: "List a stream's zones (oldest first)",
            authenticated: true, params: [idParam],
            responses: [
                ("200", response("The stream's zones", o(("type", s("array")), ("items", ref("Zone"))))),
                ("404", notFound), ("422", validation), ("500", serverError), ("503", unavailable),
            ]),
        Operation(
            method: "POST", path: "/streams/{id}/zones", id: "create_zone",
            summary: "Add a zone to a stream (at most \(ZoneRules.maxZonesPerStream) per stream)", authenticated: true,
            params: [idParam], body: ref("ZoneCreate"),
            responses: [
                ("201", response("Created", ref("Zone"))), ("404", notFound), ("409", zoneConflict),
                ("415", unsupported), ("422", validation), ("500", serverError), ("503", unavailable),
            ]),
        Operation(
            method: "GET", path: "/streams/{id}/zones/{zone_id}", id: "get_zone", summary: "Fetch a zone",
            authenticated: true, params: [idParam, zoneParam],
            responses: [
                ("200", zone), ("404", zoneNotFound), ("422", validation), ("500", serverError), ("503", unavailable),
            ]),
        Operation(
            method: "PUT", path: "/streams/{id}/zones/{zone_id}", id: "update_zone",
            summary: "Update a zone (partial: only the fields sent change)", authenticated: true,
            params: [idParam, zoneParam], body: ref("ZoneUpdate"),
            responses: [
                ("200", zone), ("404", zoneNotFound), ("409", zoneConflict), ("415", unsupported), ("422", validation),
                ("500", serverError), ("503", unavailable),
            ]),
        Operation(
            method: "DELETE", path: "/streams/{id}/zones/{zone_id}", id: "delete_zone", summary: "Delete a zone",
            authenticated: true, params: [idParam, zoneParam],
            responses: [
                ("204", response("Deleted")), ("404", zoneNotFound), ("422", validation), ("500", serverError),
                ("503", unavailable),
            ]),
        Operation(
            method: "GET", path: "/events", id: "list_events",
            summary: "List motion events, newest first (started_at, then id), a page at a time", authenticated: true,
            params: eventListParams,
            responses: [
                ("200", response("A page of events and the cursor of the next one", ref("EventPage"))),
                ("422", validation), ("500", serverError), ("503", unavailable),
            ]),
        Operation(
            method: "GET", path: "/events/{id}", id: "get_event", summary: "Fetch a motion event and its webhook deliveries",
            authenticated: true, params: [idParam],
            responses: [
                ("200", response("The event", ref("EventDetail"))), ("404", response("Event not found", error)),
                ("422", validation), ("500", serverError), ("503", unavailable),
            ]),
        Operation(
            method: "GET", path: "/events/{id}/snapshot.jpg", id: "get_event_snapshot",
            summary: "The JPEG of an event's peak frame, annotated (preview size)", authenticated: true, params: [idParam],
            responses: [
                (
                    "200",
                    o(
                        ("description", s("JPEG image")),
                        ("content", o(("image/jpeg", o(("schema", o(("type", s("string")), ("format", s("binary"))))))))
                    )
                ),
                ("404", response("Event not found, or it has no snapshot", error)), ("422", validation),
                ("500", serverError), ("503", unavailable),
            ]),
        Operation(
            method: "GET", path: "/metrics", id: "metrics", summary: "Prometheus metrics of the API",
            authenticated: true,
            responses: [("200", textResponse("Prometheus text exposition", "text/plain")), ("503", unavailable)]),
        Operation(
            method: "GET", path: "/openapi.json", id: "openapi", summary: "This document",
            responses: [("200", response("OpenAPI 3.1 document", o(("type", s("object")))))]),
        Operation(
            method: "GET", path: "/docs", id: "docs", summary: "Interactive documentation page",
            responses: [("200", textResponse("HTML page", "text/html"))]),
    ]

    /// One operation's object: its answers sorted by status, the transport errors and (with a
    /// token configured) 401 added, and the bearer scheme where it applies.
    private static func operationObject(_ op: Operation, authRequired: Bool) -> J {
        var all = op.responses
        if op.authenticated && authRequired { all.append(("401", unauthorized)) }
        for t in transport where !all.contains(where: { $0.0 == t.0 }) { all.append(t) }
        all.sort { $0.0 < $1.0 }
        var m: [(String, J)] = [("operationId", s(op.id)), ("summary", s(op.summary))]
        if !op.params.isEmpty { m.append(("parameters", .array(op.params))) }
        if let body = op.body { m.append(("requestBody", o(("required", .bool(true)), ("content", jsonContent(body))))) }
        m.append(("responses", .object(all)))
        if op.authenticated && authRequired { m.append(("security", .array([o(("bearer", .array([])))]))) }
        return .object(m)
    }

    /// The paths object: each path once, in the order of its first operation, its methods in table order.
    private static func paths(authRequired: Bool) -> J {
        var order: [String] = []
        var byPath: [String: [(String, J)]] = [:]
        for op in operations {
            if byPath[op.path] == nil { order.append(op.path) }
            byPath[op.path, default: []].append((op.method.lowercased(), operationObject(op, authRequired: authRequired)))
        }
        return .object(order.map { ($0, .object(byPath[$0] ?? [])) })
    }

    /// A zone as the API answers it.
    private static let zoneSchema: J = {
        let nullableNumber = o(("type", .array([s("number"), s("null")])))
        typealias F = ZoneRule.Field
        return o(
            ("type", s("object")),
            ("required", .array((["id", "stream_id", "name", "polygon"] + F.allCases.map(\.rawValue) + ["created_at"]).map(s))),
            ("additionalProperties", .bool(false)),
            (
                "properties",
                o(
                    ("id", o(("type", s("string")), ("format", s("uuid")))),
                    ("stream_id", o(("type", s("string")), ("format", s("uuid")))),
                    ("name", o(("type", s("string")))),
                    ("polygon", o(("type", s("array")), ("items", o(("type", s("array")), ("items", o(("type", s("number")))))))),
                    (F.minVectors.rawValue, o(("type", s("integer")))),
                    (F.minMeanSpeed.rawValue, nullableNumber),
                    (F.directionDeg.rawValue, nullableNumber),
                    (F.directionToleranceDeg.rawValue, nullableNumber),
                    (F.minDurationS.rawValue, o(("type", s("number")))),
                    (F.quietTimeS.rawValue, o(("type", s("number")))),
                    ("created_at", o(("type", s("string")), ("format", s("date-time")))))
            ))
    }()

    /// A zone's create or update body, from the rules' constants (ZoneRule, ZoneRules). The whole
    /// zone's rules a schema cannot state (no self-intersection, a non-zero area, a tolerance only
    /// with a direction) are in the descriptions; they are checked once the stream is found.
    private static func zoneBody(create: Bool) -> J {
        typealias F = ZoneRule.Field
        func range(_ type: String, _ r: ClosedRange<Double>, nullable: Bool, _ description: String) -> J {
            o(
                ("type", nullable ? .array([s(type), s("null")]) : s(type)), ("minimum", .int(Int(r.lowerBound))),
                ("maximum", .int(Int(r.upperBound))), ("description", s(description)))
        }
        func withDefault(_ j: J, _ d: J) -> J {
            guard case .object(var m) = j, create else { return j }
            m.append(("default", d))
            return .object(m)
        }
        let point = o(
            ("type", s("array")), ("minItems", .int(2)), ("maxItems", .int(2)),
            ("items", o(("type", s("number")), ("minimum", .int(0)), ("maximum", .int(1)))),
            ("description", s("[x, y], normalised: 0..1 from the left and the top")))
        let polygon = o(
            ("type", s("array")), ("minItems", .int(ZoneRules.pointsRange.lowerBound)),
            ("maxItems", .int(ZoneRules.pointsRange.upperBound)), ("items", point),
            ("description", s("The outline; its edges must not cross and it must have a non-zero area")))
        let name = o(
            ("type", s("string")), ("minLength", .int(1)), ("maxLength", .int(ZoneRules.nameMaxLength)),
            ("pattern", s(StreamRules.namePattern)), ("description", s("Unique among the stream's zones")))
        let minVectors = o(
            ("type", s("integer")), ("minimum", .int(ZoneRule.minVectorsRange.lowerBound)),
            ("maximum", .int(ZoneRule.minVectorsRange.upperBound)),
            ("description", s("Reliable vectors above the stream's threshold needed inside the zone")))
        let properties = o(
            ("name", name), ("polygon", polygon),
            (F.minVectors.rawValue, withDefault(minVectors, .int(ZoneRule.minVectorsDefault))),
            (
                F.minMeanSpeed.rawValue,
                withDefault(range("number", ZoneRule.minMeanSpeedRange, nullable: true, "Minimum mean speed, px/frame; null: any"), .null)
            ),
            (
                F.directionDeg.rawValue,
                withDefault(
                    range("number", ZoneRule.directionRange, nullable: true, "Direction in degrees, image axes (0: right, 90: down); null: any"),
                    .null)
            ),
            (
                F.directionToleranceDeg.rawValue,
                range(
                    "number", ZoneRule.toleranceRange, nullable: true,
                    "Degrees either side of the direction (only with a direction; default \(JSONSerializer.number(ZoneRule.toleranceDefault)))")
            ),
            (
                F.minDurationS.rawValue,
                withDefault(
                    range("number", ZoneRule.durationRange, nullable: false, "Seconds of motion before an event starts"),
                    .double(ZoneRule.minDurationDefault))
            ),
            (
                F.quietTimeS.rawValue,
                withDefault(
                    range("number", ZoneRule.durationRange, nullable: false, "Seconds without motion before an event ends"),
                    .double(ZoneRule.quietTimeDefault))
            ))
        var m: [(String, J)] = [("type", s("object"))]
        if create { m.append(("required", .array([s("name"), s("polygon")]))) }
        m.append(("additionalProperties", .bool(false)))
        if !create { m.append(("description", s("Fields to change; absent fields keep their value; null clears"))) }
        m.append(("properties", properties))
        return .object(m)
    }

    static func build(mediaDirectory: String?, authRequired: Bool, version: String) -> J {
        let paths = paths(authRequired: authRequired)
        let name = o(
            ("type", s("string")), ("minLength", .int(1)), ("maxLength", .int(StreamRules.nameMaxLength)),
            ("pattern", s(StreamRules.namePattern)), ("description", s("Display name")))
        let schemes =
            StreamRules.networkSchemes.joined(separator: ", ")
            + (mediaDirectory.map { ", file (a video file inside \($0))" } ?? "")
        let url = o(
            ("type", s("string")), ("maxLength", .int(StreamRules.urlMaxLength)),
            ("pattern", s(StreamRules.urlPattern(mediaDirectory: mediaDirectory))),
            ("description", s("Source URL; schemes: \(schemes); network schemes need a host")))
        let grid = o(
            ("type", s("integer")), ("minimum", .int(StreamSettings.gridSizeRange.lowerBound)),
            ("maximum", .int(StreamSettings.gridSizeRange.upperBound)), ("description", s("Pixels between sample points")))
        let threshold = o(
            ("type", s("number")), ("minimum", .int(Int(StreamSettings.thresholdRange.lowerBound))),
            ("maximum", .int(Int(StreamSettings.thresholdRange.upperBound))),
            ("description", s("Flow magnitude threshold, in pixels")))
        let active = o(("type", s("boolean")), ("description", s("Desired active state")))
        func withDefault(_ j: J, _ d: J) -> J {
            guard case .object(var m) = j else { return j }
            m.append(("default", d))
            return .object(m)
        }
        let nullableString = o(("type", .array([s("string"), s("null")])))
        let nullableTime = o(("type", .array([s("string"), s("null")])), ("format", s("date-time")))

        let schemas: J = o(
            (
                "Stream",
                o(
                    ("type", s("object")),
                    (
                        "required",
                        .array(
                            [
                                "id", "name", "rtsp_url", "grid_size", "threshold", "is_active",
                                "worker_container_name", "worker_started_at", "created_at", "status",
                            ].map(s))
                    ),
                    ("additionalProperties", .bool(false)),
                    (
                        "properties",
                        o(
                            ("id", o(("type", s("string")), ("format", s("uuid")))),
                            ("name", o(("type", s("string")))),
                            ("rtsp_url", o(("type", s("string")))),
                            ("grid_size", o(("type", s("integer")))),
                            ("threshold", o(("type", s("number")))),
                            ("is_active", o(("type", s("boolean")))),
                            ("worker_container_name", nullableString),
                            ("worker_started_at", nullableTime),
                            ("created_at", o(("type", s("string")), ("format", s("date-time")))),
                            (
                                "status",
                                o(
                                    ("anyOf", .array([ref("StreamStatus"), o(("type", s("null")))])),
                                    ("description", s("Live worker status from Redis; null when unknown")))
                            )
                        )
                    ))
            ),
            (
                "StreamStatus",
                o(
                    ("type", s("object")),
                    (
                        "properties",
                        o(
                            ("state", o(("type", s("string")))),
                            ("fps", o(("type", .array([s("number"), s("null")])))),
                            ("last_error", nullableString),
                            ("updated_at", nullableTime),
                            (
                                "task",
                                ref("WorkerTask"))
                        )
                    ))
            ),
            (
                "WorkerTask",
                o(
                    ("type", s("object")),
                    (
                        "description",
                        s("The swarm runtime's task of the worker (absent for the other runtimes): state, node, engine error")
                    ),
                    ("required", .array([s("state"), s("node"), s("node_id"), s("error")])),
                    ("additionalProperties", .bool(false)),
                    (
                        "properties",
                        o(
                            ("state", o(("type", s("string")), ("description", s("The engine's task state")))),
                            ("node", o(("type", .array([s("string"), s("null")])), ("description", s("The node's hostname")))),
                            ("node_id", nullableString),
                            ("error", o(("type", .array([s("string"), s("null")])), ("description", s("The engine's error, credentials masked")))))
                    ))
            ),
            (
                "StreamCreate",
                o(
                    ("type", s("object")),
                    ("required", .array([s("name"), s("rtsp_url")])),
                    ("additionalProperties", .bool(false)),
                    (
                        "properties",
                        o(
                            ("name", name), ("rtsp_url", url),
                            ("grid_size", withDefault(grid, .int(StreamSettings.gridSizeDefault))),
                            ("threshold", withDefault(threshold, .double(StreamSettings.thresholdDefault))),
                            ("is_active", withDefault(active, .bool(false))))
                    ))
            ),
            (
                "StreamUpdate",
                o(
                    ("type", s("object")),
                    ("additionalProperties", .bool(false)),
                    ("description", s("Fields to change; absent fields keep their value")),
                    (
                        "properties",
                        o(
                            ("name", name), ("rtsp_url", url), ("grid_size", grid), ("threshold", threshold),
                            ("is_active", active))
                    ))
            ),
            ("Zone", zoneSchema),
            ("Event", eventSchema(extra: [])),
            (
                "EventDetail",
                eventSchema(extra: [("deliveries", o(("type", s("array")), ("items", ref("WebhookDelivery"))))])
            ),
            ("WebhookDelivery", deliverySchema),
            (
                "EventPage",
                o(
                    ("type", s("object")), ("required", .array([s("events"), s("next_cursor")])),
                    ("additionalProperties", .bool(false)),
                    (
                        "properties",
                        o(
                            ("events", o(("type", s("array")), ("items", ref("Event")))),
                            ("next_cursor", o(("type", .array([s("string"), s("null")])))))
                    ))
            ),
            ("ZoneCreate", zoneBody(create: true)),
            ("ZoneUpdate", zoneBody(create: false)),
            (
                "Health",
                o(
                    ("type", s("object")),
                    ("required", .array([s("status"), s("database"), s("redis")])),
                    (
                        "properties",
                        o(
                            ("status", o(("type", s("string")), ("enum", .array([s("ok"), s("unavailable")])))),
                            ("database", o(("type", s("string")), ("enum", .array([s("ok"), s("down"), s("timeout")])))),
                            ("redis", o(("type", s("string")), ("enum", .array([s("ok"), s("down"), s("unknown")])))),
                            // Which replica answered: only the leader reconciles workers (see LeaderLock).
                            ("role", o(("type", s("string")), ("enum", .array([s("leader"), s("standby")])))),
                            ("detail", o(("type", s("string")))))
                    ))
            ),
            (
                "ErrorMessage",
                o(
                    ("type", s("object")),
                    ("required", .array([s("detail")])),
                    ("properties", o(("detail", o(("type", s("string")))))))
            ),
            (
                "ValidationError",
                o(
                    ("type", s("object")),
                    ("required", .array([s("loc"), s("msg"), s("type")])),
                    (
                        "properties",
                        o(
                            (
                                "loc",
                                o(
                                    ("type", s("array")),
                                    (
                                        "items",
                                        o(("anyOf", .array([o(("type", s("string"))), o(("type", s("integer")))])))
                                    ))
                            ),
                            ("msg", o(("type", s("string")))),
                            ("type", o(("type", s("string")))),
                            ("ctx", o(("type", s("object")))))
                    ))
            ),
            (
                "HTTPValidationError",
                o(
                    ("type", s("object")),
                    ("required", .array([s("detail")])),
                    ("properties", o(("detail", o(("type", s("array")), ("items", ref("ValidationError")))))))
            )
        )

        var components: [(String, J)] = [("schemas", schemas)]
        if authRequired {
            components.append(("securitySchemes", o(("bearer", o(("type", s("http")), ("scheme", s("bearer")))))))
        }
        return o(
            ("openapi", s("3.1.0")),
            (
                "info",
                o(
                    ("title", s("Vector Flow API")), ("version", s(version)),
                    (
                        "description",
                        s("Camera streams for multi-stream optical-flow analytics. Errors follow FastAPI's shape.")
                    ))
            ),
            ("paths", paths),
            ("components", .object(components))
        )
    }
}

import VFText
import VFFlow
import VFNet

/// `/metrics` (Prometheus text format) and `/health` on METRICS_HOST:METRICS_PORT, served by VFNet
/// on one event loop: a scrape every few seconds needs no more.
final class MetricsServer: Sendable {
    let port: Int
    private let server: HTTPServer

    init(host: String, port: Int, metrics: WorkerMetrics, housekeeper: Housekeeper) throws {
        var router = Router()
        router.get("/metrics") { _, responder in
            var headers = HTTPHeaders()
            headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            responder.respond(HTTPResponse(status: 200, headers: headers, body: metrics.render()))
        }
        router.get("/health") { _, responder in
            // Healthy while the worker does its job or is trying to: `failed` is the one state
            // that needs a person (a file source that cannot be opened).
            let s = housekeeper.current
            var w = JSONWriter(capacity: 128)
            w.raw("{\"status\":")
            w.string(s.state == .failed ? "failed" : "ok")
            w.raw(",\"state\":")
            w.string(s.state.rawValue)
            w.raw(",\"fps\":")
            w.number(s.fps, decimals: 2)
            w.raw(",\"last_error\":")
            w.string(s.lastError)
            w.raw("}")
            responder.respond(HTTPResponse.json(raw: w.bytes, status: s.state == .failed ? 503 : 200))
        }
        var config = HTTPServerConfiguration()
        config.host = host
        config.port = port
        config.loopCount = 1
        config.serverName = "vectorflow-worker"
        server = HTTPServer(configuration: config, router: router)
        self.port = try server.start()
    }

    func stop() { server.stop() }
}

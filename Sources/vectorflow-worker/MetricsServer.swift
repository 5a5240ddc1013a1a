// Interim: replaced by the VFNet-based server once VFNet builds.
final class MetricsServer: Sendable {
    let port: Int
    init(host: String, port: Int, metrics: WorkerMetrics, housekeeper: Housekeeper) throws {
        self.port = port
    }
    func stop() {}
}

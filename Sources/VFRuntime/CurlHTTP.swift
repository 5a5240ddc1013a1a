import CCurl
import Foundation

/// A blocking HTTP client over libcurl for the Docker Engine API: a unix socket or a TCP base
/// URL. The only file that touches libcurl. Each request uses its own easy handle on the calling
/// thread, so no handle is ever shared; every request has a connect and a total timeout, so an
/// engine that hangs gives an error, never a stuck reconciler.
final class CurlHTTP: Sendable {
    struct Response: Sendable {
        var status: Int
        var body: [UInt8]
    }

    /// Where the engine listens: `unix:///var/run/docker.sock` or `tcp://host:port` / `http://...`.
    let unixSocket: String?
    let baseURL: String
    let connectTimeout: Double
    /// What the peer is, for error messages ("container engine").
    let service: String

    private static let globalInit: Bool = {
        curl_global_init(3) == CURLE_OK
    }()

    init(dockerHost: String, connectTimeout: Double = 3, service: String = "container engine") {
        self.service = service
        if dockerHost.hasPrefix("unix://") {
            unixSocket = String(dockerHost.dropFirst("unix://".count))
            baseURL = "http://localhost"  // the host name is ignored over a unix socket
        } else if dockerHost.hasPrefix("tcp://") {
            unixSocket = nil
            baseURL = "http://" + dockerHost.dropFirst("tcp://".count)
        } else if dockerHost.hasPrefix("/") {
            unixSocket = dockerHost
            baseURL = "http://localhost"
        } else {
            unixSocket = nil
            baseURL = dockerHost
        }
        self.connectTimeout = connectTimeout
        _ = Self.globalInit
    }

    /// Receives the response body: either collected, or handed chunk by chunk to `onChunk`
    /// (streamed build output).
    private final class Sink {
        var body: [UInt8] = []
        let onChunk: (([UInt8]) -> Void)?
        init(onChunk: (([UInt8]) -> Void)?) { self.onChunk = onChunk }
    }

    /// Sends one request. `timeout` bounds the whole exchange. Throws `.unavailable` when the
    /// engine cannot be reached or does not answer in time.
    func request(
        _ method: String, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json",
        headers extraHeaders: [String] = [], timeout: Double, onChunk: (([UInt8]) -> Void)? = nil
    ) throws(RuntimeError) -> Response {
        guard let handle = curl_easy_init() else { throw RuntimeError(.local, "curl_easy_init failed") }
        defer { curl_easy_cleanup(handle) }
        let sink = Sink(onChunk: onChunk)
        let sinkPointer = Unmanaged.passRetained(sink)
        defer { sinkPointer.release() }

        var headers: UnsafeMutablePointer<curl_slist>? = nil
        if body != nil { headers = curl_slist_append(headers, "Content-Type: \(contentType)") }
        headers = curl_slist_append(headers, "Expect:")  // no 100-continue round trip on uploads
        for h in extraHeaders { headers = curl_slist_append(headers, h) }
        defer { curl_slist_free_all(headers) }

        if let unixSocket { vf_curl_setopt_string(handle, CURLOPT_UNIX_SOCKET_PATH, unixSocket) }
        vf_curl_setopt_string(handle, CURLOPT_URL, baseURL + path)
        vf_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method)
        vf_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)  // timeouts without SIGALRM: we are multi-threaded
        vf_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(connectTimeout * 1000))
        vf_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout * 1000))
        vf_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headers)
        vf_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, sinkPointer.toOpaque())
        vf_curl_setopt_write_function(handle) { data, size, count, userdata in
            let n = size * count
            guard let data, let userdata else { return n }
            let sink = Unmanaged<Sink>.fromOpaque(userdata).takeUnretainedValue()
            let chunk = Array(
                UnsafeBufferPointer(start: UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self), count: n))
            if let onChunk = sink.onChunk { onChunk(chunk) } else { sink.body.append(contentsOf: chunk) }
            return n
        }
        if let body {
            vf_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
            // COPYPOSTFIELDS: curl keeps its own copy, so the Swift array's lifetime does not matter.
            body.withUnsafeBufferPointer { buf in
                buf.withMemoryRebound(to: CChar.self) { chars in
                    _ = vf_curl_setopt_pointer(
                        handle, CURLOPT_COPYPOSTFIELDS,
                        UnsafeMutableRawPointer(mutating: chars.baseAddress ?? UnsafePointer<CChar>(bitPattern: 1)!))
                }
            }
        }
        let rc = curl_easy_perform(handle)
        guard rc == CURLE_OK else {
            let reason = String(cString: curl_easy_strerror(rc))
            let target = unixSocket ?? baseURL
            throw RuntimeError(
                .unavailable,
                "\(service) at \(target) \(rc == CURLE_OPERATION_TIMEDOUT ? "timed out" : "unreachable"): \(reason) (\(method) \(path))"
            )
        }
        var status = 0
        vf_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return Response(status: status, body: sink.body)
    }
}

/// One webhook POST over the same libcurl client: bounded connect and total time, no redirect
/// followed, the answer's body read and dropped (a receiver cannot make the API hold it).
public enum WebhookPost {
    /// The HTTP status, or why no answer came (credentials of the URL masked).
    public static func send(
        url: String, body: [UInt8], headers: [String], timeout: Double
    ) -> Result<Int, RuntimeError> {
        let client = CurlHTTP(dockerHost: url, connectTimeout: min(timeout, 3), service: "webhook")
        do throws(RuntimeError) {
            let r = try client.request("POST", "", body: body, headers: headers, timeout: timeout, onChunk: { _ in })
            return .success(r.status)
        } catch {
            return .failure(error)
        }
    }
}

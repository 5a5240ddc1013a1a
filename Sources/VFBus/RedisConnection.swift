import CHiredis
import Glibc

/// One hiredis context: the only code that touches hiredis. Not thread-safe; owned by a
/// `RedisClient` (behind its lock) or by a `RedisSubscriber`'s thread.
final class RedisConnection {
    let context: UnsafeMutablePointer<redisContext>

    /// Connects, then authenticates and selects the database the URL names.
    init(url: RedisURL, timeout: Double) throws(RedisError) {
        let tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        guard let c = redisConnectWithTimeout(url.host, Int32(url.port), tv) else {
            throw RedisError("cannot allocate a Redis context")
        }
        if c.pointee.err != 0 {
            let message = Self.errorText(c)
            redisFree(c)
            throw RedisError("cannot connect to Redis at \(url.host):\(url.port): \(message)")
        }
        context = c
        _ = redisSetTimeout(c, tv)
        if let password = url.password {
            var args = ["AUTH"]
            if let user = url.username { args.append(user) }
            args.append(password)
            if case .error(let e) = try command(args.map { Array($0.utf8) }) {
                throw RedisError("Redis AUTH failed: \(e)")
            }
        }
        if url.db != 0, case .error(let e) = try command([Array("SELECT".utf8), Array(String(url.db).utf8)]) {
            throw RedisError("Redis SELECT \(url.db) failed: \(e)")
        }
    }

    deinit { redisFree(context) }

    static func errorText(_ c: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: c.pointee.errstr) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    /// True when the last failure means the peer closed or reset the connection, i.e. the command
    /// never reached a live server and may be sent again on a fresh connection.
    var lostPeer: Bool {
        let err = context.pointee.err
        return err == REDIS_ERR_EOF || (err == REDIS_ERR_IO && (errno == ECONNRESET || errno == EPIPE))
    }

    /// Sends one command (binary-safe arguments) and waits for its reply. Throws on I/O errors,
    /// after which this connection is unusable.
    func command(_ args: [[UInt8]]) throws(RedisError) -> RedisReply {
        // One contiguous buffer for every argument: a single allocation, stable pointers.
        var flat: [UInt8] = []
        flat.reserveCapacity(args.reduce(0) { $0 + $1.count } + 1)
        var lengths: [Int] = []
        lengths.reserveCapacity(args.count)
        for a in args {
            flat.append(contentsOf: a)
            lengths.append(a.count)
        }
        flat.append(0)  // never an empty buffer, so baseAddress is never nil
        let raw: UnsafeMutableRawPointer? = flat.withUnsafeBufferPointer { buf in
            buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buf.count) { base in
                var pointers: [UnsafePointer<CChar>?] = []
                pointers.reserveCapacity(args.count)
                var offset = 0
                for n in lengths {
                    pointers.append(base + offset)
                    offset += n
                }
                return pointers.withUnsafeMutableBufferPointer { p in
                    lengths.withUnsafeBufferPointer { l in
                        redisCommandArgv(context, Int32(args.count), p.baseAddress, l.baseAddress)
                    }
                }
            }
        }
        guard let raw else { throw RedisError("Redis I/O error: \(Self.errorText(context))") }
        defer { freeReplyObject(raw) }
        return Self.convert(raw.assumingMemoryBound(to: redisReply.self))
    }

    static func convert(_ r: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let reply = r.pointee
        func bytes() -> [UInt8] {
            guard let s = reply.str, reply.len > 0 else { return [] }
            return s.withMemoryRebound(to: UInt8.self, capacity: reply.len) {
                Array(UnsafeBufferPointer(start: $0, count: reply.len))
            }
        }
        switch reply.type {
        case REDIS_REPLY_STRING: return .string(bytes())
        case REDIS_REPLY_STATUS: return .status(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(Int(reply.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            items.reserveCapacity(reply.elements)
            for i in 0..<reply.elements {
                if let e = reply.element[i] { items.append(convert(e)) } else { items.append(.null) }
            }
            return .array(items)
        default: return .null
        }
    }
}

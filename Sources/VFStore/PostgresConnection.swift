import CLibPQ
import Foundation

/// A database failure, split by what the caller can do about it.
public enum DatabaseError: Error, Sendable, CustomStringConvertible {
    /// No usable connection (server down, restarting, unreachable): answer 503, retry later.
    case unavailable(String)
    /// The server rejected the statement; `sqlState` is PostgreSQL's five-character code.
    case query(sqlState: String, message: String)

    public var description: String {
        switch self {
        case .unavailable(let m): return "database unavailable: \(m)"
        case .query(let s, let m): return "database error \(s): \(m)"
        }
    }
}

/// Rows of a result, every value in PostgreSQL's text format (nil for SQL NULL).
public struct QueryResult: Sendable {
    public let rows: [[String?]]
    /// Rows touched by INSERT/UPDATE/DELETE.
    public let affected: Int
}

/// One libpq connection. This file is the only place that touches libpq.
/// Not Sendable: a `PGconn` is used by one thread at a time, and each instance belongs to
/// exactly one `DatabasePool` thread for its whole life.
final class PostgresConnection {
    private var conn: OpaquePointer?
    private var prepared: Set<String> = []

    /// Opens a connection; `connectTimeout` bounds how long a down server can hold the thread.
    init(url: String, connectTimeout: Int) throws(DatabaseError) {
        let keys = ["dbname", "connect_timeout", "application_name"]
        let values = [url, String(connectTimeout), "vectorflow-api"]
        var ck = keys.map { strdup($0) }
        var cv = values.map { strdup($0) }
        ck.append(nil)
        cv.append(nil)
        defer { (ck + cv).forEach { free($0) } }
        let c = ck.map { UnsafePointer($0) }.withUnsafeBufferPointer { kp in
            cv.map { UnsafePointer($0) }.withUnsafeBufferPointer { vp in
                PQconnectdbParams(kp.baseAddress, vp.baseAddress, 1)  // 1: expand the URL in dbname
            }
        }
        guard let c else { throw .unavailable("out of memory") }
        if PQstatus(c) != CONNECTION_OK {
            let msg = Self.message(c)
            PQfinish(c)
            throw .unavailable(msg)
        }
        conn = c
    }

    deinit { if let conn { PQfinish(conn) } }

    var isBroken: Bool { conn == nil || PQstatus(conn) != CONNECTION_OK }

    private static func message(_ c: OpaquePointer?) -> String {
        guard let c, let m = PQerrorMessage(c) else { return "unknown error" }
        return String(cString: m).trimmingCharacters(in: .whitespacesAndNewlines)
            .split(separator: "\n").first.map(String.init) ?? "unknown error"
    }

    /// Runs a script without parameters (the schema): several statements are allowed here.
    func script(_ sql: String) throws(DatabaseError) {
        let res = PQexec(conn, sql)
        defer { PQclear(res) }
        try check(res)
    }

    /// Runs one parameterised statement, prepared once per connection under `name`.
    /// Parameters travel as text, separately from the SQL: nothing a client sends is ever SQL.
    func execute(name: String, sql: String, params: [String?]) throws(DatabaseError) -> QueryResult {
        if !prepared.contains(name) {
            let res = PQprepare(conn, name, sql, Int32(params.count), nil)
            defer { PQclear(res) }
            try check(res)
            prepared.insert(name)
        }
        var cparams: [UnsafeMutablePointer<CChar>?] = params.map { $0.map { strdup($0) } ?? nil }
        defer { cparams.forEach { free($0) } }
        let res = cparams.withUnsafeMutableBufferPointer { buf -> OpaquePointer? in
            buf.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(buf.count, 1)) { p in
                PQexecPrepared(conn, name, Int32(params.count), params.isEmpty ? nil : p, nil, nil, 0)
            }
        }
        defer { PQclear(res) }
        try check(res)
        let n = Int(PQntuples(res))
        let f = Int(PQnfields(res))
        var rows: [[String?]] = []
        rows.reserveCapacity(n)
        for r in 0..<n {
            var row: [String?] = []
            row.reserveCapacity(f)
            for c in 0..<f {
                if PQgetisnull(res, Int32(r), Int32(c)) != 0 {
                    row.append(nil)
                } else {
                    row.append(String(cString: PQgetvalue(res, Int32(r), Int32(c))))
                }
            }
            rows.append(row)
        }
        let affected = PQcmdTuples(res).map { Int(String(cString: $0)) ?? 0 } ?? 0
        return QueryResult(rows: rows, affected: affected)
    }

    private func check(_ res: OpaquePointer?) throws(DatabaseError) {
        let st = res.map { PQresultStatus($0) } ?? PGRES_FATAL_ERROR
        if st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK { return }
        if isBroken {
            throw .unavailable(Self.message(conn))
        }
        var code = "XX000"
        var msg = Self.message(conn)
        if let res {
            if let s = PQresultErrorField(res, Int32(UInt8(ascii: "C"))) { code = String(cString: s) }
            if let m = PQresultErrorField(res, Int32(UInt8(ascii: "M"))) { msg = String(cString: m) }
        }
        // Class 08 (connection exception) and 57P0x (server shutting down) mean "try elsewhere".
        if code.hasPrefix("08") || code.hasPrefix("57P") { throw .unavailable(msg) }
        throw .query(sqlState: code, message: msg)
    }
}

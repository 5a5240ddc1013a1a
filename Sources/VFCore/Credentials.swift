/// Camera credentials in stream URLs: what the API shows of them (never the secret) and how an
/// update that sends back what it was shown keeps the stored secret. The dashboard's `maskUrl`
/// (frontend-static/js/format.js) follows the same rule.
public enum Credentials {
    /// What stands in for a secret.
    public static let placeholder = "***"

    /// Query parameters whose values are secrets (compared case-insensitively).
    static let secretParameters: Set<String> = [
        "password", "passwd", "pwd", "pass", "token", "access_token", "auth", "key", "apikey", "api_key", "secret",
        "signature", "sig", "credentials",
    ]

    /// The URL with its password (or a lone user token) replaced, `rtsp://user:***@host/path`, and
    /// the values of secret-looking query parameters too. A URL without credentials comes back as is.
    public static func maskURL(_ url: String) -> String {
        let s = Array(url.utf8)
        guard let sep = schemeSeparator(s, from: 0) else { return url }
        return String(decoding: maskedURL(s, start: 0, separator: sep, end: s.count), as: UTF8.self)
    }

    /// Every URL inside free text masked (FFmpeg's and the engine's messages quote the URL they
    /// failed on): a URL runs from its scheme to the next space or quote.
    public static func maskText(_ text: String) -> String {
        let s = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        var changed = false
        while let sep = schemeSeparator(s, from: i) {
            var start = sep
            while start > i, isSchemeByte(s[start - 1]) { start -= 1 }
            guard start < sep else {
                out.append(contentsOf: s[i..<(sep + 3)])
                i = sep + 3
                continue
            }
            var end = sep + 3
            while end < s.count, !isURLEnd(s[end]) { end += 1 }
            out.append(contentsOf: s[i..<start])
            let masked = maskedURL(s, start: start, separator: sep, end: end)
            if !masked.elementsEqual(s[start..<end]) { changed = true }
            out.append(contentsOf: masked)
            i = end
        }
        guard changed else { return text }
        out.append(contentsOf: s[i...])
        return String(decoding: out, as: UTF8.self)
    }

    /// The URL to store for an update that sent `sent`: the stored one when `sent` is exactly what
    /// the API shows for it (the client sent the masked form back unchanged), else `sent` itself.
    public static func unmask(_ sent: String, stored: String) -> String {
        sent != stored && maskURL(stored) == sent ? stored : sent
    }

    // MARK: - internals

    /// The index of the next "://" at or after `from`.
    private static func schemeSeparator(_ s: [UInt8], from: Int) -> Int? {
        var k = from
        while k + 2 < s.count {
            if s[k] == UInt8(ascii: ":") && s[k + 1] == UInt8(ascii: "/") && s[k + 2] == UInt8(ascii: "/") { return k }
            k += 1
        }
        return nil
    }

    private static func isSchemeByte(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2B || c == 0x2D
            || c == 0x2E
    }

    private static func isURLEnd(_ c: UInt8) -> Bool {
        c <= 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") || c == UInt8(ascii: "<")
            || c == UInt8(ascii: ">") || c == UInt8(ascii: "`")
    }

    /// `s[start..<end]` is one URL whose "://" is at `separator`.
    private static func maskedURL(_ s: [UInt8], start: Int, separator: Int, end: Int) -> [UInt8] {
        var out = Array(s[start..<(separator + 3)])
        let authorityStart = separator + 3
        var authorityEnd = authorityStart
        while authorityEnd < end, ![UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "#")].contains(s[authorityEnd]) {
            authorityEnd += 1
        }
        var hostStart = authorityStart
        if let at = s[authorityStart..<authorityEnd].lastIndex(of: UInt8(ascii: "@")) {
            let userinfo = s[authorityStart..<at]
            if let colon = userinfo.firstIndex(of: UInt8(ascii: ":")) {
                out.append(contentsOf: s[authorityStart..<colon])
                out.append(UInt8(ascii: ":"))
            }
            out.append(contentsOf: placeholder.utf8)
            hostStart = at
        }
        out.append(contentsOf: s[hostStart..<authorityEnd])
        // Path as is; query parameters with secret names get the placeholder for a value.
        var k = authorityEnd
        while k < end, s[k] != UInt8(ascii: "?"), s[k] != UInt8(ascii: "#") { k += 1 }
        out.append(contentsOf: s[authorityEnd..<k])
        guard k < end, s[k] == UInt8(ascii: "?") else {
            out.append(contentsOf: s[k..<end])
            return out
        }
        out.append(UInt8(ascii: "?"))
        k += 1
        var queryEnd = k
        while queryEnd < end, s[queryEnd] != UInt8(ascii: "#") { queryEnd += 1 }
        var first = true
        for pair in s[k..<queryEnd].split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false) {
            if !first { out.append(UInt8(ascii: "&")) }
            first = false
            if let eq = pair.firstIndex(of: UInt8(ascii: "=")),
                secretParameters.contains(String(decoding: pair[pair.startIndex..<eq], as: UTF8.self).lowercased())
            {
                out.append(contentsOf: pair[pair.startIndex...eq])
                out.append(contentsOf: placeholder.utf8)
            } else {
                out.append(contentsOf: pair)
            }
        }
        out.append(contentsOf: s[queryEnd..<end])
        return out
    }
}

import Foundation
import VFText

/// The Engine API's request bodies and filters, built as Swift dictionaries and arrays, written
/// through the project's one JSON writer (keys sorted, so a body reads the same every time).
/// Values: String, Bool, integers, finite doubles, NSNull, and arrays and string-keyed
/// dictionaries of those; anything else is written as null.
enum EngineJSON {
    static func encode(_ value: Any) -> [UInt8] {
        var w = JSONWriter(capacity: 512)
        write(value, to: &w)
        return w.bytes
    }

    static func write(_ value: Any, to w: inout JSONWriter) {
        switch value {
        case let b as Bool: w.bool(b)
        case let s as String: w.string(s)
        case let i as Int: w.int(i)
        case let i as any BinaryInteger: w.raw(Array(String(describing: i).utf8))
        case let d as Double: d.isFinite ? w.raw(Array("\(d)".utf8)) : w.raw("null")
        case let items as [Any]:
            w.raw("[")
            for (k, item) in items.enumerated() {
                if k > 0 { w.raw(",") }
                write(item, to: &w)
            }
            w.raw("]")
        case let members as [String: Any]:
            w.raw("{")
            for (k, key) in members.keys.sorted().enumerated() {
                if k > 0 { w.raw(",") }
                w.string(key)
                w.raw(":")
                write(members[key] as Any, to: &w)
            }
            w.raw("}")
        default: w.raw("null")
        }
    }
}

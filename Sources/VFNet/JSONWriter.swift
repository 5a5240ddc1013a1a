import VFText

/// A small `Encodable` → JSON bytes encoder, so VFNet needs no Foundation; strings go through
/// the one escaper (VFText's JSONWriter). Keys keep their encoding order; nil optionals are left
/// out (`encodeIfPresent`); non-finite floating-point numbers are an error.
enum EncodableJSON {
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = NodeEncoder(codingPath: [])
        try value.encode(to: encoder)
        var out: [UInt8] = []
        out.reserveCapacity(128)
        (encoder.root ?? JSONNode(.scalar("null"))).write(into: &out)
        return out
    }

    /// `{"detail":"..."}`
    static func detail(_ message: String) -> [UInt8] {
        var out: [UInt8] = Array(#"{"detail":"#.utf8)
        appendString(message, into: &out)
        out.append(0x7D)
        return out
    }

    static func appendString(_ s: String, into out: inout [UInt8]) { JSONWriter.appendString(s, to: &out) }
}

/// A JSON value under construction; a class so nested containers can fill it after it is linked in.
final class JSONNode {
    enum Kind {
        case scalar(String)  // already-serialized number, bool, null
        case string(String)
        case array([JSONNode])
        case object([(String, JSONNode)])
    }
    var kind: Kind
    init(_ kind: Kind) { self.kind = kind }

    func write(into out: inout [UInt8]) {
        switch kind {
        case .scalar(let s): out.append(contentsOf: s.utf8)
        case .string(let s): EncodableJSON.appendString(s, into: &out)
        case .array(let items):
            out.append(0x5B)
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(0x2C) }
                item.write(into: &out)
            }
            out.append(0x5D)
        case .object(let pairs):
            out.append(0x7B)
            for (i, pair) in pairs.enumerated() {
                if i > 0 { out.append(0x2C) }
                EncodableJSON.appendString(pair.0, into: &out)
                out.append(0x3A)
                pair.1.write(into: &out)
            }
            out.append(0x7D)
        }
    }

    func append(_ node: JSONNode) {
        if case .array(var items) = kind {
            kind = .scalar("")  // release the array's storage so the append does not copy it
            items.append(node)
            kind = .array(items)
        }
    }

    func set(_ key: String, _ node: JSONNode) {
        if case .object(var pairs) = kind {
            kind = .scalar("")
            if let i = pairs.firstIndex(where: { $0.0 == key }) { pairs[i].1 = node } else { pairs.append((key, node)) }
            kind = .object(pairs)
        }
    }
}

private final class NodeEncoder: Encoder {
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    var root: JSONNode?

    init(codingPath: [any CodingKey], root: JSONNode? = nil) {
        self.codingPath = codingPath
        self.root = root
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let node = rootNode(.object([]))
        return KeyedEncodingContainer(KeyedContainer<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        UnkeyedContainer(node: rootNode(.array([])), codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleContainer(encoder: self)
    }

    private func rootNode(_ empty: JSONNode.Kind) -> JSONNode {
        if let root {
            switch (root.kind, empty) {
            case (.object, .object), (.array, .array): return root
            default:
                root.kind = empty
                return root
            }
        }
        let node = JSONNode(empty)
        root = node
        return node
    }

    static func box<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws -> JSONNode {
        switch value {
        case let v as String: return JSONNode(.string(v))
        case let v as Bool: return JSONNode(.scalar(v ? "true" : "false"))
        case let v as Int: return JSONNode(.scalar(String(v)))
        case let v as Double: return try number(v, codingPath)
        case let v as Float: return try number(Double(v), codingPath)
        case let v as any BinaryInteger: return JSONNode(.scalar("\(v)"))
        default:
            let child = NodeEncoder(codingPath: codingPath)
            try value.encode(to: child)
            return child.root ?? JSONNode(.object([]))
        }
    }

    static func number(_ v: Double, _ codingPath: [any CodingKey]) throws -> JSONNode {
        guard v.isFinite else {
            throw EncodingError.invalidValue(v, .init(codingPath: codingPath, debugDescription: "non-finite number"))
        }
        if v == v.rounded(), abs(v) < 1e15 { return JSONNode(.scalar(String(Int64(v)))) }
        return JSONNode(.scalar("\(v)"))
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: JSONNode
    var codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { node.set(key.stringValue, JSONNode(.scalar("null"))) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        node.set(key.stringValue, try NodeEncoder.box(value, codingPath: codingPath + [key]))
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
        -> KeyedEncodingContainer<NestedKey>
    {
        let child = JSONNode(.object([]))
        node.set(key.stringValue, child)
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(node: child, codingPath: codingPath + [key]))
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = JSONNode(.array([]))
        node.set(key.stringValue, child)
        return UnkeyedContainer(node: child, codingPath: codingPath + [key])
    }
    mutating func superEncoder() -> any Encoder { superEncoder(forKey: Key(stringValue: "super")!) }
    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let child = JSONNode(.object([]))
        node.set(key.stringValue, child)
        return NodeEncoder(codingPath: codingPath + [key], root: child)
    }
}

private struct IndexKey: CodingKey {
    var stringValue: String { String(intValue!) }
    var intValue: Int?
    init(_ i: Int) { intValue = i }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.intValue = intValue }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let node: JSONNode
    var codingPath: [any CodingKey]
    var count: Int = 0

    init(node: JSONNode, codingPath: [any CodingKey]) {
        self.node = node
        self.codingPath = codingPath
    }

    mutating func encodeNil() throws {
        node.append(JSONNode(.scalar("null")))
        count += 1
    }
    mutating func encode<T: Encodable>(_ value: T) throws {
        node.append(try NodeEncoder.box(value, codingPath: codingPath + [IndexKey(count)]))
        count += 1
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<
        NestedKey
    > {
        let child = JSONNode(.object([]))
        node.append(child)
        count += 1
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(node: child, codingPath: codingPath))
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let child = JSONNode(.array([]))
        node.append(child)
        count += 1
        return UnkeyedContainer(node: child, codingPath: codingPath)
    }
    mutating func superEncoder() -> any Encoder {
        let child = JSONNode(.object([]))
        node.append(child)
        count += 1
        return NodeEncoder(codingPath: codingPath, root: child)
    }
}

private struct SingleContainer: SingleValueEncodingContainer {
    let encoder: NodeEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    mutating func encodeNil() throws { encoder.root = JSONNode(.scalar("null")) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        encoder.root = try NodeEncoder.box(value, codingPath: codingPath)
    }
}

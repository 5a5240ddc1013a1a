/// HTTP header fields in the order they were received or added. Lookup by name is
/// ASCII case-insensitive (field names are case-insensitive, RFC 9110 §5.1); names and
/// values are stored as given.
public struct HTTPHeaders: Sendable, Sequence, CustomStringConvertible {
    public typealias Element = (name: String, value: String)

    @usableFromInline var fields: [Element]

    public init(_ pairs: [(String, String)] = []) {
        fields = pairs.map { (name: $0.0, value: $0.1) }
    }

    /// For the parser, which builds the array itself with its capacity reserved.
    @inlinable init(fields: [Element]) { self.fields = fields }

    public var count: Int { fields.count }
    public var isEmpty: Bool { fields.isEmpty }

    /// The first value of `name`, or nil.
    public subscript(_ name: String) -> String? {
        for f in fields where HTTPHeaders.namesEqual(f.name, name) { return f.value }
        return nil
    }

    /// Every value of `name`, in order.
    public func values(_ name: String) -> [String] {
        var out: [String] = []
        for f in fields where HTTPHeaders.namesEqual(f.name, name) { out.append(f.value) }
        return out
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    public mutating func add(_ name: String, _ value: String) {
        fields.append((name: name, value: value))
    }

    /// Replaces every field called `name` with one field (placed where the first one was).
    public mutating func set(_ name: String, _ value: String) {
        if let i = fields.firstIndex(where: { HTTPHeaders.namesEqual($0.name, name) }) {
            fields[i].value = value
            var j = i + 1
            while j < fields.count {
                if HTTPHeaders.namesEqual(fields[j].name, name) { fields.remove(at: j) } else { j += 1 }
            }
        } else {
            fields.append((name: name, value: value))
        }
    }

    public mutating func remove(_ name: String) {
        fields.removeAll { HTTPHeaders.namesEqual($0.name, name) }
    }

    public func makeIterator() -> IndexingIterator<[Element]> { fields.makeIterator() }

    public var description: String {
        fields.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
    }

    /// ASCII case-insensitive equality; non-ASCII bytes must match exactly.
    @inlinable
    public static func namesEqual(_ a: String, _ b: String) -> Bool {
        let au = a.utf8
        let bu = b.utf8
        guard au.count == bu.count else { return false }
        var bi = bu.makeIterator()
        for x in au {
            guard let y = bi.next() else { return false }
            if x != y && asciiLower(x) != asciiLower(y) { return false }
        }
        return true
    }

    @inlinable @inline(__always)
    static func asciiLower(_ b: UInt8) -> UInt8 {
        (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b
    }
}

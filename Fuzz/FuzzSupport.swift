// Helpers every libFuzzer target in Fuzz/ compiles with (scripts/fuzz.sh adds this file).

@inline(never) func check(_ cond: Bool, _ what: String) {
    if !cond { fatalError("invariant violated: \(what)") }
}

/// Runs `body` over an exact-size heap copy of `bytes[range]`, so ASan reports any read past the end.
func withExactCopy<R>(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ body: (UnsafeRawBufferPointer) -> R) -> R
{
    let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: range.count, alignment: 1)
    defer { buf.deallocate() }
    if range.count > 0 { buf.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[range])) }
    return body(UnsafeRawBufferPointer(buf))
}

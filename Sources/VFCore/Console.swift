import Foundation

/// Best-effort writes to standard output and standard error: a `write(2)` loop, EINTR retried,
/// any other error dropping the rest. Foundation's `FileHandle.write(_:)` traps instead when a
/// pipe's reader is gone (EPIPE, SIGPIPE being ignored): an API piped through `tee` crashed the
/// moment Ctrl-C ended the tee (`make run | tee run.log`). A line nobody can read is lost; the
/// program goes on. One call is one `write(2)` for a line under PIPE_BUF, so lines written from
/// several threads never interleave.
public enum Console {
    public static func out(_ text: String) { write(1, Array(text.utf8)) }
    public static func error(_ text: String) { write(2, Array(text.utf8)) }

    public static func write(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { p in
            var off = 0
            while off < p.count {
                let n = Foundation.write(fd, p.baseAddress.map { $0 + off }, p.count - off)
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    return
                }
                off += n
            }
        }
    }
}

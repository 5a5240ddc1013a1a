import Logging
import Synchronization
import XCTest

@testable import VFCore

final class LogHandlerTests: XCTestCase {
    func testTimestampIsISO8601UTCWithMilliseconds() {
        XCTAssertEqual(LineLogHandler.timestamp(seconds: 0, milliseconds: 7), "1970-01-01T00:00:00.007Z")
        XCTAssertEqual(LineLogHandler.timestamp(seconds: 1_767_323_045, milliseconds: 678), "2026-01-02T03:04:05.678Z")
        let now = LineLogHandler.timestamp()
        XCTAssertNotNil(now.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression), now)
    }

    func testTextLine() {
        let line = LineLogHandler.line(
            time: "T", level: .warning, label: "vectorflow-worker", message: "lost\nrtsp://u:secret@cam/x",
            metadata: ["stream_id": "abc", "reason": "two words"], format: .text)
        XCTAssertEqual(
            String(decoding: line, as: UTF8.self),
            "T warning vectorflow-worker: lost rtsp://u:***@cam/x reason=\"two words\" stream_id=abc\n")
    }

    func testJSONLineParsesAndMasks() throws {
        let line = LineLogHandler.line(
            time: "T", level: .info, label: "l", message: "say \"hi\" to rtsp://u:secret@cam/x",
            metadata: ["stream_id": "abc", "level": "shadow", "source": "rtsp://u:secret@cam/y"], format: .json)
        XCTAssertEqual(line.last, 0x0A)
        guard case .object(let pairs) = try JSONParser.parse(Array(line.dropLast())) else {
            return XCTFail("not an object")
        }
        let o = Dictionary(pairs, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(o["ts"], .string("T"))
        XCTAssertEqual(o["level"], .string("info"))
        XCTAssertEqual(o["message"], .string("say \"hi\" to rtsp://u:***@cam/x"))
        XCTAssertEqual(o["stream_id"], .string("abc"))
        XCTAssertEqual(o["meta_level"], .string("shadow"))
        XCTAssertEqual(o["source"], .string("rtsp://u:***@cam/y"))
    }

    func testHandlerWritesOneLinePerEventAtItsLevel() {
        let lines = Mutex<[String]>([])
        var handler = LineLogHandler(label: "t", level: .notice, format: .text) { bytes in
            lines.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) }
        }
        handler[metadataKey: "stream_id"] = "s1"
        let logger = Logger(label: "t") { _ in handler }
        logger.info("dropped: below notice")
        logger.error("kept", metadata: ["attempt": "2"])
        let got = lines.withLock { $0 }
        XCTAssertEqual(got.count, 1)
        XCTAssertTrue(got.first?.hasSuffix(" error t: kept attempt=2 stream_id=s1\n") ?? false, "\(got)")
    }
}

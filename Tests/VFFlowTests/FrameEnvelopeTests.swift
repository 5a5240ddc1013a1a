import VFText
import Foundation
import XCTest

@testable import VFFlow

final class FrameEnvelopeTests: XCTestCase {
    private func header(vectors: [Float] = [8, 8, 1.234, -2.005], jpeg: Bool = true) -> FrameHeader {
        FrameHeader(
            streamID: "cam-1", streamName: "Gate \"A\"\n", seq: 123, capturedAt: 1764331234.1234, width: 768,
            height: 576, fps: 9.984, stats: FlowStats(
                vectorCount: 1, magnitudeAvg: 2.3456, magnitudeMax: 7.1, rejected: 5,
                directions: SIMD8(1, 0, 0, 0, 0, 0, 0, 0), meanDX: 1.2345, meanDY: -2.005),
            vectors: vectors, jpeg: jpeg, previewWidth: 640, previewHeight: 480)
    }

    func testLayoutIsBigEndianLengthThenJSONThenJPEG() throws {
        let jpeg: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 0xFF, 0xD9]
        let message = FrameEnvelope.encode(header(), jpeg: jpeg)
        let n = Int(message[0]) << 24 | Int(message[1]) << 16 | Int(message[2]) << 8 | Int(message[3])
        XCTAssertEqual(message.count, 4 + n + jpeg.count)
        XCTAssertEqual(Array(message[(4 + n)...]), jpeg)
        let parts = try XCTUnwrap(FrameEnvelope.split(message))
        XCTAssertEqual(parts.header.count, n)
        XCTAssertEqual(Array(parts.jpeg), jpeg)
    }

    func testHeaderJSONFieldsAndRounding() throws {
        let message = FrameEnvelope.encode(header(), jpeg: [])
        let parts = try XCTUnwrap(FrameEnvelope.split(message))
        XCTAssertTrue(parts.jpeg.isEmpty)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(parts.header)) as? [String: Any])
        XCTAssertEqual(json["stream_id"] as? String, "cam-1")
        XCTAssertEqual(json["stream_name"] as? String, "Gate \"A\"\n")
        XCTAssertEqual(json["seq"] as? Int, 123)
        XCTAssertEqual(try XCTUnwrap(json["captured_at"] as? Double), 1764331234.123, accuracy: 1e-6)
        XCTAssertEqual(json["width"] as? Int, 768)
        XCTAssertEqual(json["height"] as? Int, 576)
        XCTAssertEqual(try XCTUnwrap(json["fps"] as? Double), 9.98, accuracy: 1e-9)
        let stats = try XCTUnwrap(json["stats"] as? [String: Any])
        XCTAssertEqual(stats["vector_count"] as? Int, 1)
        XCTAssertEqual(try XCTUnwrap(stats["magnitude_avg"] as? Double), 2.346, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(stats["magnitude_max"] as? Double), 7.1, accuracy: 1e-9)
        XCTAssertEqual(stats["rejected"] as? Int, 5)
        let directions = try XCTUnwrap(stats["directions"] as? [String: Int])
        XCTAssertEqual(directions, ["e": 1, "ne": 0, "n": 0, "nw": 0, "w": 0, "sw": 0, "s": 0, "se": 0])
        let mean = try XCTUnwrap(stats["mean_vector"] as? [Double])
        XCTAssertEqual(mean.count, 2)
        XCTAssertEqual(mean[0], 1.235, accuracy: 0.0011)
        XCTAssertEqual(mean[1], -2.005, accuracy: 0.0011)
        let vectors = try XCTUnwrap(json["vectors"] as? [[Double]])
        XCTAssertEqual(vectors.count, 1)
        XCTAssertEqual(vectors[0][0], 8)
        XCTAssertEqual(vectors[0][2], 1.23, accuracy: 1e-9)
        XCTAssertEqual(vectors[0][3], -2.0, accuracy: 0.011)  // Float(-2.005) rounds either way
        XCTAssertEqual(json["jpeg"] as? Bool, true)
        XCTAssertEqual(json["preview_width"] as? Int, 640)
        XCTAssertEqual(json["preview_height"] as? Int, 480)
        // The dashboard relies on this exact key order only loosely, but the text must be compact.
        let text = String(decoding: parts.header, as: UTF8.self)
        XCTAssertTrue(
            text.hasPrefix("{\"stream_id\":\"cam-1\",\"stream_name\":\"Gate \\\"A\\\"\\n\",\"seq\":123,"), text)
    }

    func testVectorsAreCappedAtTwoThousandByEvenStride() throws {
        var v: [Float] = []
        for i in 0..<5000 { v += [Float(i), 0, 2, 0] }
        let parts = try XCTUnwrap(FrameEnvelope.split(FrameEnvelope.encode(header(vectors: v, jpeg: false), jpeg: [])))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(parts.header)) as? [String: Any])
        let vectors = try XCTUnwrap(json["vectors"] as? [[Double]])
        XCTAssertEqual(vectors.count, FrameEnvelope.maxVectors)
        XCTAssertEqual(vectors.first?[0], 0)
        XCTAssertEqual(vectors.last?[0], Double(1999 * 5000 / 2000))
        XCTAssertEqual(json["jpeg"] as? Bool, false)
    }

    func testSplitRejectsTruncatedMessages() {
        XCTAssertNil(FrameEnvelope.split([0, 0]))
        XCTAssertNil(FrameEnvelope.split([0, 0, 0, 9, 0x7B]))
        XCTAssertNotNil(FrameEnvelope.split([0, 0, 0, 0]))
    }

    func testNumberFormatting() {
        func fmt(_ v: Double, _ d: Int) -> String {
            var w = JSONWriter()
            w.number(v, decimals: d)
            return String(decoding: w.bytes, as: UTF8.self)
        }
        XCTAssertEqual(fmt(0, 2), "0")
        XCTAssertEqual(fmt(1.5, 2), "1.5")
        XCTAssertEqual(fmt(1.05, 2), "1.05")
        XCTAssertEqual(fmt(-0.5, 2), "-0.5")
        XCTAssertEqual(fmt(-0.001, 2), "0")
        XCTAssertEqual(fmt(2.999, 2), "3")
        XCTAssertEqual(fmt(-12.3456, 3), "-12.346")
        XCTAssertEqual(fmt(.nan, 2), "0")
        XCTAssertEqual(fmt(.infinity, 2), "0")
        XCTAssertEqual(fmt(1764331234.1234, 3), "1764331234.123")
    }

    func testStringEscaping() {
        var w = JSONWriter()
        w.string("a\u{01}\tb\\é")
        XCTAssertEqual(String(decoding: w.bytes, as: UTF8.self), "\"a\\u0001\\tb\\\\é\"")
    }
}

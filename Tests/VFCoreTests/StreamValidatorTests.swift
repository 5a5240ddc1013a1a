import Foundation
import XCTest

@testable import VFCore

final class StreamValidatorTests: XCTestCase {
    let v = StreamValidator(mediaDirectory: nil)

    private func check(
        _ body: String, _ mode: StreamValidator.Mode = .create, contentType: String? = "application/json"
    )
        -> Result<StreamFields, APIError>
    {
        v.validate(Array(body.utf8), contentType: contentType, mode: mode)
    }

    private func types(_ r: Result<StreamFields, APIError>) -> [String] {
        if case .failure(let e) = r { return e.issues.map(\.type) }
        return []
    }

    func testDefaults() throws {
        let f = try check(#"{"name":"a","rtsp_url":"rtsp://cam/x"}"#).get()
        XCTAssertEqual(
            f, StreamFields(name: "a", source: "rtsp://cam/x", gridSize: 16, threshold: 1.2, isActive: false))
    }

    func testEveryProblemReported() {
        let r = check(#"{"name":"","rtsp_url":"ftp://x","grid_size":3,"threshold":-1,"is_active":"yes","extra":1}"#)
        XCTAssertEqual(
            types(r),
            [
                "string_too_short", "value_error", "greater_than_equal", "greater_than_equal", "bool_type",
                "extra_forbidden",
            ])
        guard case .failure(let e) = r else { return XCTFail() }
        XCTAssertEqual(e.status, 422)
        XCTAssertEqual(e.issues.last?.loc, [.key("body"), .key("extra")])
    }

    func testReportedProblemsAreBounded() {
        let unknown = (0..<5000).map { "\"x\($0)\":1" }.joined(separator: ",")
        let r = check("{\"name\":\"\",\(unknown)}")
        guard case .failure(let e) = r else { return XCTFail("accepted") }
        XCTAssertEqual(e.issues.count, StreamValidator.maxReportedIssues)
        XCTAssertEqual(e.issues.first?.type, "string_too_short", "the named fields' problems come first")
        XCTAssertLessThan(e.body.count, 4096)
    }

    func testTypesAndNulls() {
        XCTAssertEqual(types(check(#"{"name":null,"rtsp_url":5}"#)), ["string_type", "string_type"])
        XCTAssertEqual(types(check(#"{"name":"a","rtsp_url":"http://h","grid_size":16.5}"#)), ["int_from_float"])
        XCTAssertEqual(types(check(#"{"name":"a","rtsp_url":"http://h","grid_size":true}"#)), ["int_type"])
        XCTAssertEqual(types(check(#"{"name":"a","rtsp_url":"http://h","grid_size":"16"}"#)), ["int_type"])
        XCTAssertEqual(types(check(#"{"name":"a","rtsp_url":"http://h","threshold":"1"}"#)), ["float_type"])
        XCTAssertEqual(types(check(#"{"name":"a","rtsp_url":"http://h","threshold":1e999}"#)), ["finite_number"])
        XCTAssertEqual(types(check(#"{"name":"a","rtsp_url":"http://h","is_active":null}"#)), ["bool_type"])
        XCTAssertEqual(types(check(#"{}"#)), ["missing", "missing"])
        XCTAssertEqual(types(check(#"[1]"#)), ["model_attributes_type"])
        XCTAssertEqual(types(check(#"{"name":"#)), ["json_invalid"])
        XCTAssertEqual(types(check("")), ["missing"])
        XCTAssertEqual(types(check(#"{"name":"a\u0000b","rtsp_url":"http://h"}"#)), ["string_pattern_mismatch"])
    }

    func testIntegralFloatAcceptedAsInteger() throws {
        XCTAssertEqual(try check(#"{"name":"a","rtsp_url":"http://h","grid_size":32.0}"#).get().gridSize, 32)
    }

    func testLengthsCountCodePoints() throws {
        let name = String(repeating: "é", count: 200)
        XCTAssertNoThrow(try check(#"{"name":"\#(name)","rtsp_url":"http://h"}"#).get())
        XCTAssertEqual(types(check(#"{"name":"\#(name)x","rtsp_url":"http://h"}"#)), ["string_too_long"])
        let url = "http://h/" + String(repeating: "a", count: 2048 - 9)
        XCTAssertNoThrow(try check(#"{"name":"a","rtsp_url":"\#(url)"}"#).get())
        XCTAssertEqual(types(check(#"{"name":"a","rtsp_url":"\#(url)a"}"#)), ["string_too_long"])
    }

    func testUpdateIsPartial() throws {
        XCTAssertEqual(try check(#"{"threshold":3}"#, .update).get(), StreamFields(threshold: 3))
        XCTAssertTrue(try check(#"{}"#, .update).get().isEmpty)
        XCTAssertEqual(types(check(#"{"name":null}"#, .update)), ["string_type"])
    }

    func testContentType() {
        XCTAssertEqual(check(#"{}"#, contentType: "text/plain").failureStatus, 415)
        XCTAssertEqual(check(#"{}"#, .update, contentType: "application/json; charset=utf-8").failureStatus, nil)
        XCTAssertEqual(check(#"{}"#, .update, contentType: nil).failureStatus, nil)
    }

    func testURLs() {
        let good = [
            "rtsp://cam", "rtsps://user:pw@cam.local:8554/live?x=1#f", "http://[::1]:8080/a", "https://h/ä",
            "rtsp://[fe80::1]:554/x", "http://[1:2:3:4:5:6:7:8]",
            "rtsp://192.168.1.2:554/s", "http://h:1", "https://h?q", "http://h#",
        ]
        let bad = [
            "http://[C15d0]", "http://[1::2::3]", "http://u[@h", "http://[1:2:3:4::5:6:7:8]", "",
            "rtsp://", "rtsp:///path", "ftp://h", "RTSP://h", "http://h x", "http://h:", "http://h:123456",
            "http://a@b@c", "http://[zz]", "http://h\n", "file:///tmp/v.mp4", "http://:80", "http:/h", "h",
            "http://[::1", "http://h]",
        ]
        for u in good { XCTAssertTrue(StreamRules.isValidURL(u, mediaDirectory: nil), u) }
        for u in bad { XCTAssertFalse(StreamRules.isValidURL(u, mediaDirectory: nil), u.debugDescription) }
        XCTAssertTrue(StreamRules.isValidURL("file:///tmp/my video.mp4", mediaDirectory: "/tmp"))
        XCTAssertFalse(StreamRules.isValidURL("file://", mediaDirectory: "/tmp"))
    }

    /// `file://` sources: a video file inside the media folder, nothing else.
    func testFileSourcesStayInTheMediaFolder() {
        let media = "/srv/media"
        for ok in [
            "file:///srv/media/a.mp4", "file:///srv/media/cams/Gate.AVI", "file:///srv/media/..x/a.mkv",
            "file:///srv/media/.hidden/b.webm", "file:///srv/media/a b/c.mov",
        ] {
            XCTAssertTrue(StreamRules.isValidURL(ok, mediaDirectory: media), ok)
        }
        for bad in [
            "file:///etc/passwd", "file:///srv/media/notes.txt", "file:///srv/media/../secret/a.mp4",
            "file:///srv/media/./a.mp4", "file:///srv/media//a.mp4", "file:///srv/mediax/a.mp4", "file://http://h/a.mp4",
            "file:///srv/media/a.mp4/", "file:///srv/media/mp4", "file://srv/media/a.mp4", "file:///srv/media/a.mp4\u{1}",
        ] {
            XCTAssertFalse(StreamRules.isValidURL(bad, mediaDirectory: media), bad.debugDescription)
        }
        XCTAssertTrue(StreamRules.isValidURL("file:///anywhere/x.ts", mediaDirectory: "/"))
        XCTAssertFalse(StreamRules.isValidURL("file:///srv/media/a.mp4", mediaDirectory: nil))
        XCTAssertTrue(StreamRules.isValidMediaDirectory("/srv/media"))
        XCTAssertFalse(StreamRules.isValidMediaDirectory("srv/media"))
        XCTAssertFalse(StreamRules.isValidMediaDirectory("/srv/../etc"))
    }

    /// The Swift matcher and the published regular expression must agree: check a corpus
    /// against NSRegularExpression (ICU, close to ECMA-262 for this pattern).
    func testMatcherAgreesWithPattern() throws {
        for media in [nil, "/tmp", "/", "/srv/my media+(1)"] as [String?] {
            let re = try NSRegularExpression(pattern: StreamRules.urlPattern(mediaDirectory: media))
            let corpus = [
                "rtsp://cam", "rtsps://u@h:1/p", "http://[::1]", "http://[::1]x", "http://a@b@c", "http://h:",
                "http://h:99999", "http://h:999999", "https://h/ a", "file:///x y", "file://", "rtsp://h\u{7f}",
                "http://h/\u{85}", "http://é.com/ü", "http://h?@", "http://u@/p", "http://[]", "http://h]/",
                "rtsp://a:b@c:d", "rtsp://a:b@c:12", "http://[C15d0]", "http://[1:2:3:4:5:6:7:8]",
                "http://[1:2:3:4:5:6:7:8:9]", "http://[1:2:3:4:5:6:7::]", "http://[::1:2:3:4:5:6:7]",
                "http://[1::2::3]", "http://[::]", "http://[:::]", "http://[12345::]", "http://[fe80::1%eth0]",
                "http://u[@h", "http://a]b@h", "http://[1:2:3:4:5:6:7]", "http://[1:2:3:4::5:6:7]",
                "file:///tmp/a.mp4", "file:///tmp/../a.mp4", "file:///tmp/./a.avi", "file:///tmp/..a/b.MKV",
                "file:///tmp/.a/b.ts", "file:///tmp//a.mp4", "file:///tmp/a.txt", "file:///a.mp4", "file:///tmpx/a.mp4",
                "file:///srv/my media+(1)/v.mp4", "file:///srv/my media+(1)/../v.mp4", "file:///tmp/a.mp4.",
                "file:///tmp/a.Mp4", "file:///tmp/a.264", "file:///tmp/.mp4", "file:///tmp/...mp4", "file:///tmp/a\u{7f}.mp4",
            ]
            for s in corpus {
                let regex = re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
                XCTAssertEqual(
                    regex, StreamRules.isValidURL(s, mediaDirectory: media),
                    "\(s.debugDescription) media=\(media ?? "none")")
            }
        }
    }

    func testUUIDs() {
        XCTAssertEqual(
            UUIDText.canonical("6F9619FF-8B86-D011-B42D-00CF4FC964FF"), "6f9619ff-8b86-d011-b42d-00cf4fc964ff")
        XCTAssertEqual(UUIDText.canonical("6f9619ff8b86d011b42d00cf4fc964ff"), "6f9619ff-8b86-d011-b42d-00cf4fc964ff")
        for bad in [
            "", "1", "6f9619ff-8b86-d011-b42d-00cf4fc964fg", "6f9619ff-8b86-d011-b42d_00cf4fc964ff", "' OR 1=1 --",
        ] {
            XCTAssertNil(UUIDText.canonical(bad), bad)
        }
    }

    func testErrorBodyShape() throws {
        let body = APIError(issues: [
            ValidationIssue(type: "missing", loc: [.key("body"), .index(3)], msg: "Field required")
        ]).body
        XCTAssertEqual(
            String(decoding: body, as: UTF8.self),
            #"{"detail":[{"type":"missing","loc":["body",3],"msg":"Field required"}]}"#)
        XCTAssertEqual(String(decoding: APIError.streamNotFound.body, as: UTF8.self), #"{"detail":"Stream not found"}"#)
    }
}

extension Result where Failure == APIError {
    var failureStatus: Int? {
        if case .failure(let e) = self { return e.status }
        return nil
    }
}

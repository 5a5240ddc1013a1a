import XCTest

@testable import VFCore

final class SourcePolicyTests: XCTestCase {
    private func addr(_ s: String) throws -> [UInt8] {
        try XCTUnwrap(SourcePolicy.parseAddress(s), s)
    }

    private func policy(allow: String = "", deny: String = SourcePolicy.defaultDeny, services: [String] = []) throws
        -> SourcePolicy
    {
        var env = ["VF_SOURCE_DENY": deny]
        if !allow.isEmpty { env["VF_SOURCE_ALLOW"] = allow }
        return try SourcePolicy(ConfigurationSource(arguments: [], environment: env, settings: SourcePolicy.declarations), services: services)
    }

    func testRulesParseAndPrintBack() throws {
        for text in ["10.0.0.0/8", "10.1.2.3", "127.0.0.1:6379", "10.0.0.0/8:554", "[::1]:6379", "fe80::/10", "redis:6379"] {
            let r = try XCTUnwrap(SourcePolicy.Rule(text), text)
            XCTAssertEqual(r.description, text)
        }
        // Host bits are dropped; a v4-mapped network is the IPv4 network.
        XCTAssertEqual(SourcePolicy.Rule("10.1.2.3/8")?.description, "10.0.0.0/8")
        XCTAssertEqual(SourcePolicy.Rule("::ffff:10.0.0.0/104")?.description, "10.0.0.0/8")
        for bad in ["", "10.0.0.0/33", "300.1.1.1", "redis", "host/8:1", "10.0.0.1:0", "10.0.0.1:70000", "[::1", "a b:1"] {
            XCTAssertNil(SourcePolicy.Rule(bad), bad)
        }
        XCTAssertThrowsError(try policy(deny: "10.0.0.0/8,nonsense")) { error in
            XCTAssertTrue("\(error)".contains("VF_SOURCE_DENY"), "\(error)")
            XCTAssertTrue("\(error)".contains("nonsense"), "\(error)")
        }
    }

    func testDefaultDeniesMetadataAndAllowsTheRest() throws {
        let p = try policy()
        for denied in ["169.254.169.254", "fe80::1", "fd00:ec2::254", "0.0.0.0", "::", "::ffff:169.254.169.254"] {
            XCTAssertNotNil(p.refusal(address: try addr(denied), port: 80), denied)
        }
        for allowed in ["127.0.0.1", "10.0.0.7", "192.168.1.20", "::1", "2001:db8::1", "198.18.0.5"] {
            XCTAssertNil(p.refusal(address: try addr(allowed), port: 554), allowed)
        }
    }

    func testServicesAreDeniedByPortAndWinOverAllow() throws {
        let p = try policy(allow: "127.0.0.0/8", services: ["127.0.0.1:6379", "[::1]:5432", "db:5432"])
        XCTAssertNotNil(p.refusal(address: try addr("127.0.0.1"), port: 6379))
        XCTAssertNil(p.refusal(address: try addr("127.0.0.1"), port: 8554))
        // Outside the allow list.
        let outside = p.refusal(address: try addr("10.0.0.1"), port: 8554)
        XCTAssertEqual(outside, "address 10.0.0.1 port 8554 is not in VF_SOURCE_ALLOW")
        // A name rule is resolved at each check.
        let resolver: (String) -> [[UInt8]] = { name in
            name == "db" ? [[127, 0, 0, 9]] : SourcePolicy.resolve(name)
        }
        XCTAssertNotNil(p.refusal(address: [127, 0, 0, 9], port: 5432, resolve: resolver))
        XCTAssertNil(p.refusal(address: [127, 0, 0, 9], port: 5433, resolve: resolver))
        // The environment handed to workers reads back as the same policy.
        let again = try SourcePolicy(ConfigurationSource(arguments: [], environment: p.environment, settings: SourcePolicy.declarations))
        XCTAssertEqual(again, p)
    }

    func testCheckRefusesANameWithAnyDeniedAddress() throws {
        let p = try policy()
        let resolver: (String) -> [[UInt8]] = { name in
            name == "mixed.test" ? [[10, 0, 0, 1], [169, 254, 169, 254]] : name == "ok.test" ? [[10, 0, 0, 1]] : []
        }
        guard case .failure(let e) = p.check(host: "mixed.test", port: 80, resolve: resolver) else {
            return XCTFail("a name with a metadata address was allowed")
        }
        XCTAssertTrue(e.description.contains("169.254.169.254"), e.description)
        guard case .success(let a) = p.check(host: "ok.test", port: 80, resolve: resolver) else {
            return XCTFail("an allowed name was refused")
        }
        XCTAssertEqual(a, [[10, 0, 0, 1]])
        guard case .failure(let none) = p.check(host: "nowhere.test", port: 80, resolve: resolver) else {
            return XCTFail("an unresolvable name was allowed")
        }
        XCTAssertTrue(none.description.contains("cannot resolve"), none.description)
    }

    func testEndpointsOfSourceURLs() throws {
        let e = try XCTUnwrap(SourceEndpoint("rtsp://admin:p@ss@cam.local:8554/live?x=1"))
        XCTAssertEqual(e.scheme, "rtsp")
        XCTAssertEqual(e.host, "cam.local")
        XCTAssertEqual(e.port, 8554)
        XCTAssertEqual(
            e.replacingHost(in: "rtsp://admin:p@ss@cam.local:8554/live?x=1", with: [10, 0, 0, 2]),
            "rtsp://admin:p@ss@10.0.0.2:8554/live?x=1")
        let v6 = try XCTUnwrap(SourceEndpoint("http://[::1]/v.mp4"))
        XCTAssertEqual(v6.host, "::1")
        XCTAssertEqual(v6.port, 80)
        XCTAssertEqual(v6.rule, "[::1]:80")
        XCTAssertEqual(SourceEndpoint("https://example.test")?.port, 443)
        XCTAssertEqual(SourceEndpoint("rtsps://cam/x")?.port, 322)
        XCTAssertEqual(SourceEndpoint("postgresql://u:p@db/vf", defaultPort: 5432)?.rule, "db:5432")
        XCTAssertNil(SourceEndpoint("file:///media/a.mp4"))
        XCTAssertNil(SourceEndpoint("http://host:notaport/x"))
        XCTAssertNil(SourceEndpoint("http:///x"))
    }
}

import Testing

@testable import PortSyncHTTP

/// What the API takes from a request, parsed without anything that could trap: bounded numbers, port names, the
/// bearer token (compared in constant time) and the WebSocket key.
@Suite("HTTP request parsing")
struct RequestParsingTests {
    @Test("Decimals: digits only, at most 20, fitting in 64 bits")
    func decimals() {
        #expect(RequestParameters.decimal("0") == 0)
        #expect(RequestParameters.decimal("18446744073709551615") == UInt64.max)
        for bad in [
            "", "18446744073709551616", "99999999999999999999999", "-1", "+1", " 1", "1 ", "1e3", "0x10", "1.0",
        ] {
            #expect(RequestParameters.decimal(Substring(bad)) == nil, "\(bad)")
        }
        // The bound that makes interval_ms * 1000 safe.
        #expect(RequestParameters.intervalMs.upperBound * 1000 < UInt64(Int64.max))
    }

    @Test("Port names: 1 to 15 of A-Z a-z 0-9 . _ -")
    func portNames() {
        for good in ["Ethernet0", "PortChannel0001", "a", "a.b_c-d"] { #expect(RequestParameters.isPortName(good)) }
        for bad in ["", "Ethernet0|x", "Ethernet0000000000", "Ether*", "é", "a b", "a%20b"] {
            #expect(!RequestParameters.isPortName(bad), "\(bad)")
        }
    }

    @Test("The token matches exactly, whatever the lengths")
    func token() {
        let token = BearerToken("s3cret")
        #expect(token.matches("s3cret"))
        for bad in ["", "s", "s3cre", "s3cret ", "s3cretx", "S3cret", "x3cret", "s3cret-much-longer-than-it"] {
            #expect(!token.matches(Substring(bad)), "\(bad)")
        }
        #expect(!BearerToken("").matches(""))
        #expect(token.replace(with: "other"))
        #expect(!token.replace(with: "other"))
        #expect(token.matches("other") && !token.matches("s3cret"))
    }

    @Test("Authorization: Bearer, the scheme in any case")
    func bearerHeader() {
        #expect(BearerTokenMiddleware.bearer("Bearer abc") == "abc")
        #expect(BearerTokenMiddleware.bearer("bearer abc") == "abc")
        #expect(BearerTokenMiddleware.bearer("BEARER  abc") == "abc")
        for bad in ["Bearer", "Bearer ", "Basic abc", "Bearerabc", ""] {
            #expect(BearerTokenMiddleware.bearer(bad) == nil, "\(bad)")
        }
    }

    @Test("A WebSocket key is the base64 of 16 bytes")
    func webSocketKey() {
        #expect(WebSocketHandshake.isValidKey("dGhlIHNhbXBsZSBub25jZQ=="))
        for bad in ["", "not base64!", "c2hvcnQ=", "dGhlIHNhbXBsZSBub25jZQ==dGhl", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
            #expect(!WebSocketHandshake.isValidKey(bad), "\(bad)")
        }
    }

    @Test("Routes: `:name` matches one segment; other paths are unknown")
    func routes() {
        let routes = RouteTable()
        for path in ["/", "/v1/ports", "/v1/ports/:name", "/v1/ports/:name/bars"] { routes.add(path) }
        for known in ["/", "/v1/ports", "/v1/ports/Ethernet0", "/v1/ports/x/bars", "/v1/ports/"] {
            #expect(routes.knows(known), "\(known)")
        }
        for unknown in ["/v1", "/v1/nope", "/v1/ports/a/b", "/v1/ports/a/bars/c", "/v2"] {
            #expect(!routes.knows(unknown), "\(unknown)")
        }
    }
}

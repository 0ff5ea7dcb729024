"""The HTTP API against hostile or broken clients: every input path answers (no trap on request values), every
protocol error gets a response and a close, connections are capped and timed out, and the bearer token is only
taken where it should be. Raw sockets for the protocol edges."""
import json
import socket
import time

from websockets.exceptions import ConnectionClosed

from conftest import Miss, netns_connect, wait_for
from test_http import Api


def exchange(api, payload: bytes, wait=5.0):
    """Sends `payload` on a new connection and reads until the server closes it or `wait` passes.
    Returns (status or None, headers, body, closed)."""
    sock = netns_connect(api.rig.ns.name, api.port)
    try:
        sock.sendall(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.settimeout(0.2)
    deadline = time.monotonic() + wait
    data = b""
    closed = False
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    sock.close()
    return parse_response(data) + (closed,)


def parse_response(data: bytes):
    if not data.startswith(b"HTTP/1."):
        return None, {}, data
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def assert_json_error(headers, body, *fragments):
    assert headers.get("content-type") == "application/json", headers
    document = json.loads(body)
    message = document["error"]["message"]
    for fragment in fragments:
        assert fragment in message, (fragment, document)
    return document


# --- every input path total


def test_out_of_range_parameters_get_400_naming_the_parameter_and_the_daemon_lives_on(rig):
    """`interval_ms=18446744073709552` used to trap (`ms * 1000` overflowed); every numeric parameter is parsed into
    a bounded type and a value out of range or malformed is a 400 naming the parameter and its range."""
    daemon = rig.cold_start(["Ethernet0"])
    api = Api(rig, daemon)
    rig.add_synced_ports(["Ethernet0"])
    for value in ("18446744073709552", "18446744073709551616", "99999999999999999999999", "-1", "0", "+1000",
                  "1e3", "", "1000.0", "%201000", "0x10", "1000&interval_ms=1000"):
        status, headers, body = api.get(f"/v1/ports/Ethernet0/bars?interval_ms={value}")
        assert status == 400, (value, status, body[:200])
        document = json.loads(body)
        assert document["error"]["parameter"] == "interval_ms", document
        assert "interval_ms" in document["error"]["message"] and "1000" in document["error"]["message"], document
        assert headers["Content-Type"] == "application/json"
    assert daemon.alive
    assert api.get("/v1/ports/Ethernet0/bars?interval_ms=10000")[0] == 200
    for value in ("18446744073709551616", "-1", "abc", "1.5", "%2B1"):
        status, _, body = api.get(f"/v1/trace/{value}")
        assert status == 400, (value, status, body[:200])
        assert json.loads(body)["error"]["parameter"] == "id"
    for name in ("Ethernet0%7Cx", "a" * 16, "%00", "Ether*"):
        status, _, body = api.get(f"/v1/ports/{name}")
        assert status == 400, (name, status, body[:200])
        assert json.loads(body)["error"]["parameter"] == "name"
    assert api.get("/v1/ports/Ethernet44")[0] == 404
    assert daemon.alive


def test_the_openapi_document_declares_the_bounds(rig):
    daemon = rig.start()
    api = Api(rig, daemon)
    doc = api.json("/v1/openapi.json")
    params = {(path, p["name"]): p for path, item in doc["paths"].items()
              for op in item.values() if isinstance(op, dict) for p in op.get("parameters", [])}
    interval = params[("/v1/ports/{name}/bars", "interval_ms")]["schema"]
    assert interval["minimum"] == 1000 and interval["maximum"] == 86400000, interval
    assert params[("/v1/trace/{id}", "id")]["schema"]["maximum"] == 18446744073709551615
    name = params[("/v1/ports/{name}", "name")]["schema"]
    assert name["pattern"] and name["maxLength"] == 15, name
    assert "port_state" in params[("/v1/sse/events", "events")]["schema"]["items"]["enum"]
    assert "pattern" in params[("/v1/sse/events", "ports")]["schema"]["items"]


# --- HTTP conformance


def test_protocol_errors_get_a_status_and_a_close(rig):
    """Oversized headers: 431; a bad request line, HTTP/0.9, Content-Length with Transfer-Encoding: 400. Each
    with the JSON error body, and the connection is closed, not left hanging."""
    daemon = rig.start()
    api = Api(rig, daemon)
    cases = [
        (b"GET /v1/ports HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431),
        (b"GET /v1/ports HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n",
         431),
        (b"GET /v1/ports HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n",
         431),
        (b"GARBAGE\x01\x02 NOT HTTP\r\n\r\n", 400),
        (b"GET /v1/ports\r\n\r\n", 400),
        (b"GET /v1/ports HTTP/0.9\r\n\r\n", 400),
        (b"POST /v1/ports HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"0\r\n\r\n", 400),
        (b"GET /v1/ports HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
    ]
    for payload, expected in cases:
        status, headers, body, closed = exchange(api, payload)
        assert status == expected, (payload[:60], status, body[:200])
        assert_json_error(headers, body)
        assert closed, f"connection left open after {payload[:40]!r}"
    metrics = api.get("/metrics")[2].decode()
    assert 'portsyncd_http_bad_requests_total{reason="header_too_large"} 3' in metrics, metrics
    assert daemon.alive


def test_websocket_handshake_errors_are_answered_not_dropped(rig):
    """A malformed Sec-WebSocket-Key: 400; another version: 426 with Sec-WebSocket-Version: 13; a missing key: 400;
    a plain GET: 426 with Upgrade: websocket. With a token configured, 401 comes first."""
    daemon = rig.start()
    api = Api(rig, daemon)

    def handshake(key=b"dGhlIHNhbXBsZSBub25jZQ==", version=b"13", extra=b""):
        lines = b"GET /v1/ws/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        if key is not None:
            lines += b"Sec-WebSocket-Key: " + key + b"\r\n"
        if version is not None:
            lines += b"Sec-WebSocket-Version: " + version + b"\r\n"
        return lines + extra + b"\r\n"

    for key in (b"not base64!", b"c2hvcnQ=", b"dGhlIHNhbXBsZSBub25jZQ==dGhl", b"AAAAAAAAAAAAAAAAAAAAAAAAAAAA"):
        status, headers, body, _ = exchange(api, handshake(key=key), wait=3)
        assert status == 400, (key, status, body[:200])
        assert_json_error(headers, body, "Sec-WebSocket-Key")
    status, headers, body, _ = exchange(api, handshake(version=b"8"), wait=3)
    assert status == 426, (status, body[:200])
    assert headers.get("sec-websocket-version") == "13", headers
    assert_json_error(headers, body)
    status, headers, body, _ = exchange(api, handshake(key=None), wait=3)
    assert status == 400, (status, body[:200])
    assert_json_error(headers, body, "Sec-WebSocket-Key")
    status, headers, body, _ = exchange(api, b"GET /v1/ws/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 426, (status, body[:200])
    assert headers.get("upgrade", "").lower() == "websocket", headers
    assert_json_error(headers, body)
    # A good handshake is still upgraded.
    status, headers, _, _ = exchange(api, handshake(), wait=1)
    assert status == 101, status
    assert daemon.alive


def test_websocket_plain_get_with_a_token_configured_is_401_first(rig):
    daemon = rig.start(config={"http": {"port": 0, "bearer_token": "right"}})
    api = Api(rig, daemon)
    status, headers, body, _ = exchange(api, b"GET /v1/ws/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 401, (status, body[:200])
    assert_json_error(headers, body)
    status, _, _, _ = exchange(api, b"GET /v1/ws/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer right\r\n"
                                    b"Connection: close\r\n\r\n")
    assert status == 426


def test_wrong_methods_get_405_with_allow_and_unknown_paths_a_json_404(rig):
    daemon = rig.start()
    api = Api(rig, daemon)
    for method, path in (("POST", "/v1/ports"), ("DELETE", "/v1/stats"), ("PUT", "/v1/ports/Ethernet0"),
                         ("PATCH", "/metrics"), ("POST", "/v1/sse/events"), ("OPTIONS", "/v1/health")):
        status, headers, body, _ = exchange(
            api, f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        assert status == 405, (method, path, status, body[:200])
        assert headers.get("allow") == "GET, HEAD", headers
        assert_json_error(headers, body)
    for path in ("/v1/nope", "/v1/ports/Ethernet0/nope", "/v2", "/v1/health/nope"):
        status, headers, body, _ = exchange(api, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                            .encode())
        assert status == 404, (path, status)
        assert_json_error(headers, body)


def test_head_is_answered_wherever_get_is(rig):
    daemon = rig.cold_start(["Ethernet0"])
    api = Api(rig, daemon)
    rig.add_synced_ports(["Ethernet0"])
    for path in ("/", "/v1/openapi.json", "/v1/health", "/v1/health/live", "/v1/health/ready",
                 "/v1/health/streaming", "/v1/ports", "/v1/ports/Ethernet0", "/v1/ports/Ethernet0/bars",
                 "/v1/alerts", "/v1/channels", "/v1/stats", "/metrics", "/v1/sse/events"):
        status, headers, body, closed = exchange(
            api, f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert status in (200, 503), (path, status)
        assert body == b"", (path, body[:100])
        assert closed, path
    metrics = api.get("/metrics")[2].decode()
    assert 'portsyncd_stream_clients{kind="sse"} 0' in metrics


def test_the_token_is_taken_from_the_header_and_from_the_query_only_for_sse(rig):
    daemon = rig.start(config={"http": {"port": 0, "bearer_token": "right"}})
    api = Api(rig, daemon)
    assert api.get("/v1/ports?access_token=right")[0] == 401
    assert api.get("/v1/ports", headers={"Authorization": "Bearer right"})[0] == 200
    assert api.get("/v1/ports", headers={"Authorization": "Bearer righ"})[0] == 401
    assert api.get("/v1/ports", headers={"Authorization": "Bearer rightt"})[0] == 401
    assert api.get("/v1/ports", headers={"Authorization": "bearer right"})[0] == 200
    stream = api.sse("?access_token=right")
    assert stream.status == 200
    stream.until(lambda e: e[1] == "sync")
    stream.close()
    # A WebSocket takes the header only: the query form is refused (1008) after the upgrade.
    with api.ws("?access_token=right") as ws:
        try:
            ws.recv(timeout=10)
        except ConnectionClosed:
            pass
        assert ws.close_code == 1008
    with api.ws("", headers={"Authorization": "Bearer right"}) as ws:
        while json.loads(ws.recv(timeout=10))["type"] != "sync":
            pass
    assert not any("right" in line for line in daemon.log_lines())


def test_the_token_can_come_from_a_file_read_at_start_and_on_reload(rig):
    import signal
    secret = rig.tmp / "token"
    secret.write_text("from-file-1\n")
    path = rig.write_config({"http": {"port": 0, "bearer_token_file": str(secret)}})
    daemon = rig.start(config_path=path)
    api = Api(rig, daemon)
    assert api.get("/v1/ports")[0] == 401
    assert api.get("/v1/ports", headers={"Authorization": "Bearer from-file-1"})[0] == 200
    secret.write_text("from-file-2\n")
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: api.get("/v1/ports", headers={"Authorization": "Bearer from-file-2"})[0] == 200,
             what="the new token applied on reload")
    assert api.get("/v1/ports", headers={"Authorization": "Bearer from-file-1"})[0] == 401
    assert not any("from-file" in line for line in daemon.log_lines())
    # An unreadable file: the reload is refused and the running token stays.
    secret.unlink()
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"Reload refused.*bearer_token_file", what="the refused reload")
    assert api.get("/v1/ports", headers={"Authorization": "Bearer from-file-2"})[0] == 200
    # At start-up, an unreadable file is an error.
    bad = rig.write_config({"http": {"port": 0, "bearer_token_file": str(rig.tmp / "missing")}})
    other = rig.start(config_path=bad, wait_ready=False)
    assert other.wait_exit(10) == 1
    assert "bearer_token_file" in other.stderr()


# --- resources


def test_connections_are_capped_and_refused_at_once(rig):
    """With `max_connections = 20`, twenty idle connections hold every slot: the next one is answered 503 and
    closed at once (not left in the backlog), counted and logged; once they go, the API answers again."""
    daemon = rig.start(config={"http": {"port": 0, "max_connections": 20, "request_head_timeout_ms": 60000}})
    api = Api(rig, daemon)
    held = [netns_connect(rig.ns.name, api.port) for _ in range(20)]
    wait_for(lambda: len(connections_of(daemon)) >= 20 or Miss(len(connections_of(daemon))),
             what="twenty connections accepted")
    started = time.monotonic()
    status, headers, body, closed = exchange(api, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n", wait=3)
    assert status == 503 and closed, (status, body[:200])
    assert time.monotonic() - started < 2.5
    assert_json_error(headers, body, "max_connections")
    for sock in held:
        sock.close()
    wait_for(lambda: api.get("/v1/health")[0] == 200, what="the API answering again", ignore=(OSError,))
    metrics = api.get("/metrics")[2].decode()
    assert "portsyncd_http_connections_refused_total 1" in metrics, metrics
    daemon.wait_log(r"EVENT=http_refused", what="the refusal logged")


def connections_of(daemon):
    """The daemon's TCP sockets (its open descriptors that are sockets)."""
    import os
    out = []
    for fd in os.listdir(f"/proc/{daemon.pid}/fd"):
        try:
            if os.readlink(f"/proc/{daemon.pid}/fd/{fd}").startswith("socket:"):
                out.append(fd)
        except OSError:
            pass
    return out


def test_connections_that_send_nothing_or_half_a_head_are_closed_after_the_head_timeout(rig):
    """30 connections that send nothing and 30 that send half a request head are all closed after
    `request_head_timeout_ms` (408 for those that started a request); an idle keep-alive connection after
    `idle_timeout_ms`; an open SSE stream is not."""
    daemon = rig.start(config={"http": {"port": 0, "request_head_timeout_ms": 1000, "idle_timeout_ms": 2000,
                                        "sse_heartbeat_ms": 500}})
    api = Api(rig, daemon)
    stream = api.sse()
    stream.until(lambda e: e[1] == "sync")
    silent = [netns_connect(rig.ns.name, api.port) for _ in range(30)]
    half = [netns_connect(rig.ns.name, api.port) for _ in range(30)]
    for sock in half:
        sock.sendall(b"GET /v1/ports HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    keep = netns_connect(rig.ns.name, api.port)
    keep.sendall(b"GET /v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    started = time.monotonic()
    closed_at = {}
    answers = {}
    for sock in silent + half + [keep]:
        sock.settimeout(0.1)
    while len(closed_at) < 61 and time.monotonic() - started < 10:
        for index, sock in enumerate(silent + half + [keep]):
            if index in closed_at:
                continue
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if chunk:
                answers[index] = answers.get(index, b"") + chunk
            else:
                closed_at[index] = time.monotonic() - started
    assert len(closed_at) == 61, f"{61 - len(closed_at)} connections still open after 10 s"
    assert max(closed_at[i] for i in range(60)) < 4.0, sorted(closed_at.values())[-5:]
    for index in range(30, 60):
        status, headers, body = parse_response(answers.get(index, b""))
        assert status == 408, (index, answers.get(index, b"")[:100])
    assert 1.5 < closed_at[60] < 6.0, closed_at[60]
    # The stream, older than every timeout, is still there (the stream client gauge below).
    assert api.get("/v1/health/live")[0] == 200
    metrics = api.get("/metrics")[2].decode()
    assert "portsyncd_http_request_head_timeouts_total 60" in metrics, [
        line for line in metrics.splitlines() if "portsyncd_http_" in line]
    assert 'portsyncd_stream_clients{kind="sse"} 1' in metrics
    stream.close()
    for sock in silent + half + [keep]:
        sock.close()

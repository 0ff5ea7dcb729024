"""Hostile or broken HTTP clients: each gets the right status or close code and a counter, and neither other
clients nor the port path notice."""
import json
import socket

from websockets.exceptions import ConnectionClosed

from conftest import Miss, netns_connect, wait_for
from test_http import Api


def raw_request(api, payload: bytes) -> bytes:
    sock = netns_connect(api.rig.ns.name, api.port)
    sock.sendall(payload)
    sock.settimeout(3)
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
    except (socket.timeout, ConnectionResetError):
        pass
    sock.close()
    return b"".join(chunks)


def test_huge_headers_unknown_paths_and_garbage_leave_streams_and_ports_alone(rig):
    daemon = rig.cold_start(["Ethernet0"])
    api = Api(rig, daemon)
    stream = api.sse("?ports=Ethernet0")
    stream.until(lambda e: e[1] == "sync")
    # A header far beyond any sane size, an unknown path, and bytes that are not HTTP.
    answer = raw_request(api, b"GET /v1/ports HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
    assert answer == b"" or answer.split(b" ")[1] in (b"400", b"413", b"431"), answer[:100]
    assert api.get("/v1/no/such/path")[0] == 404
    garbage = raw_request(api, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n")
    assert garbage == b"" or garbage.startswith(b"HTTP/1.1 400"), garbage[:100]
    # The open stream and the port path carry on.
    rig.add_port("Ethernet0")
    stream.until(lambda e: e[1] == "port_state" and e[2]["port"] == "Ethernet0" and e[2]["data"]["admin"] == "up")
    rig.wait_state_matches_kernel(["Ethernet0"])
    stream.close()
    assert daemon.alive


def test_websocket_frame_too_big_closes_that_client_only(rig):
    daemon = rig.start()
    api = Api(rig, daemon)
    with api.ws() as calm, api.ws() as loud:
        for ws in (calm, loud):
            while json.loads(ws.recv(timeout=10))["type"] != "sync":
                pass
        loud.send(json.dumps({"events": ["port_state"], "ports": ["x" * 40_000]}))
        try:
            while True:
                loud.recv(timeout=10)
        except ConnectionClosed:
            pass
        assert loud.close_code in (1009, 1008), loud.close_code
        rig.seed_appl("Ethernet0")
        rig.add_port("Ethernet0")
        while True:
            event = json.loads(calm.recv(timeout=10))
            if event.get("port") == "Ethernet0":
                break
    metrics = api.get("/metrics")[2].decode()
    assert 'portsyncd_stream_clients{kind="websocket"} 0' in metrics or "websocket" in metrics
    assert daemon.alive


def test_wrong_token_is_counted_and_logged_once_per_request(rig):
    daemon = rig.start(config={"http": {"port": 0, "bearer_token": "right"}})
    api = Api(rig, daemon)
    for _ in range(3):
        assert api.get("/v1/stats", headers={"Authorization": "Bearer wrong"})[0] == 401
    api.token = "right"
    metrics = api.get("/metrics")[2].decode()
    assert 'portsyncd_http_bad_requests_total{reason="unauthorized"} 3' in metrics
    wait_for(lambda: sum("unauthorized" in line for line in daemon.log_lines()) == 3,
             what="one log line per refused request")


def test_websocket_refusals_are_close_codes_and_hold_no_slot(rig):
    """A bad filter or token closes the upgraded WebSocket with 1008 and a reason; a full house with 1013; a client
    that drops the connection in the middle of the handshake holds no slot afterwards."""
    daemon = rig.start(config={"http": {"port": 0, "bearer_token": "right", "max_clients": 2}})
    api = Api(rig, daemon, token="right")
    right = {"Authorization": "Bearer right"}
    for query, headers, code in (("", {"Authorization": "Bearer wrong"}, 1008), ("?access_token=right", None, 1008),
                                 ("?events=nope", right, 1008)):
        with api.ws(query, headers=headers) as ws:
            try:
                ws.recv(timeout=10)
            except ConnectionClosed:
                pass
            assert ws.close_code == code, (query, ws.close_code, ws.close_reason)
    # Handshakes abandoned at once: none of them keeps a slot.
    for _ in range(20):
        sock = netns_connect(rig.ns.name, api.port)
        sock.sendall(b"GET /v1/ws/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer right\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    wait_for(lambda: 'portsyncd_stream_clients{kind="websocket"} 0' in api.get("/metrics")[2].decode(),
             what="no WebSocket slot held")
    with api.ws(headers=right) as first, api.ws(headers=right) as second:
        for ws in (first, second):
            while json.loads(ws.recv(timeout=10))["type"] != "sync":
                pass
        with api.ws(headers=right) as third:
            try:
                third.recv(timeout=10)
            except ConnectionClosed:
                pass
            assert third.close_code == 1013


def test_a_client_that_never_reads_is_closed_as_slow_and_nobody_else_waits(rig):
    """An SSE client that stops reading (a tiny receive buffer, never drained) while ports flap: its buffer fills,
    it is closed with reason `slow` and counted; a client that reads all along is not, and ends with every port's
    final state; STATE_DB keeps up."""
    import threading
    from conftest import Flapper
    daemon = rig.start(config={"http": {"port": 0}, "events": {"client_buffer_capacity": 256}})
    api = Api(rig, daemon)
    names = [f"Ethernet{4 * i}" for i in range(8)]
    rig.add_synced_ports(names)
    deaf = netns_connect(rig.ns.name, api.port, rcvbuf=2048)
    deaf.sendall(b"GET /v1/sse/events HTTP/1.1\r\nHost: x\r\n\r\n")
    reader = api.sse()
    reader.until(lambda e: e[1] == "sync")
    last = {}
    done = threading.Event()

    def read():
        try:
            while not done.is_set():
                event = reader.next()
                if event is None:
                    return
                if event[1] == "port_state":
                    last[event[2]["port"]] = event[2]["data"]["admin"]
        except (OSError, AttributeError, ValueError):
            if not done.is_set():  # the test closes the stream under this thread once it has what it needs
                raise

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    flapper = Flapper(rig, names)
    flapper.start()
    try:
        def slow_closed():
            text = api.get("/metrics")[2].decode()
            return 'portsyncd_stream_clients_closed_total{reason="slow"} 1' in text or Miss(
                [line for line in text.splitlines() if line.startswith("portsyncd_stream_clients")])
        wait_for(slow_closed, timeout=60, what="the deaf client closed as slow")
        flapper.wait_batches(2)
    finally:
        flapper.stop()
    rig.wait_state_matches_kernel(names)
    expected = {n: "up" if rig.links()[n.encode()].admin_up else "down" for n in names}
    wait_for(lambda: all(last.get(n) == expected[n] for n in names), what="the reading client at the final states")
    done.set()
    metrics = api.get("/metrics")[2].decode()
    assert 'portsyncd_stream_clients_closed_total{reason="slow"} 1' in metrics
    assert 'portsyncd_stream_clients{kind="sse"} 1' in metrics  # the reader is still connected
    deaf.close()
    reader.close()
    assert daemon.alive


def test_an_sse_client_that_goes_away_frees_its_slot_by_the_next_heartbeat(rig):
    """With `max_clients = 1`, an SSE client that closes its connection gives its slot back by the next heartbeat
    at the latest (the server learns of a quiet client's departure from a failed write): a new client is then
    admitted, the gauge says so, and each slot was released as `client`."""
    daemon = rig.start(config={"http": {"port": 0, "max_clients": 1, "sse_heartbeat_ms": 500}})
    api = Api(rig, daemon)
    for round in range(3):
        stream = api.sse()
        assert stream.status == 200, round
        stream.until(lambda e: e[1] == "sync")
        stream.close()
        wait_for(lambda: 'portsyncd_stream_clients{kind="sse"} 0' in api.get("/metrics")[2].decode(), timeout=10,
                 what="the slot given back")
    metrics = api.get("/metrics")[2].decode()
    assert 'portsyncd_stream_clients_closed_total{reason="client"} 3' in metrics
    assert 'portsyncd_stream_clients_refused_total 0' in metrics

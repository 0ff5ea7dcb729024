"""The stream's fan-out against the real daemon: every client of the same filter gets the same sequence (SSE and
WebSocket alike), the bytes on the wire are well-formed HTTP/1.1 chunks from the first to the last, a shutdown
reaches WebSocket clients before their close, and the threads that write the stream run below the port path."""
import contextlib
import json
import os
import re
import signal

from test_http import Api
from websockets.exceptions import ConnectionClosed

from conftest import Miss, netns_connect, wait_for


def read_until(sock, marker: bytes, limit=1 << 20) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before {marker!r}; got {data[-300:]!r}"
        data += chunk
        assert len(data) < limit
    return data


def test_every_client_of_a_filter_gets_the_same_sequence_sse_and_websocket_alike(rig):
    """Twelve SSE and twelve WebSocket clients, all on the whole stream of `port_state`, while three ports change
    twenty times: each client's ids after its `sync` are the same gapless run, and so are the events."""
    daemon = rig.start(config={"http": {"port": 0}})
    api = Api(rig, daemon)
    names = ["Ethernet0", "Ethernet4", "Ethernet8"]
    rig.add_synced_ports(names)
    clients = contextlib.ExitStack()
    sse = [api.sse("?events=port_state") for _ in range(12)]
    ws = [clients.enter_context(api.ws("?events=port_state")) for _ in range(12)]
    for stream in sse:
        stream.until(lambda e: e[1] == "sync")
    for client in ws:
        while json.loads(client.recv(timeout=10))["type"] != "sync":
            pass
    for n in range(20):
        rig.ns.ip("link", "set", "dev", names[n % 3], "mtu", str(1400 + n))
    rig.wait_state_matches_kernel(names)

    def last_change(event):
        return event["port"] == "Ethernet4" and event["data"]["mtu"] == 1419

    runs = []
    for stream in sse:
        events = stream.until(lambda e: e[1] == "port_state" and last_change(e[2]))
        runs.append([(e[0], e[2]["port"], e[2]["data"]["mtu"]) for e in events])
        stream.close()
    for client in ws:
        events = []
        while not events or not last_change(events[-1]):
            events.append(json.loads(client.recv(timeout=10)))
        runs.append([(e["id"], e["port"], e["data"]["mtu"]) for e in events])
    clients.close()
    assert all(run == runs[0] for run in runs), [run[:3] for run in runs]
    sequences = [int(i.rsplit("-", 1)[1]) for i, _, _ in runs[0]]
    assert len(runs[0]) == 20 and sequences == sorted(sequences)
    assert [mtu for _, _, mtu in runs[0]] == [1400 + n for n in range(20)]
    assert daemon.alive


def test_a_port_state_event_leaves_after_state_db_has_that_state(rig):
    """The fan-out steps aside until the port path's Redis write is answered: a client that reads STATE_DB the
    moment a `port_state` event arrives finds that state there, change after change, and the daemon counts the
    times its fan-out stepped aside. (A generous longest wait, so that a slow CI machine's Redis is waited for, and
    no exemption for a small fan-out.)"""
    daemon = rig.start(config={"http": {"port": 0}, "events": {"fanout_yield_ms": 1000,
                                                                "fanout_yield_above_clients": 0}})
    api = Api(rig, daemon)
    rig.add_synced_ports(["Ethernet0"])
    stream = api.sse("?events=port_state&ports=Ethernet0")
    stream.until(lambda e: e[1] == "sync")
    for n in range(10):
        mtu = 1300 + n
        rig.ns.ip("link", "set", "dev", "Ethernet0", "mtu", str(mtu))
        stream.until(lambda e: e[1] == "port_state" and e[2]["data"]["mtu"] == mtu)
        assert rig.state_row("Ethernet0").get("mtu") == str(mtu), n
    stream.close()
    metrics = api.get("/metrics")[2].decode()
    yields = re.search(r"^portsyncd_stream_fanout_yields_total (\d+)$", metrics, re.M)
    assert yields and int(yields.group(1)) >= 1, metrics[-800:]


def test_a_burst_beyond_what_the_fan_out_can_write_cuts_its_clients_as_slow_and_nothing_else_suffers(rig):
    """Clients with a 4-event buffer, and a fan-out that waits for the port path (up to 1 s, and 50 ms after its
    writes) while a burst of 60 changes arrives in one `ip -batch`: more events wait for the clients than their
    buffer holds, so each is cut as `slow` (counted), instead of a backlog that grows; STATE_DB has every port's
    final state, the API answers, and a new client's snapshot has the final states."""
    events = {"client_buffer_capacity": 4, "fanout_yield_ms": 1000, "fanout_quiet_us": 50000,
              "fanout_yield_above_clients": 0}
    daemon = rig.start(config={"http": {"port": 0}, "events": events})
    api = Api(rig, daemon)
    names = ["Ethernet0", "Ethernet4", "Ethernet8"]
    rig.add_synced_ports(names)
    streams = [api.sse("?events=port_state") for _ in range(4)]
    for stream in streams:
        stream.until(lambda e: e[1] == "sync")
    rig.ns.batch([f"link set dev {names[n % 3]} mtu {1300 + n}" for n in range(60)])
    rig.wait_state_matches_kernel(names)
    for stream in streams:
        while stream.next() is not None:  # the server ends the stream
            pass
        stream.close()

    def all_slow():
        text = api.get("/metrics")[2].decode()
        return 'portsyncd_stream_clients_closed_total{reason="slow"} 4' in text or Miss(
            [line for line in text.splitlines() if "closed_total" in line])

    wait_for(all_slow, what="the four clients closed as slow")
    assert api.json("/v1/health")["live"]
    fresh = api.sse("?events=port_state")
    snapshot = {e[2]["port"]: e[2]["data"]["mtu"] for e in fresh.until(lambda e: e[1] == "sync") if e[1] == "port_state"}
    assert snapshot == {"Ethernet0": 1357, "Ethernet4": 1358, "Ethernet8": 1359}, snapshot
    fresh.close()
    assert daemon.alive


def dechunk(body: bytes):
    """The data of the complete chunks at the start of `body`, and whether the last-chunk (size 0) was among them;
    a malformed size line fails the test."""
    data, rest = b"", body
    while b"\r\n" in rest:
        size_line, _, after = rest.partition(b"\r\n")
        size = int(size_line, 16)  # not hex: the framing is broken
        if len(after) < size + 2:
            break
        assert after[size:size + 2] == b"\r\n", after[:size + 2]
        if size == 0:
            return data, True
        data, rest = data + after[:size], after[size + 2:]
    return data, False


def test_sse_body_is_well_formed_chunks_from_the_first_byte_to_the_last_chunk(rig):
    """The stream as bytes on the wire: after the response head, HTTP/1.1 chunks whose sizes are right, carrying
    `retry:`, the snapshot, `sync`, live events and, at shutdown, the `shutdown` event and the last chunk."""
    daemon = rig.start(config={"http": {"port": 0, "sse_retry_ms": 1234}})
    api = Api(rig, daemon)
    rig.add_synced_ports(["Ethernet0"])
    sock = netns_connect(rig.ns.name, api.port)
    sock.sendall(b"GET /v1/sse/events?ports=Ethernet0 HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = read_until(sock, b"\r\n\r\n").partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower(), head
    while b"event: sync\n" not in dechunk(body)[0]:
        body += read_until(sock, b"\r\n")
    rig.ns.ip("link", "set", "dev", "Ethernet0", "mtu", "1300")
    while b'"mtu":1300' not in dechunk(body)[0]:
        body += read_until(sock, b"\r\n")
    daemon.signal(signal.SIGTERM)
    while not dechunk(body)[1]:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the last chunk: {body[-200:]!r}"
        body += chunk
    data, _ = dechunk(body)
    assert data.startswith(b"retry: 1234\n\n"), data[:60]
    events = [block for block in data.split(b"\n\n") if block.startswith(b"id: ")]
    types = [block.split(b"\n")[1] for block in events]
    assert types[:2] == [b"event: port_state", b"event: sync"] and types[-1] == b"event: shutdown", types
    assert daemon.wait_exit(10) == 0
    sock.close()


def test_websocket_clients_get_the_shutdown_event_then_a_going_away_close(rig):
    daemon = rig.start(config={"http": {"port": 0}})
    api = Api(rig, daemon)
    with api.ws() as client:
        while json.loads(client.recv(timeout=10))["type"] != "sync":
            pass
        daemon.signal(signal.SIGTERM)
        events = []
        try:
            while True:
                events.append(json.loads(client.recv(timeout=10)))
        except ConnectionClosed:
            pass
        assert events and events[-1]["type"] == "shutdown", events[-3:]
        assert client.close_code == 1001
    assert daemon.wait_exit(10) == 0


def thread_nice(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[16])  # field 19 of stat: nice (after pid and comm)


def thread_names(pid):
    names = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            names[tid] = f.read().strip()
    return names


def test_the_threads_that_write_the_stream_run_below_the_port_path(rig):
    """`http.thread_nice`: the HTTP server's event-loop threads get that nice value; every other thread of the
    daemon (the port path's among them) keeps 0."""
    daemon = rig.start(config={"http": {"port": 0, "thread_nice": 7}})
    api = Api(rig, daemon)
    api.json("/v1/health")
    pid = daemon.pid

    def niced():
        loops = {tid: thread_nice(pid, tid) for tid, name in thread_names(pid).items() if name.startswith("NIO-")}
        return bool(loops) and all(nice == 7 for nice in loops.values()) or Miss(loops)

    wait_for(niced, what="the HTTP event loops at nice 7")
    others = {name: thread_nice(pid, tid) for tid, name in thread_names(pid).items() if not name.startswith("NIO-")}
    assert others and all(nice == 0 for nice in others.values()), others

"""The HTTP API against the real daemon in its network namespace: event streams (SSE and WebSocket) with the
snapshot, live port changes and resume by Last-Event-ID, health, ports, stats, traces and metrics."""
import http.client
import json
import re
import signal

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect as ws_connect

from conftest import netns_connect, wait_for


class Api:
    """HTTP requests to one daemon's API, from inside the rig's namespace."""

    def __init__(self, rig, daemon, token=None):
        line = daemon.wait_log(r"HTTP API listening on .* HTTP_PORT=\d+")
        self.port = int(re.search(r"HTTP_PORT=(\d+)", line).group(1))
        self.rig = rig
        self.token = token
        rig.ns.ip("link", "set", "dev", "lo", "up")  # a new namespace's loopback starts down

    def connection(self, timeout=10.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.sock = netns_connect(self.rig.ns.name, self.port, timeout=timeout)
        return conn

    def get(self, path, headers=None):
        conn = self.connection()
        headers = dict(headers or {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, dict(response.getheaders()), body

    def json(self, path, expect=200):
        status, _, body = self.get(path)
        assert status == expect, (path, status, body[:500])
        return json.loads(body)

    def sse(self, query="", headers=None):
        return SseStream(self, query, headers)

    def ws(self, query="", headers=None):
        sock = netns_connect(self.rig.ns.name, self.port)
        return ws_connect(f"ws://127.0.0.1:{self.port}/v1/ws/events{query}", sock=sock, open_timeout=10,
                          additional_headers=headers)


class SseStream:
    """One SSE connection, read event by event."""

    def __init__(self, api, query, headers):
        self.conn = api.connection(timeout=15)
        self.conn.request("GET", "/v1/sse/events" + query, headers=headers or {})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = dict(self.response.getheaders())
        self.comments = []

    def next(self):
        """The next event as (id, type, data), skipping comments and `retry:`."""
        fields = {}
        while True:
            line = self.response.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line == "":
                if "data" in fields:
                    return fields.get("id"), fields.get("event"), json.loads(fields["data"])
                continue
            if line.startswith(":"):
                self.comments.append(line)
                continue
            key, _, value = line.partition(": ")
            fields[key] = value

    def until(self, predicate, limit=500):
        seen = []
        for _ in range(limit):
            event = self.next()
            assert event is not None, f"stream ended; seen {seen[-5:]}"
            seen.append(event)
            if predicate(event):
                return seen
        raise AssertionError(f"no matching event in {limit}: {seen[-5:]}")

    def close(self):
        self.conn.close()


def test_sse_snapshot_then_live_changes_then_resume_without_duplicates(rig):
    daemon = rig.start()
    api = Api(rig, daemon)
    rig.add_synced_ports(["Ethernet0", "Ethernet4"])
    stream = api.sse("?events=port_state&ports=Ethernet0,Ethernet4")
    assert stream.status == 200
    assert stream.headers["Content-Type"] == "text/event-stream"
    assert stream.headers["Cache-Control"] == "no-cache" and stream.headers["X-Accel-Buffering"] == "no"
    initial = stream.until(lambda e: e[1] == "sync")
    states = {e[2]["port"]: e[2]["data"] for e in initial if e[1] == "port_state"}
    assert set(states) == {"Ethernet0", "Ethernet4"}
    assert initial[-1][2]["data"] == {"ports": 2}
    rig.ns.ip("link", "set", "dev", "Ethernet4", "down")
    change = stream.until(lambda e: e[1] == "port_state" and e[2]["port"] == "Ethernet4"
                          and e[2]["data"]["admin"] == "down")[-1]
    last_id = change[0]
    epoch, sequence = last_id.rsplit("-", 1)
    stream.close()
    rig.ns.ip("link", "set", "dev", "Ethernet0", "mtu", "1400")
    rig.ns.ip("link", "set", "dev", "Ethernet4", "up")
    resumed = api.sse("", headers={"Last-Event-ID": last_id})
    events = resumed.until(lambda e: e[1] == "port_state" and e[2]["port"] == "Ethernet4"
                           and e[2]["data"]["admin"] == "up")
    ids = [int(e[0].rsplit("-", 1)[1]) for e in events]
    assert ids == sorted(ids) and ids[0] == int(sequence) + 1, ids  # exactly after, no duplicate, no gap
    assert all(e[0].startswith(epoch + "-") for e in events)
    assert any(e[2]["port"] == "Ethernet0" and e[2]["data"]["mtu"] == 1400 for e in events)
    resumed.close()


def test_sse_resume_from_another_epoch_gets_reset_then_a_snapshot(rig):
    daemon = rig.start()
    api = Api(rig, daemon)
    rig.add_synced_ports(["Ethernet0"])
    stream = api.sse("?last_event_id=0123abcd-5")
    first = stream.next()
    assert first[1] == "reset" and first[2]["data"]["reason"] == "epoch_changed"
    rest = stream.until(lambda e: e[1] == "sync")
    assert [e[2].get("port") for e in rest if e[1] == "port_state"] == ["Ethernet0"]
    stream.close()


@pytest.mark.parametrize("query,fragment", [
    ("?events=port_sate", "unknown event type \\\"port_sate\\\""),
    ("?ports=Ethernet%7C0", "invalid port pattern"),
])
def test_bad_stream_filters_get_400_with_a_message(rig, query, fragment):
    daemon = rig.start()
    api = Api(rig, daemon)
    status, _, body = api.get("/v1/sse/events" + query)
    assert status == 400 and fragment in body.decode(), body
    metrics = api.get("/metrics")[2].decode()
    assert 'portsyncd_http_bad_requests_total{reason="bad_filter"} 1' in metrics
    assert daemon.alive


def test_websocket_stream_and_subscription_change(rig):
    daemon = rig.start()
    api = Api(rig, daemon)
    rig.add_synced_ports(["Ethernet0", "Ethernet4"])
    with api.ws("?ports=Ethernet0") as ws:
        events = []
        while not events or events[-1]["type"] != "sync":
            events.append(json.loads(ws.recv(timeout=10)))
        assert [e.get("port") for e in events if e["type"] == "port_state"] == ["Ethernet0"]
        ws.send(json.dumps({"ports": ["Ethernet4"], "events": ["port_state"]}))
        rig.ns.ip("link", "set", "dev", "Ethernet4", "mtu", "1300")
        for _ in range(50):
            event = json.loads(ws.recv(timeout=10))
            if event.get("port") == "Ethernet4" and event["data"].get("mtu") == 1300:
                break
        else:
            raise AssertionError("no Ethernet4 change after the subscription change")
    with api.ws() as ws:
        ws.send("not json")
        with pytest.raises(Exception):
            for _ in range(100):
                ws.recv(timeout=10)
        assert ws.close_code == 1003


def test_health_ports_stats_trace_and_metrics(rig):
    daemon = rig.cold_start(["Ethernet0"])
    api = Api(rig, daemon)
    rig.add_synced_ports(["Ethernet0"])
    health = api.json("/v1/health")
    assert health["ready"] and health["live"] and health["components"]["redis"]["ok"]
    port = api.json("/v1/ports/Ethernet0")
    assert port["admin"] == "up" and port["redis"] == "synced" and port["trace_id"] > 0
    assert any(p["name"] == "Ethernet0" for p in api.json("/v1/ports"))
    assert api.get("/v1/ports/Ethernet99")[0] == 404
    stats = api.json("/v1/stats")
    assert stats["candidates_sent"] >= 1
    trace = api.json(f"/v1/trace/{port['trace_id']}")
    assert [e["stage"] for e in trace["events"]][:4] == ["receive", "prefilter", "extract", "validate"]
    status, headers, body = api.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {s.name for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    for name in ("portsyncd_port_oper_up", "portsyncd_stream_clients", "portsyncd_events_published_total",
                 "portsyncd_netlink_messages_total", "portsyncd_config_last_reload_successful"):
        assert name in names, name


def test_redis_down_makes_ready_503_while_live_stays_200(rig):
    daemon = rig.start()
    api = Api(rig, daemon)
    rig.redis.kill()
    wait_for(lambda: api.get("/v1/health")[0] == 503, what="ready 503 with Redis down")
    assert api.get("/v1/health/live")[0] == 200
    health = json.loads(api.get("/v1/health")[2])
    assert not health["components"]["redis"]["ok"] and "down" in health["components"]["redis"]["reason"]


def test_bearer_token_and_client_limit(rig):
    daemon = rig.start(config={"http": {"port": 0, "bearer_token": "s3cret", "max_clients": 1}})
    api = Api(rig, daemon)
    assert api.get("/v1/ports")[0] == 401
    assert api.get("/v1/health")[0] == 200
    api.token = "s3cret"
    assert api.get("/v1/ports")[0] == 200
    first = api.sse("?access_token=s3cret")
    assert first.status == 200
    first.until(lambda e: e[1] == "sync")
    status, _, _ = api.get("/v1/sse/events")
    assert status == 503
    first.close()


def test_sigterm_closes_streams_with_a_shutdown_event(rig):
    daemon = rig.start()
    api = Api(rig, daemon)
    stream = api.sse()
    stream.until(lambda e: e[1] == "sync")
    daemon.signal(signal.SIGTERM)
    assert stream.until(lambda e: e[1] == "shutdown")[-1][1] == "shutdown"
    assert daemon.wait_exit(10) == 0


def openapi(api):
    return api.json("/v1/openapi.json")


def test_openapi_document_lists_exactly_the_served_paths_and_validates_answers(rig):
    """Every documented path answers (not 404), an undocumented one is 404, and real answers and stream events
    validate against the document's schemas."""
    import jsonschema
    daemon = rig.cold_start(["Ethernet0"])
    api = Api(rig, daemon)
    rig.add_synced_ports(["Ethernet0"])
    doc = openapi(api)
    schemas = doc["components"]["schemas"]

    def validate(instance, name):
        resolver_doc = {"components": doc["components"], **schemas[name]}
        jsonschema.validate(instance, resolver_doc)

    port = api.json("/v1/ports/Ethernet0")
    concrete = {"/v1/ports/{name}": "/v1/ports/Ethernet0", "/v1/trace/{id}": f"/v1/trace/{port['trace_id']}",
                "/v1/ports/{name}/bars": "/v1/ports/Ethernet0/bars"}
    for path in doc["paths"]:
        if path == "/v1/ws/events":
            continue
        if path == "/v1/sse/events":
            stream = api.sse()
            assert stream.status == 200
            stream.close()
            continue
        status, _, _ = api.get(concrete.get(path, path))
        assert status in (200, 503), (path, status)
    assert api.get("/v1/nothing-here")[0] == 404
    validate(api.json("/v1/health"), "Health")
    for item in api.json("/v1/ports"):
        validate(item, "Port")
    validate(api.json(f"/v1/trace/{port['trace_id']}"), "Trace")
    validate(api.json("/v1/alerts"), "Alerts")
    validate(api.json("/v1/channels"), "Channels")
    validate(api.json("/v1/health/streaming"), "Streaming")
    validate(api.json("/v1/ports/Ethernet0/bars"), "Bars")
    stream = api.sse()
    rig.ns.ip("link", "set", "dev", "Ethernet0", "down")
    events = stream.until(lambda e: e[1] == "port_state" and e[2]["data"]["admin"] == "down")
    stream.close()
    names = {"port_state": "PortStateData", "sync": "SyncData", "reset": "ResetData", "port_deleted": "PortDeletedData",
             "config_reloaded": "ConfigReloadedData", "worker_state": "WorkerStateData", "shutdown": "ShutdownData",
             "port_health": "PortHealthData", "counter_bar": "CounterBarData", "alert_raised": "AlertData",
             "alert_cleared": "AlertData"}
    for _, type, event in events:
        validate(event, "Event")
        validate(event["data"], names[type])


def test_metrics_pass_promtool_check_metrics(rig):
    """`/metrics` of a daemon with a few synced ports (so every per-port family has samples) passes Prometheus's own
    linter, `promtool check metrics` (Debian's `prometheus` package): the text parses, every family has HELP and
    TYPE, counters end in `_total`, and no name breaks the naming conventions. promtool exits non-zero and prints
    each problem otherwise."""
    import shutil
    import subprocess
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install Debian's prometheus package (make deps installs it)"
    ports = ["Ethernet0", "Ethernet4", "Ethernet8"]
    daemon = rig.cold_start(ports)
    api = Api(rig, daemon)
    rig.add_synced_ports(ports)
    rig.ns.ip("link", "set", "dev", "Ethernet4", "down")
    wait_for(lambda: 'portsyncd_port_admin_up{port="Ethernet4"} 0' in api.get("/metrics")[2].decode(),
             what="Ethernet4's admin state in /metrics")
    status, _, body = api.get("/metrics")
    assert status == 200
    text = body.decode()
    for port in ports:
        assert f'portsyncd_port_oper_up{{port="{port}"}}' in text, port
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    problems = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, f"promtool check metrics failed ({result.returncode}):\n{problems}"

"""The Python client (`clients/python`: the `portsyncd_client` library and its `portsyncd-watch` command) against
the real daemon in the rig's network namespace.

`portsyncd-watch --json` runs under `ip netns exec`, so its 127.0.0.1 is the namespace's; its stdout is one JSON
event per line and its stderr the connection steps it takes (`attempt N: ws URL refused: ...`,
`... connected`, `backoff 2 s before attempt 3`, `... session ended: ...`). The library is also driven in-process,
connecting through `netns_connect`. The package must be installed from this tree (`make deps` runs
`pip install -e clients/python`).
"""
import json
import re
import shutil
import signal
import subprocess
import sysconfig
import threading
from pathlib import Path

import pytest

from conftest import REPO_ROOT, Miss, activity, netns_connect, wait_for
from test_http import Api

PORT = 19470
URL = f"http://127.0.0.1:{PORT}"
STEP = re.compile(r"^portsyncd-watch: (?:attempt (?P<attempt>\d+): (?P<transport>ws|sse|poll) (?P<url>\S+) "
                  r"(?P<outcome>refused|connected)(?::? (?P<reason>.*))?"
                  r"|attempt (?P<ended_attempt>\d+): (?P<ended_transport>ws|sse|poll) session ended: (?P<ended>.*)"
                  r"|backoff (?P<delay>[\d.]+) s before attempt (?P<next>\d+))$")


def client_package():
    """The installed `portsyncd_client`, checked to be this tree's (an install from another checkout would test
    other code)."""
    try:
        import portsyncd_client
    except ImportError:
        pytest.fail("portsyncd_client is not installed: run `make deps` (pip install -e clients/python)",
                    pytrace=False)
    source = Path(portsyncd_client.__file__).resolve()
    if REPO_ROOT / "clients" / "python" not in source.parents:
        pytest.fail(f"portsyncd_client is imported from {source}, not from this tree: run "
                    f"`pip install -e {REPO_ROOT / 'clients' / 'python'}`", pytrace=False)
    return portsyncd_client


def watch_command() -> str:
    client_package()
    scripts = Path(sysconfig.get_path("scripts")) / "portsyncd-watch"
    found = str(scripts) if scripts.is_file() else shutil.which("portsyncd-watch")
    if not found:
        pytest.fail("the portsyncd-watch command is not installed: run `make deps` (pip install -e clients/python)",
                    pytrace=False)
    return found


class Watch:
    """`portsyncd-watch --json URL ARGS...` inside the rig's namespace: its events (stdout) and steps (stderr)
    recorded as they come."""

    def __init__(self, rig, url, *args):
        self.argv = rig.ns.exec_argv(watch_command(), "--json", url, *args)
        self.events: list[dict] = []
        self.log: list[str] = []
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.readers = [threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
                        threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read(self, stream, events):
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            if events:
                self.events.append(json.loads(line))
            else:
                self.log.append(line)
            activity()

    def wait_event(self, predicate, after=-1, what="an event", timeout=15.0) -> int:
        """The index of the first event after index `after` that matches."""
        def find():
            for index in range(after + 1, len(self.events)):
                if predicate(self.events[index]):
                    return index + 1  # truthy even for index 0
            if self.proc.poll() is not None:
                raise AssertionError(f"portsyncd-watch exited with {self.proc.returncode}: {self.log[-5:]}")
            return None
        return wait_for(find, timeout=timeout, what=f"{what} from portsyncd-watch; log: {self.log[-4:]}") - 1

    def wait_log(self, text, timeout=15.0):
        wait_for(lambda: any(text in line for line in self.log), timeout=timeout,
                 what=f"{text!r} in portsyncd-watch's log; last lines: {self.log[-4:]}")

    def steps(self) -> list[dict]:
        """The connection steps logged so far, parsed; any other stderr line fails the test."""
        out = []
        for line in list(self.log):
            match = STEP.match(line)
            assert match, f"unexpected stderr line from portsyncd-watch: {line!r}"
            out.append({k: v for k, v in match.groupdict().items() if v is not None})
        return out

    def wait_steps(self, predicate, what):
        """The parsed steps once `predicate(steps)` holds (stderr is read apart from stdout, so a step logged
        before an event may be read after it)."""
        return wait_for(lambda: (lambda steps: steps if predicate(steps) else Miss(steps[-4:]))(self.steps()),
                        what=what)

    def stop(self) -> int:
        """SIGTERM (it stops cleanly); the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for reader in self.readers:
            reader.join(timeout=5)
        return self.proc.returncode


@pytest.fixture
def watcher(rig):
    started = []

    def start(url=URL, *args):
        rig.ns.ip("link", "set", "dev", "lo", "up")
        watch = Watch(rig, url, *args)
        started.append(watch)
        return watch

    yield start
    for watch in started:
        watch.stop()


def epoch_of(event) -> str:
    return event["id"].rsplit("-", 1)[0]


def port_states(events):
    return {e["port"]: e["data"] for e in events if e["type"] == "port_state"}


def test_client_follows_a_daemon_restart_shutdown_reconnect_reset_snapshot_sync_then_live(rig, watcher):
    """(a) A daemon restart on the same fixed port, seen by `portsyncd-watch` over WebSocket: the first daemon's
    snapshot, `sync` and a live change; on SIGTERM a `shutdown` event ends the session, the client backs off and
    reconnects by itself, resuming after the `shutdown` event's id; the new daemon answers that id of the old
    epoch with `reset` (reason epoch_changed, the new epoch) as the very next event, then port states of the new
    epoch and `sync`, and the client's view then holds every port as the kernel has it (the MTU changed under
    the first daemon included); a change made after that arrives live, with an id of the new epoch."""
    config = {"http": {"port": PORT}}  # the shipped [sonic]: the restart rejoins the running switch
    first = rig.start(config=config)
    rig.orchagent_pop()
    first.wait_log(rf"HTTP API listening on .* HTTP_PORT={PORT}\b")
    rig.add_synced_ports(["Ethernet0", "Ethernet4"])
    watch = watcher()
    sync = watch.wait_event(lambda e: e["type"] == "sync", what="the first sync")
    assert set(port_states(watch.events[:sync])) == {"Ethernet0", "Ethernet4"}
    assert all(e["transport"] == "ws" for e in watch.events[:sync + 1]), watch.events
    first_epoch = epoch_of(watch.events[sync])

    rig.ns.ip("link", "set", "dev", "Ethernet4", "mtu", "1400")
    watch.wait_event(lambda e: e["type"] == "port_state" and e["port"] == "Ethernet4" and e["data"]["mtu"] == 1400,
                     after=sync, what="Ethernet4's MTU change from the first daemon")

    assert first.stop() == 0
    watch.wait_log("ws session ended:")
    ended_line = next(line for line in watch.log if "ws session ended:" in line)
    assert "ws session ended: shutdown" in ended_line, \
        f"the daemon exited without a `shutdown` event on the stream: {ended_line}"
    shutdown = watch.wait_event(lambda e: e["type"] == "shutdown", after=sync, what="shutdown")
    shutdown_id = watch.events[shutdown]["id"]
    assert epoch_of(watch.events[shutdown]) == first_epoch

    second = rig.start(config=config)
    second.wait_log(rf"HTTP API listening on .* HTTP_PORT={PORT}\b")
    reset = watch.wait_event(lambda e: e["type"] == "reset", after=shutdown, what="reset from the new daemon")
    assert reset == shutdown + 1, watch.events[shutdown:reset + 1]  # nothing in between
    new_epoch = watch.events[reset]["data"]["epoch"]
    assert watch.events[reset]["data"]["reason"] == "epoch_changed" and new_epoch != first_epoch
    assert epoch_of(watch.events[reset]) == new_epoch
    sync2 = watch.wait_event(lambda e: e["type"] == "sync", after=reset, what="sync after the reset")
    snapshot = watch.events[reset + 1:sync2]
    assert all(e["type"] == "port_state" and epoch_of(e) == new_epoch for e in snapshot), snapshot
    assert watch.events[sync2]["data"]["ports"] == len(snapshot)

    # The view: the snapshot, plus the new daemon's start-up dump if the client came back before it was done.
    def view_matches_kernel():
        view = port_states(watch.events[reset + 1:])
        want = {name: (link.admin_up, link.running, link.mtu) for name, link in
                ((n, rig.ns.link(n)) for n in ("Ethernet0", "Ethernet4"))}
        got = {n: (d["admin"] == "up", d["oper"] == "up", d["mtu"]) for n, d in view.items() if n in want}
        return True if got == want else Miss({"client": got, "kernel": want})
    wait_for(view_matches_kernel, what="the client's view after the reset to equal the kernel")
    assert port_states(watch.events[reset + 1:])["Ethernet4"]["mtu"] == 1400

    rig.ns.ip("link", "set", "dev", "Ethernet0", "down")
    live = watch.wait_event(lambda e: e["type"] == "port_state" and e["port"] == "Ethernet0"
                            and e["data"]["admin"] == "down", after=sync2, what="Ethernet0 down, live")
    assert epoch_of(watch.events[live]) == new_epoch and watch.events[live]["transport"] == "ws"

    steps = watch.wait_steps(lambda steps: sum(s.get("outcome") == "connected" for s in steps) >= 2,
                             what="the reconnection in the log")
    ended = [s for s in steps if s.get("ended", "").startswith("shutdown")]
    assert len(ended) == 1, steps
    after_shutdown = steps[steps.index(ended[0]) + 1:]
    assert after_shutdown[0] == {"delay": "1", "next": str(int(ended[0]["ended_attempt"]) + 1)}, after_shutdown
    connected = [s for s in after_shutdown if s.get("outcome") == "connected"]
    assert connected and connected[0]["transport"] == "ws", after_shutdown
    assert connected[0]["reason"] == f"resuming after {shutdown_id}", connected[0]
    assert watch.stop() == 0


def test_client_falls_back_to_sse_when_the_websocket_is_off(rig, watcher):
    """(b) With `http.websocket = false` the daemon refuses the WebSocket upgrade; `portsyncd-watch` logs that
    refusal and connects by SSE in the same attempt, then gets the snapshot and `sync` and live events
    over SSE (each with an id), filtered by `--ports`: a change of a port outside the filter, made before one
    inside it, never arrives."""
    daemon = rig.start(config={"http": {"port": PORT, "websocket": False}})
    daemon.wait_log(rf"HTTP API listening on .* HTTP_PORT={PORT}\b")
    rig.add_synced_ports(["Ethernet0", "Ethernet4"])
    watch = watcher(URL, "--ports", "Ethernet4")
    sync = watch.wait_event(lambda e: e["type"] == "sync", what="sync over SSE")
    steps = watch.wait_steps(lambda steps: len(steps) >= 2, what="two steps")
    assert [(s["attempt"], s["transport"], s["outcome"]) for s in steps[:2]] == [("1", "ws", "refused"),
                                                                                ("1", "sse", "connected")], steps
    assert re.match(r"HTTP (400|404)\b", steps[0]["reason"]), steps[0]  # 404 is documented; see the test below
    assert list(port_states(watch.events[:sync])) == ["Ethernet4"]
    assert all(e["transport"] == "sse" for e in watch.events), watch.events

    rig.ns.ip("link", "set", "dev", "Ethernet0", "mtu", "1300")
    rig.ns.ip("link", "set", "dev", "Ethernet4", "down")
    live = watch.wait_event(lambda e: e["type"] == "port_state" and e["port"] == "Ethernet4"
                            and e["data"]["admin"] == "down", after=sync, what="Ethernet4 down over SSE")
    event = watch.events[live]
    assert event["transport"] == "sse" and re.fullmatch(r"[0-9a-f]+-\d+", event["id"]), event
    assert not any(e.get("port") == "Ethernet0" for e in watch.events), watch.events


def test_client_backs_off_while_the_api_is_unreachable_then_connects(rig, watcher):
    """(c) `portsyncd-watch` started before the daemon: every transport is refused (connection refused), so
    each round tries ws, then sse, then poll, then backs off 1 s, 2 s, 4 s … (the logged delays double); once the
    daemon is up the next round's WebSocket connects, and the snapshot and `sync` arrive. The test starts the
    daemon only after two failed rounds, and checks the whole logged sequence, not how long anything took."""
    watch = watcher()
    watch.wait_log("backoff 2 s before attempt 3")
    daemon = rig.start(config={"http": {"port": PORT}})
    daemon.wait_log(rf"HTTP API listening on .* HTTP_PORT={PORT}\b")
    watch.wait_event(lambda e: e["type"] == "sync", timeout=30, what="sync once the daemon is up")
    steps = watch.wait_steps(lambda steps: any(s.get("outcome") == "connected" for s in steps),
                             what="the connection in the log")
    connected = [i for i, s in enumerate(steps) if s.get("outcome") == "connected"]
    assert connected, steps
    failed_rounds = int(steps[connected[0]]["attempt"]) - 1
    assert failed_rounds >= 2, steps
    expected = []
    for n in range(1, failed_rounds + 1):
        for transport in ("ws", "sse", "poll"):
            expected.append((str(n), transport, "refused", "connection refused"))
        expected.append(("backoff", f"{min(60, 2 ** (n - 1)):g}", str(n + 1)))
    expected.append((str(failed_rounds + 1), "ws", "connected"))
    got = [(s["attempt"], s["transport"], s["outcome"], s["reason"]) if s.get("outcome") == "refused"
           else ("backoff", s["delay"], s["next"]) if "delay" in s
           else (s["attempt"], s["transport"], s["outcome"]) for s in steps[:connected[0] + 1]]
    assert got == expected


def test_library_backoff_doubles_up_to_its_ceiling(rig):
    """The reconnect delays of the library while nothing listens (real refused TCP connections in the rig's
    namespace): each round tries ws, sse and poll, then waits a delay that starts at `backoff_initial` and
    doubles at each failed round until `backoff_max`, where it stays (here scaled down 1000 times: 1 ms … 8 ms
    for the product's 1 s … 60 s)."""
    package = client_package()
    rig.ns.ip("link", "set", "dev", "lo", "up")
    steps = []
    client = package.PortsyncClient(
        URL, backoff_initial=0.001, backoff_max=0.008, on_status=steps.append,
        socket_factory=lambda host, port, timeout: netns_connect(rig.ns.name, port, host, timeout))

    def rounds():
        return sum(1 for s in steps if s.kind == "backoff") >= 6

    thread = threading.Thread(target=lambda: next(iter(client), None), daemon=True)
    thread.start()
    try:
        wait_for(rounds, what="six failed rounds")
    finally:
        client.stop()
        thread.join(timeout=10)
    assert [s.delay for s in steps if s.kind == "backoff"][:6] == [0.001, 0.002, 0.004, 0.008, 0.008, 0.008]
    first_round = [(s.kind, s.transport, s.reason) for s in steps[:4]]
    assert first_round == [("refused", "ws", "connection refused"), ("refused", "sse", "connection refused"),
                           ("refused", "poll", "connection refused"), ("backoff", None, "")], first_round


def test_library_polls_when_both_streams_are_refused_then_returns_to_a_stream(rig):
    """The library in-process (connecting from the namespace through a socket factory), with a bearer token:
    `http.max_clients = 1` and the one slot held by another SSE client make both streams refuse it (SSE with
    503 and the daemon's message), so the client polls `/v1/ports`: a synthetic snapshot and `sync`, then a synthetic `port_state` when a port goes
    down between two polls. Once the slot is free, the next round (after `stream_retry_interval`) connects by
    WebSocket again. Without the token the daemon answers 401 and the iteration ends with `FatalError`."""
    package = client_package()
    daemon = rig.start(config={"http": {"port": PORT, "bearer_token": "s3cret", "max_clients": 1,
                                        "sse_heartbeat_ms": 100}})
    api = Api(rig, daemon, token="s3cret")
    rig.add_synced_ports(["Ethernet0", "Ethernet4"])

    def factory(host, port, timeout):
        return netns_connect(rig.ns.name, port, host, timeout)

    anonymous = package.PortsyncClient(URL, socket_factory=factory)
    with pytest.raises(package.FatalError) as refused:
        next(iter(anonymous))
    assert refused.value.status == 401

    holder = api.sse("?access_token=s3cret")
    holder.until(lambda e: e[1] == "sync")
    events = []
    sessions = []  # for each event, the number of sessions the client had opened when it came
    client = package.PortsyncClient(URL, token="s3cret", socket_factory=factory, poll_interval=0.2,
                                    stream_retry_interval=2.0, backoff_initial=0.1)

    def run():
        def record(event):
            sessions.append(sum(1 for step in client.history if step.kind == "connected"))
            events.append(event)
            activity()
        client.run(record)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: any(e.type == "sync" for e in events), what="the polled snapshot")
        sync = next(i for i, e in enumerate(events) if e.type == "sync")
        first = list(client.history)
        assert [(s.kind, s.transport) for s in first[:3]] == [("refused", "ws"), ("refused", "sse"),
                                                              ("connected", "poll")], first
        assert re.match(r"closed 1013 too many stream clients", first[0].reason), first  # refused after the upgrade
        assert first[1].reason.startswith("HTTP 503 too many stream clients"), first
        snapshot = events[:sync]
        assert all(e.transport == "poll" and e.synthetic and e.type == "port_state" for e in snapshot), snapshot
        assert {e.port for e in snapshot} >= {"Ethernet0", "Ethernet4"}

        rig.ns.ip("link", "set", "dev", "Ethernet0", "down")
        change = wait_for(lambda: next((i for i, e in enumerate(events) if i > sync and e.type == "port_state"
                                        and e.port == "Ethernet0" and e.data["admin"] == "down"), None),
                          what="a synthetic port_state from polling")
        assert events[change].synthetic and events[change].transport == "poll", events[change]
        assert sessions[change] == sessions[sync], "seen by a later poll of the first polling session"
        assert client.ports["Ethernet0"]["admin"] == "down"

        holder.close()
        wait_for(lambda: any(e.type == "sync" and e.transport == "ws" for e in events),
                 what="the client back on the WebSocket once the slot is free")
        assert client.ports["Ethernet0"]["admin"] == "down" and client.last_event_id
    finally:
        client.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_library_reset_drops_the_port_view_before_the_new_snapshot(rig):
    """The library's port view across a daemon restart: a port deleted while the daemon was down is one the new
    daemon never knew, so no `port_deleted` can ever come for it; only the `reset` (epoch changed) that precedes
    the new snapshot removes it from `PortsyncClient.ports`. After the restart the view is exactly the kernel's
    ports with their current state (an MTU changed while the daemon was down included), and `epoch` and
    `last_event_id` belong to the new daemon."""
    package = client_package()
    config = {"http": {"port": PORT}}  # the shipped [sonic]: the restart rejoins the running switch
    rig.ns.ip("link", "set", "dev", "lo", "up")
    first = rig.start(config=config)
    rig.orchagent_pop()
    rig.add_synced_ports(["Ethernet0", "Ethernet4", "Ethernet8"])
    events = []
    client = package.PortsyncClient(
        URL, backoff_initial=0.2, socket_factory=lambda host, port, timeout: netns_connect(rig.ns.name, port, host,
                                                                                          timeout))
    thread = threading.Thread(target=client.run, args=(lambda e: (events.append(e), activity()),), daemon=True)
    thread.start()
    try:
        wait_for(lambda: set(client.ports) == {"Ethernet0", "Ethernet4", "Ethernet8"} or Miss(client.ports),
                 what="the first daemon's three ports in the view")
        old_epoch = client.epoch
        assert first.stop() == 0
        rig.ns.ip("link", "del", "Ethernet8")
        rig.ns.ip("link", "set", "dev", "Ethernet4", "mtu", "1400")
        rig.start(config=config)
        wait_for(lambda: any(e.type == "reset" for e in events), what="reset from the new daemon")

        def view():
            ports = client.ports
            got = {name: (data["admin"], data["mtu"]) for name, data in ports.items()}
            return True if got == {"Ethernet0": ("up", 1500), "Ethernet4": ("up", 1400)} else Miss(got)
        wait_for(view, what="the view to be the kernel's two ports")
        assert client.epoch != old_epoch and client.last_event_id.startswith(client.epoch + "-")
    finally:
        client.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_websocket_off_answers_the_upgrade_with_404(rig):
    """The contract clients rely on to fall back (etc/portsyncd.toml, `http.websocket`): with the WebSocket off,
    an upgrade request to /v1/ws/events is answered 404, like any path the daemon does not serve."""
    daemon = rig.start(config={"http": {"port": 0, "websocket": False}})
    api = Api(rig, daemon)
    status, _, _ = api.get("/v1/ws/events", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert status == 404

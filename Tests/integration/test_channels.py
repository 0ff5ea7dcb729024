"""The channel pipelines against the real daemon, the real kernel and a real redis-server: counter bars from the
kernel's IFLA_STATS64 counters (exact volumes through a veth pair, OHLC invariants, a port deleted and created
again in the middle of a bar) and link-event damping in `enforce` mode (the stream holds a damped port's
`port_state` events until it is released; STATE_DB keeps following the kernel, one write per kernel message).

Traffic is made exact: IPv6 is off in the namespace before any interface exists (so the kernel sends nothing of
its own: no router solicitation, no MLD, no DAD), and the frames are sent with an AF_PACKET socket bound to the
port, with an ethertype no protocol handles. The kernel's own counters are checked too, so that a kernel that
sent something else fails with that said rather than as a daemon error.

Bars are seen on an SSE stream (`?events=counter_bar`); the daemon's clock is CLOCK_MONOTONIC in microseconds,
the same clock as `time.monotonic_ns()` here, so bar boundaries can be compared with the test's own times."""
from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from conftest import (
    STATE_DB,
    Flapper,
    Miss,
    Rig,
    activity,
    daemon_binary,
    wait_for,
)
from test_http import Api

BAR_US = 1_000_000
# Bars of 1 s sampled every 200 ms (the ranges allow 1000 … and 0 …; etc/portsyncd.toml).
BAR_CONFIG = {"channels": {"bar_intervals_ms": [BAR_US // 1000], "stats_interval_ms": 200},
              "http": {"port": 0, "sse_heartbeat_ms": 1000}}
# Far above anything a veth driven from Python reaches; a rate measured across a counter reset would be ~1e19.
ABSURD_BPS = 1e11
ABSURD_PPS = 1e9
RATES = ("rx_bps", "tx_bps", "rx_pps", "tx_pps")
VOLUMES = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "errors", "drops")

# Sends `count` Ethernet frames of random length (60 … 1500 bytes) out of `dev` at once; prints what the socket
# accepted. Broadcast destination, ethertype 0x88B5
# (IEEE 802 local experimental), so the receiving stack drops them without answering.
SEND_SCRIPT = r'''
import json, random, socket, sys
dev, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((dev, 0))
rnd = random.Random(seed)
header = b"\xff" * 6 + bytes.fromhex("020000000001") + b"\x88\xb5"
frames = sent_bytes = 0
for _ in range(count):
    frame = header + bytes(rnd.randint(46, 1486))
    sent = sock.send(frame)
    assert sent == len(frame), (sent, len(frame))
    frames += 1
    sent_bytes += sent
print(json.dumps({"frames": frames, "bytes": sent_bytes}))
'''

# Every RTM_NEWLINK the kernel multicasts in the namespace, one line each: "<name> <mtu>" (a listener of our own,
# beside the daemon's, with a 32 MiB buffer so that it loses nothing; on ENOBUFS it says so and stops).
LISTEN_SCRIPT = r'''
import socket, struct, sys
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
sock.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE
sock.bind((0, 1))  # RTMGRP_LINK
print("ready", flush=True)
while True:
    try:
        data = sock.recv(1 << 20)
    except OSError as error:
        print(f"error {error.errno}", flush=True)
        raise SystemExit(1)
    off = 0
    while off + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, off)
        if length < 16:
            break
        if kind == 16:
            name, mtu, at = b"?", 0, off + 32
            while at + 4 <= off + length:
                alen, atype = struct.unpack_from("=HH", data, at)
                if alen < 4:
                    break
                if atype & 0x3FFF == 3:
                    name = data[at + 4:at + alen].split(b"\0", 1)[0]
                elif atype & 0x3FFF == 4:
                    mtu = struct.unpack_from("=I", data, at + 4)[0]
                at += (alen + 3) & ~3
            print(name.decode(errors="replace"), mtu, flush=True)
        off += (length + 3) & ~3
'''


def now_us() -> int:
    return time.monotonic_ns() // 1000


def disable_ipv6(rig):
    """IPv6 off in the namespace, for interfaces made from now on too (before any exists)."""
    subprocess.run(rig.ns.exec_argv("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                                    "net.ipv6.conf.default.disable_ipv6=1"), check=True, capture_output=True)


def kernel_counters(rig, name) -> dict:
    """The kernel's IFLA_STATS64 of `name`: {rx_bytes, rx_packets, tx_bytes, tx_packets, tx_dropped, ...}."""
    out = rig.ns.ip("-s", "-j", "link", "show", "dev", name).stdout
    stats = json.loads(out)[0]["stats64"]
    return {f"{way}_{key}": value for way in ("rx", "tx") for key, value in stats[way].items()}


def send_frames(rig, dev, count, seed) -> dict:
    """`count` raw frames of random length out of `dev`, at once."""
    result = subprocess.run(rig.ns.exec_argv("python3", "-c", SEND_SCRIPT, dev, str(count), str(seed)),
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return json.loads(result.stdout)


class Events(threading.Thread):
    """One SSE stream read on a thread; every event kept as (id, type, event), in order."""

    def __init__(self, api, query):
        super().__init__(name="sse-events", daemon=True)
        self.stream = api.sse(query)
        assert self.stream.status == 200, self.stream.status
        self.events: list = []
        self.lock = threading.Lock()
        self.ended = None
        self.start()

    def run(self):
        try:
            while True:
                event = self.stream.next()
                if event is None:
                    self.ended = "stream ended"
                    break
                with self.lock:
                    self.events.append(event)
                activity()
        except Exception as error:  # noqa: BLE001 - the connection was closed under the reader
            self.ended = f"{type(error).__name__}: {error}"
        activity()

    def snapshot(self) -> list:
        with self.lock:
            return list(self.events)

    def of(self, type_, port=None) -> list:
        return [e[2] for e in self.snapshot() if e[1] == type_ and (port is None or e[2].get("port") == port)]

    def bars(self, port) -> list:
        return [e["data"] for e in self.of("counter_bar", port)]

    def close(self):
        self.stream.close()
        self.join(timeout=5)


def is_gap(bar) -> bool:
    return bar["samples"] == 0


def check_bar(bar, where=""):
    """What holds for every bar: interval and times, OHLC order, no negative or absurd value, gaps empty."""
    assert bar["interval_us"] == BAR_US, (where, bar)
    assert bar["start_us"] < bar["end_us"] <= bar["start_us"] + BAR_US, (where, bar)
    if not bar["reset"]:
        assert bar["end_us"] - bar["start_us"] == BAR_US and bar["start_us"] % BAR_US == 0, (where, bar)
    if is_gap(bar):
        assert all(bar.get(key) is None for key in RATES + VOLUMES), (where, "a gap carries values", bar)
        return
    for key in VOLUMES:
        value = bar.get(key)
        assert value is None or value >= 0, (where, key, bar)
    for key in RATES:
        ohlc = bar.get(key)
        if ohlc is None:
            continue  # one sample only: no rate yet
        open_, high, low, close = ohlc["open"], ohlc["high"], ohlc["low"], ohlc["close"]
        assert min(open_, high, low, close) >= 0, (where, key, ohlc)
        assert high >= open_ and high >= close and close >= low and open_ >= low, (where, key, ohlc)
        assert high <= (ABSURD_BPS if key.endswith("bps") else ABSURD_PPS), (where, "absurd rate", key, ohlc)


def check_contiguous(bars, where=""):
    """Consecutive bars of one port meet: each starts where the previous ended (no bar lost on the way)."""
    for before, after in zip(bars, bars[1:]):
        assert after["start_us"] == before["end_us"], (where, "bars do not meet", before, after)


def window_sum(bars, after_us, until_us, key) -> int:
    """The volume `key` over the bars that end after `after_us` and no later than `until_us`."""
    return sum(bar.get(key) or 0 for bar in bars if after_us < bar["end_us"] <= until_us)


def start_with_pair(rig, config, a="Ethernet0", b="Ethernet4"):
    """The daemon, and a veth pair whose two ends are both ports (APPL_DB entries seeded, STATE_DB synced)."""
    disable_ipv6(rig)
    daemon = rig.start(config=config)
    api = Api(rig, daemon)
    rig.seed_appl(a)
    rig.seed_appl(b)
    rig.add_port(a, peer=b)
    rig.wait_state_matches_kernel([a, b])
    return daemon, api


def wait_bar(events, port, predicate, what, timeout=10.0):
    def find():
        bars = events.bars(port)
        for bar in bars:
            if predicate(bar):
                return bar
        if events.ended:
            raise AssertionError(f"the SSE stream ended: {events.ended}")
        return Miss(bars[-2:])

    return wait_for(find, timeout=timeout, what=f"{port}: {what}")


# ----------------------------------------------------------------------------------------------------------
# (a) Volumes


def test_bar_volumes_equal_the_bytes_sent_through_a_veth_pair(rig):
    """Ethernet0 ↔ Ethernet4 (both ports). After a bar with samples (the counters' baseline), 3000 frames of
    random length leave Ethernet0 in two bursts in two different 1 s bars. The sum of Ethernet0's tx byte
    and packet volumes over the bars from there until a bar that starts after the sending ended, with a sample,
    equals exactly what the socket sent, as does Ethernet4's rx; the other directions stay 0 (the kernel sent
    nothing of its own, checked on its own counters as well). Every bar of either port keeps high ≥ open, close
    ≥ low, … for each rate, has no negative or absurd value, and the bars of each port meet end to start."""
    daemon, api = start_with_pair(rig, BAR_CONFIG)
    events = Events(api, "?events=counter_bar&ports=Ethernet0,Ethernet4")
    try:
        for port in ("Ethernet0", "Ethernet4"):
            wait_bar(events, port, lambda bar: bar["samples"] > 0, "a bar with samples (the baseline)")
        baseline = {port: max(bar["end_us"] for bar in events.bars(port)) for port in ("Ethernet0", "Ethernet4")}
        before = {port: kernel_counters(rig, port) for port in ("Ethernet0", "Ethernet4")}
        # Two bursts in two different bars: the second once a bar that began after the first has closed.
        sent_from = now_us()
        first = send_frames(rig, "Ethernet0", count=1500, seed=20241125)
        wait_bar(events, "Ethernet0", lambda bar: bar["start_us"] >= sent_from, "a bar begun after the first burst")
        second = send_frames(rig, "Ethernet0", count=1500, seed=20241126)
        sent = {key: first[key] + second[key] for key in ("frames", "bytes")}
        sent_until = now_us()
        after = {port: kernel_counters(rig, port) for port in ("Ethernet0", "Ethernet4")}
        assert sent["frames"] == 3000

        # The kernel's own view first: exactly our frames, in one direction, nothing dropped.
        assert after["Ethernet0"]["tx_bytes"] - before["Ethernet0"]["tx_bytes"] == sent["bytes"], (before, after)
        assert after["Ethernet0"]["tx_packets"] - before["Ethernet0"]["tx_packets"] == sent["frames"]
        assert after["Ethernet4"]["rx_bytes"] - before["Ethernet4"]["rx_bytes"] == sent["bytes"]
        assert after["Ethernet4"]["rx_packets"] - before["Ethernet4"]["rx_packets"] == sent["frames"]
        for port, key in (("Ethernet0", "rx_bytes"), ("Ethernet4", "tx_bytes"), ("Ethernet0", "tx_dropped")):
            assert after[port][key] == before[port][key], f"the kernel counted {key} on {port} on its own"
        # The receiving stack has no handler for the ethertype: it counts each frame as dropped (rx_dropped).
        kernel_delta = {port: {key: after[port][key] - before[port][key] for key in after[port]}
                        for port in after}

        final = {port: wait_bar(events, port, lambda bar: bar["start_us"] >= sent_until and bar["samples"] > 0,
                                "a bar with a sample taken after the sending ended")
                 for port in ("Ethernet0", "Ethernet4")}
        bars = {port: sorted(events.bars(port), key=lambda bar: bar["start_us"]) for port in final}
        window = {port: (baseline[port], final[port]["end_us"]) for port in final}

        assert window_sum(bars["Ethernet0"], *window["Ethernet0"], "tx_bytes") == sent["bytes"]
        assert window_sum(bars["Ethernet0"], *window["Ethernet0"], "tx_packets") == sent["frames"]
        assert window_sum(bars["Ethernet4"], *window["Ethernet4"], "rx_bytes") == sent["bytes"]
        assert window_sum(bars["Ethernet4"], *window["Ethernet4"], "rx_packets") == sent["frames"]
        for port, key in (("Ethernet0", "rx_bytes"), ("Ethernet0", "rx_packets"), ("Ethernet4", "tx_bytes"),
                          ("Ethernet4", "tx_packets")):
            assert window_sum(bars[port], *window[port], key) == 0, (port, key)
        for port, delta in kernel_delta.items():  # errors and drops: rx and tx together, as the kernel has them
            assert window_sum(bars[port], *window[port], "errors") == delta["rx_errors"] + delta["tx_errors"]
            assert window_sum(bars[port], *window[port], "drops") == delta["rx_dropped"] + delta["tx_dropped"], \
                (port, delta)

        busy = [bar for bar in bars["Ethernet0"] if (bar.get("tx_bytes") or 0) > 0]
        assert len(busy) >= 2, f"the sending ({sent_from}…{sent_until} µs) did not span two bars: {busy}"
        assert all(bar["tx_bps"]["high"] > 0 and bar["tx_pps"]["high"] > 0 for bar in busy), busy
        for port, port_bars in bars.items():
            for bar in port_bars:
                check_bar(bar, port)
                assert not bar["reset"], (port, bar)
            check_contiguous(port_bars, port)
    finally:
        events.close()


# ----------------------------------------------------------------------------------------------------------
# (b) A port deleted and created again in the middle of a bar


def wait_early_in_a_bar(events, port):
    """Returns just after a bar of `port` has closed, i.e. early in the next one (a statistics dump every 200 ms
    closes a bar as soon as a sample lands past its end)."""
    asked = now_us()
    wait_bar(events, port, lambda bar: bar["end_us"] > asked, "a bar closing now")


@pytest.fixture(scope="module")
def recreated():
    """One run of the scenario, shared by the tests below: Ethernet0 ↔ Ethernet4, a baseline bar, 400 frames
    out of Ethernet0 early in a bar, at once the pair deleted (the daemon's DELLINK seen in
    STATE_DB) and created again within the same bar, then a baseline bar of the new ifindex and 400 frames more."""
    rig = Rig(daemon_binary())
    try:
        daemon, api = start_with_pair(rig, BAR_CONFIG)
        events = Events(api, "?events=counter_bar,port_state,port_deleted&ports=Ethernet0,Ethernet4")
        wait_bar(events, "Ethernet0", lambda bar: bar["samples"] > 0, "a bar with samples (the baseline)")
        baseline = max(bar["end_us"] for bar in events.bars("Ethernet0"))
        wait_early_in_a_bar(events, "Ethernet0")
        first = send_frames(rig, "Ethernet0", count=400, seed=1)
        # No sample needed before the delete: the RTM_DELLINK carries the interface's last counters.
        deleted_at = now_us()
        old_ifindex = rig.ns.link("Ethernet0").ifindex
        rig.ns.ip("link", "del", "Ethernet0")
        wait_for(lambda: rig.state_row("Ethernet0") == {}, what="STATE_DB PORT_TABLE|Ethernet0 deleted")
        rig.add_port("Ethernet0", peer="Ethernet4")
        recreated_at = now_us()
        rig.wait_state_matches_kernel(["Ethernet0", "Ethernet4"])
        new_ifindex = rig.ns.link("Ethernet0").ifindex
        # The new ifindex's own baseline: a bar that starts after the re-creation and has a sample.
        wait_bar(events, "Ethernet0", lambda bar: bar["start_us"] >= recreated_at and bar["samples"] > 0,
                 "a bar of the new ifindex with samples")
        second = send_frames(rig, "Ethernet0", count=400, seed=2)
        sent_until = now_us()
        final = wait_bar(events, "Ethernet0", lambda bar: bar["start_us"] >= sent_until and bar["samples"] > 0,
                         "a bar with a sample taken after the second sending")
        result = {
            "bars": sorted(events.bars("Ethernet0"), key=lambda bar: (bar["start_us"], bar["end_us"])),
            "all_bars": events.bars("Ethernet0") + events.bars("Ethernet4"),
            "baseline": baseline, "final": final["end_us"], "deleted_at": deleted_at,
            "recreated_at": recreated_at, "same_bar": deleted_at // BAR_US == recreated_at // BAR_US,
            "sent": first["bytes"] + second["bytes"], "frames": first["frames"] + second["frames"],
            "ifindexes": (old_ifindex, new_ifindex),
            "deleted_events": events.of("port_deleted", "Ethernet0"),
        }
        events.close()
        yield result
    finally:
        rig.close()


def test_recreated_port_rates_stay_sane(recreated):
    """Across a delete and re-create of the port in the middle of a bar (a new ifindex, counters from 0 again),
    no bar of either end has a negative or absurd rate or volume, OHLC order holds, and no bar claims more
    traffic than was sent in all."""
    assert recreated["ifindexes"][0] != recreated["ifindexes"][1]
    assert recreated["deleted_events"], "no port_deleted event for Ethernet0"
    for bar in recreated["all_bars"]:
        check_bar(bar)
        for key in ("tx_bytes", "rx_bytes"):
            assert (bar.get(key) or 0) <= recreated["sent"], ("more than was sent", key, bar)
    assert window_sum(recreated["bars"], recreated["baseline"], recreated["final"], "tx_bytes") \
        <= recreated["sent"]


def test_recreated_port_splits_the_bar_flagged_reset_and_keeps_the_volume(recreated):
    """The bar the port was deleted in is closed and flagged `reset` (README: a new ifindex splits the bar), and
    the volumes still add up: the frames sent before the delete (counted by a statistics sample in the open
    bar) plus those sent after the re-creation equal the tx volume of Ethernet0's bars."""
    bars = recreated["bars"]
    flagged = [bar for bar in bars if bar["reset"]]
    assert flagged, f"no Ethernet0 bar flagged reset around {recreated['deleted_at']} µs: " \
                    f"{[b for b in bars if b['end_us'] > recreated['deleted_at'] - BAR_US][:3]}"
    assert any(bar["start_us"] <= recreated["deleted_at"] < bar["end_us"] + BAR_US for bar in flagged), flagged
    assert window_sum(bars, recreated["baseline"], recreated["final"], "tx_bytes") == recreated["sent"]
    assert window_sum(bars, recreated["baseline"], recreated["final"], "tx_packets") == recreated["frames"]


# ----------------------------------------------------------------------------------------------------------
# (c) Damping, enforce mode

DAMPING = {
    "damping_mode": "enforce",
    "flap_penalty": 1000,
    "suppress_threshold": 1600,  # damped at the second link-down within a half-life or so
    "reuse_threshold": 1200,
    "decay_half_life_ms": 2000,
    "max_suppress_ms": 6000,  # penalty ceiling 1200 × 2^(6000/2000) = 9600: released ≤ 6 s after the last flap
}


class NetlinkListener:
    """LISTEN_SCRIPT in the namespace; its lines as (name, mtu), in order."""

    def __init__(self, rig):
        self.proc = subprocess.Popen(rig.ns.exec_argv("python3", "-u", "-c", LISTEN_SCRIPT),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list = []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        wait_for(lambda: self.ready.is_set() or self.proc.poll() is not None, what="the netlink listener")
        assert self.ready.is_set(), self.proc.stderr.read()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode(errors="replace").split()
            if line == ["ready"]:
                self.ready.set()
            else:
                self.lines.append((line[0], int(line[1])) if line[0] != "error" else ("error", int(line[1])))
            activity()

    def count(self, name) -> int:
        assert ("error", 105) not in self.lines, "the test's own netlink listener overflowed (ENOBUFS)"
        return sum(1 for line in list(self.lines) if line[0] == name)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.thread.join(timeout=5)


def test_enforce_holds_a_damped_ports_stream_events_while_state_db_follows_the_kernel(rig):
    """`damping_mode = "enforce"`: Ethernet0 (and its peer) flapped as fast as `ip -batch` goes. A
    `port_health` event with damped true (mode enforce) comes; from then on the stream carries no `port_state`
    of Ethernet0, while STATE_DB keeps following the kernel: after the flapping stops and the port is set to a
    final state (up, MTU 1280, a value the flapping never uses) STATE_DB has it at once, with exactly one HSET
    of PORT_TABLE|Ethernet0 per RTM_NEWLINK of Ethernet0 (counted by a netlink listener of the test's own), and
    /v1/ports still shows the state from before damping. Once the penalty has decayed, `port_health` damped
    false comes, and right after it one `port_state`: the held state, i.e. the final one. (The daemon writes no
    APPL_DB oper_status: APPL_DB is only the start-up copy and PortInitDone, so STATE_DB is the contract here.)"""
    disable_ipv6(rig)
    daemon = rig.start(config={"channels": DAMPING, "http": {"port": 0, "sse_heartbeat_ms": 1000}})
    api = Api(rig, daemon)
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0")
    rig.wait_state_matches_kernel(["Ethernet0"])
    rig.seed_sentinel()
    rig.barrier()  # the sentinel exists before counting starts
    events = Events(api, "?events=port_state,port_health&ports=Ethernet0")
    listener = NetlinkListener(rig)
    flapper = None
    try:
        wait_for(lambda: any(e[1] == "sync" for e in events.snapshot()), what="the stream's sync")
        mark = rig.events.mark()
        flapper = Flapper(rig, ["Ethernet0"])
        flapper.start()
        damped = wait_for(lambda: next((e for e in events.of("port_health", "Ethernet0") if e["data"]["damped"]),
                                       None), what="port_health damped=true for Ethernet0", timeout=20)
        flapper.wait_batches(10)  # flaps while damped
        flapper.stop()
        flapper = None
        assert damped["data"]["mode"] == "enforce" and damped["data"]["flaps"] >= 2, damped
        assert damped["data"]["penalty"] > DAMPING["suppress_threshold"], damped

        peer = rig.peers[b"Ethernet0"]
        rig.ns.batch([f"link set dev {peer} up", "link set dev Ethernet0 up", "link set dev Ethernet0 mtu 1280"])
        rig.wait_state_matches_kernel(["Ethernet0"])
        assert rig.state_row("Ethernet0")["mtu"] == "1280"
        rig.barrier()
        mtu = int(rig.state_row("Ethernet9996")["mtu"])
        wait_for(lambda: ("Ethernet9996", mtu) in listener.lines, what="the listener to hear the barrier")

        # Still damped: nothing of Ethernet0's state on the stream since damping started, the bus view is old.
        seen = events.snapshot()
        start = next(i for i, e in enumerate(seen) if e[1] == "port_health" and e[2]["data"]["damped"])
        after = seen[start + 1:]
        assert not any(e[1] == "port_health" and not e[2]["data"]["damped"] for e in after), \
            "released before the check; the penalty ceiling (max_suppress_ms) is too low for this machine"
        assert [e for e in after if e[1] == "port_state"] == [], "port_state events passed while damped"
        view = api.json("/v1/ports/Ethernet0")
        assert view["mtu"] != 1280 and view["redis"] == "synced", view

        # The Redis contract is unchanged by enforce: one STATE_DB write per kernel message.
        messages = listener.count("Ethernet0")
        writes = rig.events.count(STATE_DB, "hset", b"PORT_TABLE|Ethernet0", mark)
        assert messages > 10 and writes == messages, {"kernel messages": messages, "STATE_DB HSETs": writes}

        released = wait_for(lambda: next((i for i, e in enumerate(events.snapshot()) if i > start
                                          and e[1] == "port_health" and not e[2]["data"]["damped"]), None),
                            timeout=15, what="port_health damped=false (release)")
        # The held state is published together with its release, right after it; the bus drains its high lane
        # (port_state) before its medium lane (port_health), so when both are taken in one drain the stream
        # carries the state just before the release event instead. Either way nothing else passes in between.
        seen = events.snapshot()
        between = [i for i in range(start + 1, released) if seen[i][1] == "port_state"]
        assert between in ([], [released - 1]), [seen[i] for i in between]
        if between:
            held = seen[released - 1]
        else:
            held = wait_for(lambda: next((e for e in events.snapshot()[released + 1:] if e[1] == "port_state"),
                                         None), what="the held port_state after the release")
            assert events.snapshot()[released + 1] == held, events.snapshot()[released:released + 3]
        state = held[2]["data"]
        kernel = rig.ns.link("Ethernet0")
        assert (state["admin"], state["oper"], state["mtu"]) == ("up", "up", 1280), state
        assert (kernel.admin_up, kernel.running, kernel.mtu) == (True, True, 1280)
        assert api.json("/v1/ports/Ethernet0")["mtu"] == 1280
    finally:
        if flapper is not None:
            flapper.stop()
        listener.stop()
        events.close()

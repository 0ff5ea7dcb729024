#!/usr/bin/env python3
"""portsyncd with thousands of real ports, then a surge: every port down at once, then every port up. Run as root.

One network namespace holds N veth pairs: `Ethernet0`, `Ethernet4`, … (SONiC's names, step 4) are the ports; their
peers are named `pv0`, `pv1`, … so that the daemon's name filter ignores them (no `Ethernet`/`PortChannel`
prefix): N ports, 2N interfaces. IPv6 is off in the namespace before the interfaces are made: with it on, the
kernel's address configuration makes bringing 8192 veths down take minutes instead of about a second.

A private redis-server (unix socket) gets CONFIG_DB `PORT|<name>` for every port, as the integration tests seed it
(bench_startup.py's seeding, with a SONiC database map). Then, with `--order adopt` (the default):
  the veths exist and are up before the daemon starts, APPL_DB `PORT_TABLE:<name>` holds what orchagent left
  (portsyncd restarted on a running box), and `sonic.adopt_existing_interfaces = true`: READY=1 comes after the
  start-up dump of every link and its STATE_DB writes;
with `--order sonic`:
  the daemon starts with the namespace empty, the script plays orchagent (pops the start-up copy into APPL_DB) and
  only then makes the veths, as SONiC does (host interfaces are created after portsyncd's snapshot).
Either way it measures the time to READY=1 on the notify socket, the time until every port is in STATE_DB and
APPL_DB and until the channels know every port (`GET /v1/ports`: an entry with the kernel's ifindex, which only
the channel's link events give), with the daemon's RSS (VmRSS, VmHWM) and CPU time (utime + stime).

The surge, `--cycles` times: one `ip -batch` takes every port down, then one takes every port up. For each
phase: how long `ip` took, then until STATE_DB shows every port's final state (checked by a server-side Lua count;
then field by field against the kernel's own dump: nothing lost), and until `/v1/ports` (the event bus's latest
state of each port, what a new stream subscriber's snapshot is made of) agrees, or how many ports it still has
wrong after `--view-timeout` seconds. An SSE stream (`?events=alert_raised,alert_cleared,port_health`) counts the
alerts: the surge runs with `alerts.flap_raise = 1`, so each port's first link-down raises `port_flapping` once and
every later one is a suppressed repeat: flood control holds if no port is raised twice. `/metrics` before and after
gives the kernel messages, the hand-off's coalesced/dropped counts, the STATE_DB writes, the events published by
type and dropped at the bus's intake by priority. (The channel worker's own intake drops and folded duplicates are
not exposed by the daemon.)

Prints one table (and with `--json`, one JSON object instead). Everything it made (processes, the namespace, the
temporary directory) is removed at the end, also after a failure, Ctrl-C or SIGTERM. Exit status: 0, or 1 when a
step failed (the table says which), 2 when STATE_DB or APPL_DB lost a port, 130 when interrupted. A stale stream
view is reported, not an error (a known limitation of the event bus's intake)."""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

# The integration tests' netlink link dump and namespace helper (Tests/integration/conftest.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "integration"))
from conftest import IFF_RUNNING, IFF_UP, LINK_DUMP_SCRIPT, in_netns  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONSUMER_LUA = (REPO / "Tests" / "integration" / "sonic_consumer.lua").read_text()
CONFIG_DB, APPL_DB, STATE_DB = 4, 0, 6

# How many of the ports have STATE_DB fields equal to ARGV: admin_status, netdev_oper_status (one round trip).
COUNT_STATE_LUA = """
local n = 0
for i = 0, tonumber(ARGV[1]) - 1 do
    local row = redis.call('HMGET', 'PORT_TABLE|Ethernet' .. (i * 4), 'state', 'admin_status', 'netdev_oper_status')
    if row[1] == 'ok' and row[2] == ARGV[2] and row[3] == ARGV[3] then n = n + 1 end
end
return n
"""
# How many of the ports have an APPL_DB PORT_TABLE:<name> final hash.
COUNT_APPL_LUA = """
local n = 0
for i = 0, tonumber(ARGV[1]) - 1 do n = n + redis.call('EXISTS', 'PORT_TABLE:Ethernet' .. (i * 4)) end
return n
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", "--bin", dest="binary", required=True, help="the portsyncd binary")
    parser.add_argument("--ports", type=int, default=8192)
    parser.add_argument("--order", choices=("adopt", "sonic"), default="adopt",
                        help="veths before the daemon (adopted) or after READY (SONiC's order); see above")
    parser.add_argument("--cycles", type=int, default=2, help="down-then-up surges (the second: repeats only)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds any one wait may take")
    parser.add_argument("--idle", type=float, default=10.0,
                        help="seconds of idle time measured for the daemon's steady CPU use before the surge")
    parser.add_argument("--view-timeout", type=float, default=10.0,
                        help="seconds to wait for /v1/ports to agree with the kernel after each phase")
    parser.add_argument("--keep-log", metavar="PATH", help="copy the daemon's stderr here")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return parser.parse_args()


class Failure(Exception):
    pass


def log(args, text):
    if not args.json:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def kernel_links(ns) -> dict:
    """name -> (admin up, running, mtu, ifindex) from an RTM_GETLINK dump in the namespace (the tests' dump)."""
    result = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", LINK_DUMP_SCRIPT],
                            capture_output=True, timeout=120)
    if result.returncode != 0:
        raise Failure(f"link dump in {ns}: {result.stderr.decode(errors='replace').strip()}")
    return {bytes.fromhex(link["name"]).decode(errors="replace"):
            (bool(link["flags"] & IFF_UP), bool(link["flags"] & IFF_RUNNING), link["mtu"], link["ifindex"])
            for link in json.loads(result.stdout)}


class Api:
    """HTTP requests to the daemon's API inside the namespace."""

    def __init__(self, ns, port):
        self.ns = ns
        self.port = port

    def connect(self, timeout=60.0):
        sock = in_netns(self.ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", self.port))
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.sock = sock
        return conn

    def get(self, path) -> bytes:
        conn = self.connect()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise Failure(f"GET {path}: HTTP {response.status} {body[:200]!r}")
            return body
        finally:
            conn.close()

    def metrics(self) -> dict:
        out = {}
        for line in self.get("/metrics").decode().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                try:
                    out[key] = float(value)
                except ValueError:
                    pass
        return out


class AlertStream(threading.Thread):
    """SSE `?events=alert_raised,alert_cleared,port_health`: counts per type, alert_raised per port."""

    def __init__(self, api):
        super().__init__(name="alerts", daemon=True)
        self.api = api
        self.counts: dict[str, int] = {}
        self.raised_per_port: dict[str, int] = {}
        self.health: dict[str, int] = {"damped": 0, "released": 0}
        self.ended = None
        self.synced = threading.Event()
        self.conn = api.connect(timeout=3600)
        self.conn.request("GET", "/v1/sse/events?events=alert_raised,alert_cleared,port_health")
        self.response = self.conn.getresponse()
        if self.response.status != 200:
            raise Failure(f"SSE: HTTP {self.response.status}")
        self.start()

    def run(self):
        kind = None
        try:
            while True:
                line = self.response.readline()
                if not line:
                    self.ended = "stream ended"
                    return
                if line.startswith(b"event: "):
                    kind = line[7:].strip().decode()
                elif line.startswith(b"data: "):
                    self.counts[kind] = self.counts.get(kind, 0) + 1
                    if kind == "sync":
                        self.synced.set()
                    elif kind == "alert_raised":
                        port = json.loads(line[6:]).get("port", "?")
                        self.raised_per_port[port] = self.raised_per_port.get(port, 0) + 1
                    elif kind == "port_health":
                        self.health["damped" if json.loads(line[6:])["data"]["damped"] else "released"] += 1
                    elif kind in ("shutdown", "reset"):
                        self.ended = kind
        except Exception as error:  # noqa: BLE001 - closed at the end
            self.ended = self.ended or f"{type(error).__name__}: {error}"

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


def proc_figures(pid) -> dict:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                status[key] = int(value.split()[0])
    return {"cpu_s": round(cpu, 2), "rss_mib": round(status["VmRSS"] / 1024, 1),
            "hwm_mib": round(status["VmHWM"] / 1024, 1), "threads": status["Threads"]}


def wait(args, what, check, interval=0.1, timeout=None):
    """Polls `check()` until it returns True; returns the seconds it took. `check` may return (False, detail)
    to say what it saw. Fails after the timeout."""
    start = time.monotonic()
    deadline = start + (timeout or args.timeout)
    last = None
    while True:
        value = check()
        done, last = value if isinstance(value, tuple) else (value, value)
        if done:
            return time.monotonic() - start
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout or args.timeout:.0f} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class Run:
    def __init__(self, args):
        self.args = args
        self.n = args.ports
        self.names = [f"Ethernet{i * 4}" for i in range(self.n)]
        self.work = Path(tempfile.mkdtemp(prefix="portsyncd-scale."))
        self.ns = f"psd-scale-{os.getpid()}"
        self.ns_made = False
        self.procs: list[subprocess.Popen] = []
        self.results: dict = {"ports": self.n, "order": args.order, "cycles": args.cycles,
                              "binary": str(args.binary)}
        self.stream = None
        self.daemon = None
        self.daemon_log = self.work / "portsyncd.log"

    # --- set-up

    def redis_start(self):
        self.sock = str(self.work / "redis.sock")
        self.procs.append(subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.sock, "--save", "", "--appendonly", "no",
             "--databases", "100", "--dir", str(self.work), "--logfile", str(self.work / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.db = {n: redis.Redis(unix_socket_path=self.sock, db=n, socket_timeout=120) for n in
                   (APPL_DB, CONFIG_DB, STATE_DB)}

        def up():
            try:
                return self.db[CONFIG_DB].ping()
            except (redis.ConnectionError, FileNotFoundError):
                return False
        wait(self.args, "redis-server", up, interval=0.01, timeout=10)
        with open(self.work / "database_config.json", "w") as handle:
            json.dump({"INSTANCES": {"redis": {"hostname": "127.0.0.1", "port": 6379, "unix_socket_path": self.sock}},
                       "DATABASES": {name: {"id": db, "separator": sep, "instance": "redis"} for name, db, sep in
                                     (("APPL_DB", 0, ":"), ("CONFIG_DB", 4, "|"), ("STATE_DB", 6, "|"))},
                       "VERSION": "1.0"}, handle)

    def seed(self):
        pipe = self.db[CONFIG_DB].pipeline(transaction=False)
        for i, name in enumerate(self.names):
            pipe.hset(f"PORT|{name}", mapping={
                "lanes": ",".join(str(i * 4 + lane) for lane in range(1, 5)), "alias": f"etp{i + 1}",
                "speed": "100000", "mtu": "9100", "admin_status": "up", "index": str(i + 1), "fec": "rs"})
        pipe.execute()
        if self.args.order == "adopt":  # what orchagent left in APPL_DB before portsyncd was restarted
            pipe = self.db[APPL_DB].pipeline(transaction=False)
            for name in self.names:
                pipe.hset(f"PORT_TABLE:{name}", mapping={"admin_status": "up", "mtu": "9100", "speed": "100000"})
            pipe.execute()

    def netns(self):
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        self.ns_made = True
        subprocess.run(["ip", "netns", "exec", self.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True)

    def ip_batch(self, lines) -> float:
        path = self.work / "batch"
        path.write_text("\n".join(lines) + "\n")
        start = time.monotonic()
        result = subprocess.run(["ip", "-n", self.ns, "-batch", str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            raise Failure(f"ip -batch failed: {result.stderr[-500:]}")
        return time.monotonic() - start

    def make_veths(self) -> float:
        lines = [f"link add {name} type veth peer name pv{i}" for i, name in enumerate(self.names)]
        lines += [f"link set dev pv{i} up" for i in range(self.n)]
        lines += [f"link set dev {name} up" for name in self.names]
        return self.ip_batch(lines)

    def start_daemon(self):
        config = self.work / "portsyncd.conf"
        config.write_text("\n".join([
            "[redis]", f'database_config = "{self.work}/database_config.json"',
            "[sonic]", f"adopt_existing_interfaces = {'true' if self.args.order == 'adopt' else 'false'}",
            "[http]", "port = 9470",
            # The observer's own buffer: so that the script's stream is never cut as slow (the counts are its).
            "[events]", "client_buffer_capacity = 100000",
            "[alerts]", "flap_raise = 1", "flap_clear = 0",
            "[log]", 'level = "warning"', ""]))
        notify_path = str(self.work / "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC")}
        env["NOTIFY_SOCKET"] = notify_path
        output = open(self.daemon_log, "wb")
        start = time.monotonic()
        # `ip netns exec` execs the binary: the child's pid is the daemon's.
        self.daemon = subprocess.Popen(["ip", "netns", "exec", self.ns, str(self.args.binary), "--config",
                                        str(config)], env=env, stdin=subprocess.DEVNULL, stdout=output,
                                       stderr=subprocess.STDOUT)
        self.procs.append(self.daemon)
        notify.settimeout(1.0)
        while True:
            if self.daemon.poll() is not None:
                raise Failure(f"portsyncd exited with {self.daemon.returncode} before READY=1; "
                              f"log: {self.daemon_log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() - start > self.args.timeout:
                raise Failure("no READY=1")
            try:
                if b"READY=1" in notify.recv(65536).split(b"\n"):
                    break
            except socket.timeout:
                pass
        self.results["ready_s"] = round(time.monotonic() - start, 3)
        self.results["at_ready"] = proc_figures(self.daemon.pid)
        notify.close()
        self.api = Api(self.ns, 9470)

    def orchagent_pop(self) -> int:
        popped = 0
        while True:
            reply = self.db[APPL_DB].eval(CONSUMER_LUA, 3, "PORT_TABLE_KEY_SET", "PORT_TABLE:",
                                          "PORT_TABLE_DEL_SET", 1024, "_")
            if not reply:
                return popped
            popped += len(reply)

    # --- checks

    def counted(self, count):
        return count >= self.n, f"{count} of {self.n}"

    def state_count(self, admin, oper) -> int:
        return self.db[STATE_DB].eval(COUNT_STATE_LUA, 0, self.n, admin, oper)

    def appl_count(self) -> int:
        return self.db[APPL_DB].eval(COUNT_APPL_LUA, 0, self.n)

    def view(self) -> dict:
        return {p["name"]: p for p in json.loads(self.api.get("/v1/ports"))}

    def state_mismatches(self, links) -> list:
        pipe = self.db[STATE_DB].pipeline(transaction=False)
        for name in self.names:
            pipe.hgetall(f"PORT_TABLE|{name}")
        bad = []
        for name, row in zip(self.names, pipe.execute()):
            row = {k.decode(): v.decode() for k, v in row.items()}
            link = links.get(name)
            if link is None:
                bad.append((name, "not in the kernel"))
                continue
            want = {"state": "ok", "admin_status": "up" if link[0] else "down",
                    "netdev_oper_status": "up" if link[1] else "down", "mtu": str(link[2])}
            if {k: row.get(k) for k in want} != want:
                bad.append((name, row, want))
        return bad

    def view_mismatches(self, links, view=None) -> list:
        view = view if view is not None else self.view()
        bad = []
        for name in self.names:
            admin, running, mtu, ifindex = links[name]
            entry = view.get(name) or {}
            got = (entry.get("admin"), entry.get("oper"), entry.get("mtu"), entry.get("ifindex"))
            if got != ("up" if admin else "down", "up" if running else "down", mtu, ifindex):
                bad.append(name)
        return bad

    # --- phases

    def sync_phase(self):
        args = self.args
        if args.order == "sonic":
            self.results["orchagent_popped"] = self.orchagent_pop()
            log(args, f"READY in {self.results['ready_s']} s; orchagent popped {self.results['orchagent_popped']}; "
                      f"making {self.n} veth pairs")
            started = time.monotonic()
            self.results["veth_create_s"] = round(self.make_veths(), 2)
        else:
            started = time.monotonic()
            self.results["orchagent_popped"] = self.orchagent_pop()
            log(args, f"READY in {self.results['ready_s']} s; orchagent popped {self.results['orchagent_popped']}")
        wait(args, "every port in STATE_DB (admin up, oper up)", lambda: self.counted(self.state_count("up", "up")))
        self.results["state_db_complete_s"] = round(time.monotonic() - started, 2)
        self.results["appl_db_ports"] = self.appl_count()
        # The channels' view: a port's entry has an ifindex once its port_state went through the channel worker
        # and the bus. Not awaited forever: an event lost on the way is not sent again until the port changes.
        deadline = time.monotonic() + args.view_timeout
        while True:
            known = sum(1 for name, p in self.view().items()
                        if p.get("ifindex") is not None and name.startswith("Ethernet"))
            if known >= self.n or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.results["channels_known"] = known
        self.results["channels_complete_s"] = round(time.monotonic() - started, 2) if known >= self.n else None
        self.results["startup_metrics"] = self.metric_figures(self.api.metrics(), {})
        links = kernel_links(self.ns)
        self.results["kernel_interfaces"] = len(links)
        bad = self.state_mismatches(links)
        if bad:
            raise Failure(f"after the start-up sync {len(bad)} STATE_DB rows differ from the kernel: {bad[:3]}")
        self.results["sync_view_stale"] = len(self.view_mismatches(links))
        self.results["synced"] = proc_figures(self.daemon.pid)
        log(args, f"STATE_DB complete after {self.results['state_db_complete_s']} s, channels know {known} ports "
                  f"after {self.results['channels_complete_s']} s; {self.results['synced']}; "
                  f"{self.results['startup_metrics']}")

    def surge(self):
        args = self.args
        self.stream = AlertStream(self.api)
        wait(args, "the alert stream's sync", self.stream.synced.is_set, timeout=30)
        # Steady state first: every port known and idle; the channel worker still samples every port's counters
        # (a dump of every link each stats_interval_ms) and closes bars.
        idle_from, cpu_from = time.monotonic(), proc_figures(self.daemon.pid)["cpu_s"]
        time.sleep(args.idle)
        self.results["idle_cpu_percent"] = round(
            100 * (proc_figures(self.daemon.pid)["cpu_s"] - cpu_from) / (time.monotonic() - idle_from), 1)
        before = self.api.metrics()
        cpu_before = proc_figures(self.daemon.pid)["cpu_s"]
        phases = []
        for cycle in range(1, args.cycles + 1):
            for state in ("down", "up"):
                phase = {"phase": f"{state} #{cycle}"}
                started = time.monotonic()
                phase["ip_s"] = round(self.ip_batch([f"link set dev {name} {state}" for name in self.names]), 2)
                wait(args, f"STATE_DB: every port {state}", lambda: self.counted(self.state_count(state, state)),
                     interval=0.05)
                phase["state_db_s"] = round(time.monotonic() - started, 2)
                links = kernel_links(self.ns)
                lost = self.state_mismatches(links)
                phase["state_db_lost"] = len(lost)
                if lost:
                    log(args, f"{state} #{cycle}: {len(lost)} STATE_DB rows differ from the kernel: {lost[:3]}")
                deadline = time.monotonic() + args.view_timeout
                while True:
                    stale = self.view_mismatches(links)
                    if not stale or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
                phase["view_s"] = round(time.monotonic() - started, 2) if not stale else None
                phase["view_stale"] = len(stale)
                phase["view_stale_sample"] = stale[:5]
                phases.append(phase)
                log(args, f"{phase}")
        self.results["surge"] = phases
        self.results["surge_cpu_s"] = round(proc_figures(self.daemon.pid)["cpu_s"] - cpu_before, 2)
        time.sleep(2)  # let the last alert and health events reach the stream
        after = self.api.metrics()
        self.results["after_surge"] = proc_figures(self.daemon.pid)

        self.results["metrics"] = self.metric_figures(after, before)
        self.results["worker_restarts"] = self.metric_figures(after, {})["worker_restarts"]
        stream = self.stream
        self.results["alerts"] = {
            "alert_raised": stream.counts.get("alert_raised", 0),
            "ports_raised": len(stream.raised_per_port),
            "max_raised_per_port": max(stream.raised_per_port.values(), default=0),
            "alert_cleared": stream.counts.get("alert_cleared", 0),
            "port_health_damped": stream.health["damped"], "port_health_released": stream.health["released"],
            "stream_ended": stream.ended,
        }
        text = self.daemon_log.read_text(errors="replace")
        self.results["enobufs_logged"] = len(re.findall(r"EVENT=enobufs", text))
        self.results["resyncs_logged"] = len(re.findall(r"EVENT=resync_after_drops", text))
        self.results["stalls_logged"] = re.findall(r"Worker (\w+) stalled", text)
        links = kernel_links(self.ns)
        self.results["final_state_db_lost"] = len(self.state_mismatches(links))
        self.results["final_appl_db_ports"] = self.appl_count()
        self.results["final_view_stale"] = len(self.view_mismatches(links))

    @staticmethod
    def metric_figures(after, before) -> dict:
        def delta(key):
            return int(after.get(key, 0) - before.get(key, 0))

        return {
            "netlink_messages": sum(int(after[k] - before.get(k, 0)) for k in after
                                    if k.startswith("portsyncd_netlink_messages_total{")),
            "state_db_writes": delta("portsyncd_redis_state_writes_total"),
            "handoff_coalesced": delta("portsyncd_handoff_coalesced_total"),
            "handoff_dropped": sum(int(after[k] - before.get(k, 0)) for k in after
                                   if k.startswith("portsyncd_handoff_dropped_total")),
            "published": {t: delta(f'portsyncd_events_published_total{{type="{t}"}}')
                          for t in ("port_state", "port_health", "alert_raised", "alert_cleared", "counter_bar")},
            "bus_intake_dropped": {p: delta(f'portsyncd_events_dropped_total{{priority="{p}"}}')
                                   for p in ("high", "medium", "low")},
            "stream_low_dropped": delta("portsyncd_stream_events_dropped_total"),
            "stream_closed_slow": delta('portsyncd_stream_clients_closed_total{reason="slow"}'),
            "worker_restarts": {k.split('"')[1]: delta(k) for k in after
                                if k.startswith("portsyncd_worker_restarts_total{") and delta(k)},
        }

    # --- the whole run

    def run(self):
        args = self.args
        self.netns()
        self.redis_start()
        self.seed()
        if args.order == "adopt":
            log(args, f"making {self.n} veth pairs")
            self.results["veth_create_s"] = round(self.make_veths(), 2)
        log(args, "starting portsyncd")
        self.start_daemon()
        self.sync_phase()
        self.surge()

    def cleanup(self):
        if self.stream is not None:
            self.stream.close()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self.daemon is not None:
            self.results["exit_status"] = self.daemon.returncode
        if self.args.keep_log and self.daemon_log.exists():
            shutil.copy(self.daemon_log, self.args.keep_log)
        if self.ns_made:
            started = time.monotonic()
            subprocess.run(["ip", "netns", "del", self.ns], stderr=subprocess.DEVNULL)
            self.results["netns_delete_s"] = round(time.monotonic() - started, 2)
        shutil.rmtree(self.work, ignore_errors=True)


def table(results) -> str:
    r = results
    rows = [
        (f"ports (veth pairs; {r.get('kernel_interfaces', '?')} interfaces in the namespace)", r["ports"]),
        ("order", r["order"]),
        ("veth pairs made and up (one ip -batch), s", r.get("veth_create_s")),
        ("start → READY=1, s", r.get("ready_s")),
        ("  CPU time at READY=1, s", r.get("at_ready", {}).get("cpu_s")),
        ("  RSS at READY=1, MiB", r.get("at_ready", {}).get("rss_mib")),
        ("every port in STATE_DB, s (from READY or veth creation)", r.get("state_db_complete_s")),
        ("APPL_DB PORT_TABLE entries", r.get("appl_db_ports")),
        ("channels know every port (/v1/ports), s", r.get("channels_complete_s")
         if r.get("channels_complete_s") is not None else
         f"never: {r.get('channels_known')} of {r['ports']} within --view-timeout"),
        ("  /v1/ports entries ≠ kernel then (stale stream view)", r.get("sync_view_stale")),
        ("  start-up: bus intake dropped high / medium / low",
         "{high} / {medium} / {low}".format(**r["startup_metrics"]["bus_intake_dropped"])
         if "startup_metrics" in r else None),
        ("  CPU time then, s", r.get("synced", {}).get("cpu_s")),
        ("  RSS then / peak (VmHWM), MiB", f"{r.get('synced', {}).get('rss_mib')} / "
                                             f"{r.get('synced', {}).get('hwm_mib')}"),
    ]
    if "idle_cpu_percent" in r:
        rows.append(("idle, all ports known: daemon CPU, % of one core", r["idle_cpu_percent"]))
    for phase in r.get("surge", []):
        rows.append((f"surge {phase['phase']}: ip -batch, s", phase["ip_s"]))
        rows.append((f"surge {phase['phase']}: until STATE_DB final, s", phase["state_db_s"]))
        rows.append((f"surge {phase['phase']}: STATE_DB rows lost", phase["state_db_lost"]))
        rows.append((f"surge {phase['phase']}: /v1/ports agrees after, s",
                     phase["view_s"] if phase["view_s"] is not None else
                     f"never ({phase['view_stale']} stale)"))
    if "metrics" in r:
        m, a = r["metrics"], r["alerts"]
        rows += [
            ("surge: daemon CPU time, s", r.get("surge_cpu_s")),
            ("surge: kernel link messages read", m["netlink_messages"]),
            ("surge: STATE_DB writes", m["state_db_writes"]),
            ("surge: hand-off coalesced / dropped", f"{m['handoff_coalesced']} / {m['handoff_dropped']}"),
            ("surge: ENOBUFS / resyncs logged", f"{r['enobufs_logged']} / {r['resyncs_logged']}"),
            ("surge: port_state events published", m["published"]["port_state"]),
            ("surge: bus intake dropped high / medium / low",
             "{high} / {medium} / {low}".format(**m["bus_intake_dropped"])),
            ("surge: alert_raised published / on the stream", f"{m['published']['alert_raised']} / "
                                                              f"{a['alert_raised']}"),
            ("surge: ports raised / most raises of one port", f"{a['ports_raised']} / {a['max_raised_per_port']}"),
            ("surge: port_health damped / released on the stream",
             f"{a['port_health_damped']} / {a['port_health_released']}"),
            ("surge: stream cut as slow", m["stream_closed_slow"]),
            ("worker restarts (whole run) / stalls logged",
             f"{r['worker_restarts'] or 0} / {', '.join(r['stalls_logged']) or 'none'}"),
            ("channel intake drops, folded duplicates", "not exposed by the daemon"),
            ("after: RSS / peak (VmHWM), MiB", f"{r['after_surge']['rss_mib']} / {r['after_surge']['hwm_mib']}"),
            ("after: CPU time in all, s", r["after_surge"]["cpu_s"]),
            ("after: STATE_DB rows ≠ kernel (lost)", r["final_state_db_lost"]),
            ("after: APPL_DB PORT_TABLE entries", r["final_appl_db_ports"]),
            ("after: /v1/ports entries ≠ kernel (stale stream view)", r["final_view_stale"]),
        ]
    rows.append(("namespace deletion, s", r.get("netns_delete_s")))
    rows.append(("portsyncd exit status (SIGTERM)", r.get("exit_status")))
    if r.get("error"):
        rows.append(("ERROR", r["error"]))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main():
    args = parse_args()
    if os.geteuid() != 0:
        sys.exit("scale.py must run as root (network namespaces)")
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"not an executable: {args.binary}")
    def interrupt(*_):
        raise KeyboardInterrupt

    # Also when started in the background by a shell, where SIGINT arrives ignored: clean up and report either way.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    run = Run(args)
    status = 0
    try:
        run.run()
    except (Failure, redis.RedisError, OSError, subprocess.SubprocessError) as error:
        run.results["error"] = f"{type(error).__name__}: {error}"
        status = 1
    except KeyboardInterrupt:
        run.results["error"] = "interrupted"
        status = 130
    finally:
        run.cleanup()
    if args.json:
        print(json.dumps(run.results))
    else:
        print(table(run.results))
    if run.results.get("final_state_db_lost") or run.results.get("final_appl_db_ports", run.n) != run.n:
        status = status or 2
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Connection floods against the HTTP API: thousands of idle or half-open connections during a flap storm and a
Redis restart must not starve the port path, the API or the descriptor table, and running out of descriptors
must not make an event loop spin. Prints what it measured (pytest -s) and writes it to Tests/artifacts/."""
import json
import os
import resource
import socket
import threading
import time
from pathlib import Path

from conftest import APPL_DB, CONFIG_DB, Flapper, Miss, default_port_fields, in_netns, wait_for
from test_http import Api

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_own_fd_limit(wanted=20_000):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(max(soft, wanted), hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def thread_ticks(pid):
    """{tid: (name, utime + stime in clock ticks)} of every thread of `pid`."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as handle:
                text = handle.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        out[tid] = (name, int(fields[11]) + int(fields[12]))
    return out


def busiest_threads(pid, seconds=3.0):
    """Each thread's CPU use over `seconds`, in percent of one core, busiest first."""
    before = thread_ticks(pid)
    time.sleep(seconds)  # a measurement window: CPU use is ticks over a length of time, there is no event
    after = thread_ticks(pid)
    usage = []
    for tid, (name, ticks) in after.items():
        start = before.get(tid, (name, ticks))[1]
        usage.append((100.0 * (ticks - start) / CLK_TCK / seconds, name, tid))
    return sorted(usage, reverse=True)


class Sampler(threading.Thread):
    """Peaks of the daemon's descriptor count and RSS, sampled every 100 ms until stopped."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.fd_peak = 0
        self.rss_peak = 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            self.fd_peak = max(self.fd_peak, fd_count(self.pid))
            self.rss_peak = max(self.rss_peak, rss_kib(self.pid))
            self.stopping.wait(0.1)  # one sample per 100 ms until stopped

    def stop(self):
        self.stopping.set()
        self.join(timeout=5)


def open_connections(ns_name, port, count, payload=None, timeout=2.0):
    """`count` connections made from inside the namespace, each sending `payload` (if any); the ones that could
    not connect are counted, not raised."""
    sockets = in_netns(ns_name, lambda: [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)])
    failed = 0
    for sock in sockets:
        sock.settimeout(timeout)
        try:
            sock.connect(("127.0.0.1", port))
            if payload:
                sock.sendall(payload)
        except OSError:
            failed += 1
    return sockets, failed


def first_answer_after(api, deadline_s=30.0):
    """Seconds until a new client gets an answer to GET /v1/health/live."""
    started = time.monotonic()
    wait_for(lambda: api.get("/v1/health/live")[0] == 200, timeout=deadline_s, interval=0.02, ignore=(OSError,),
             what="an answer to a new client")
    return time.monotonic() - started


def report(name, figures):
    print(f"\n{name}: " + ", ".join(f"{key}={value}" for key, value in figures.items()))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")


def test_a_connection_flood_during_a_flap_storm_and_a_redis_restart(rig):
    """2000 connections sending half a request head and 2000 sending nothing, during a flap storm, with Redis
    restarted in the middle: STATE_DB equals the kernel at the end, no daemon thread uses more than 5 % of a core
    while the idle connections are held, descriptors and RSS stay bounded, and a new client is answered soon
    after the flood ends."""
    raise_own_fd_limit()
    names = [f"Ethernet{4 * i}" for i in range(16)]
    daemon = rig.cold_start(names, config={"http": {"port": 0, "request_head_timeout_ms": 30000}})
    api = Api(rig, daemon)
    rig.add_ports(names)
    rig.wait_state_matches_kernel(names)
    fd_before, rss_before = fd_count(daemon.pid), rss_kib(daemon.pid)
    sampler = Sampler(daemon.pid)
    sampler.start()
    flapper = Flapper(rig, names)
    flapper.start()
    held = []
    try:
        half, failed_half = open_connections(rig.ns.name, api.port, 2000,
                                             b"GET /v1/ports HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        held += half
        # Redis restarted with what SONiC keeps across it (CONFIG_DB, and APPL_DB as orchagent left it).
        rig.redis.kill()
        rig.redis.start(seed={
            CONFIG_DB: {f"PORT|{name}": default_port_fields(i) for i, name in enumerate(names)},
            APPL_DB: {**{f"PORT_TABLE:{name}": default_port_fields(i) for i, name in enumerate(names)},
                      "PORT_TABLE:PortConfigDone": {"count": str(len(names))},
                      "PORT_TABLE:PortInitDone": {"lanes": "0"}}})
        rig.reset_clients()
        silent, failed_silent = open_connections(rig.ns.name, api.port, 2000)
        held += silent
        flapper.wait_batches(5)
    finally:
        flapper.stop()
    rig.wait_state_matches_kernel(names, timeout=30)
    assert daemon.alive
    # The idle connections are still held (the head timeout is 30 s): nobody spins.
    usage = busiest_threads(daemon.pid, 3.0)
    metrics_during = None
    sampler.stop()
    for sock in held:
        sock.close()
    answer_s = first_answer_after(api)
    metrics_during = api.get("/metrics")[2].decode()
    rig.wait_state_matches_kernel(names)
    figures = {
        "connections_opened": 4000, "connect_failures": failed_half + failed_silent,
        "fd_before": fd_before, "fd_peak": sampler.fd_peak, "rss_before_kib": rss_before,
        "rss_peak_kib": sampler.rss_peak, "busiest_thread_cpu_percent": round(usage[0][0], 2),
        "busiest_thread": usage[0][1], "seconds_to_answer_after_flood": round(answer_s, 3),
        "refused_total": next((line.split()[-1] for line in metrics_during.splitlines()
                               if line.startswith("portsyncd_http_connections_refused_total")), None),
    }
    report("http_flood", figures)
    assert usage[0][0] < 5.0, usage[:5]
    # http.max_connections, at most 64 refused connections draining their input, refused connections between
    # their accept and their close, and Redis reconnects: bounded by the cap, not by the 4000 of the flood.
    assert sampler.fd_peak < fd_before + 512 + 64 + 192, figures
    assert sampler.rss_peak < rss_before + 256 * 1024, figures
    assert answer_s < 5.0, figures
    assert int(figures["refused_total"] or 0) >= 4000 - 512 - figures["connect_failures"], figures
    assert daemon.alive


def test_running_out_of_descriptors_backs_off_instead_of_spinning(rig):
    """With the daemon's descriptor limit below what a flood needs, accept fails with EMFILE: the listening socket
    backs off (counted) instead of an event loop spinning on it; once descriptors are free the API answers."""
    raise_own_fd_limit()
    daemon = rig.start(config={"http": {"port": 0, "request_head_timeout_ms": 30000}})
    api = Api(rig, daemon)
    assert api.get("/v1/health/live")[0] == 200
    soft, hard = resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE)
    limit = fd_count(daemon.pid) + 30
    resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE, (limit, hard))
    held, failed = open_connections(rig.ns.name, api.port, 150, timeout=1.0)
    try:
        wait_for(lambda: fd_count(daemon.pid) >= limit - 2 or Miss(fd_count(daemon.pid)),
                 what="the daemon at its descriptor limit")
        daemon.wait_log(r"EVENT=http_accept_backoff", what="the accept loop backing off at the limit")
        usage = busiest_threads(daemon.pid, 3.0)
    finally:
        for sock in held:
            sock.close()
    resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE, (soft, hard))
    answer_s = first_answer_after(api)
    metrics = api.get("/metrics")[2].decode()
    backoffs = next((line.split()[-1] for line in metrics.splitlines()
                     if line.startswith("portsyncd_http_accept_backoffs_total")), "0")
    report("http_emfile", {"fd_limit": limit, "connect_failures": failed,
                           "busiest_thread_cpu_percent": round(usage[0][0], 2), "busiest_thread": usage[0][1],
                           "seconds_to_answer_after": round(answer_s, 3), "accept_backoffs": backoffs})
    assert usage[0][0] < 5.0, usage[:5]
    assert int(backoffs) > 0, backoffs
    assert answer_s < 5.0
    daemon.wait_log(r"EVENT=http_accept_backoff", what="the backoff logged")
    assert daemon.alive

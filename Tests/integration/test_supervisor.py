"""Supervision, as an operator meets it: a failing worker restarts with its backoff, a critical one past its
restart intensity ends the process (exit 1, for systemd to restart), a stalled critical worker withholds
WATCHDOG=1, a restarted netlink worker reconciles Redis with the kernel, and the metrics file says all of it.

Worker faults come through the daemon's test-only fault hook (`PORTSYNCD_FAULT_FILE`, compiled into debug builds
only): a worker's internal error and a stuck queue cannot be caused from outside on demand. `fail W` makes worker W
report a failure through the same call its own error paths use; `stall W MS` really blocks W's queue."""
import re
import signal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import wait_for

FAST_SUPERVISOR = {
    "restart_initial_ms": 50, "restart_max_ms": 400, "restart_jitter_percent": 0, "restart_intensity": 3,
    "restart_period_ms": 60000, "heartbeat_interval_ms": 50, "stall_timeout_ms": 400,
}


class Faults:
    """Writes fault commands for the daemon to pick up (it deletes the file once read)."""

    def __init__(self, rig):
        self.path = rig.tmp / "faults"

    def env(self):
        return {"PORTSYNCD_FAULT_FILE": str(self.path)}

    def inject(self, line):
        wait_for(lambda: not self.path.exists(), what="the previous fault command to be taken")
        temporary = self.path.with_name("faults.tmp")
        temporary.write_text(line + "\n")
        temporary.rename(self.path)


def metrics(path):
    """The metrics file parsed by Prometheus's own client parser: {(name, labels...): value}."""
    values = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def start(rig, faults, supervisor=None, extra=None, env=None):
    config = {"supervisor": dict(FAST_SUPERVISOR, **(supervisor or {})),
              "telemetry": {"metrics_file": str(rig.tmp / "portsyncd.prom")}}
    for section, keys in (extra or {}).items():
        config.setdefault(section, {}).update(keys)
    return rig.start(config=config, env=dict(faults.env(), **(env or {})))


def test_failing_worker_restarts_with_exponential_backoff_then_runs_degraded(rig):
    """An optional worker that keeps failing is restarted after 50, 100 and 200 ms (the configured backoff,
    jitter 0), and after its 3 allowed restarts it is stopped: STATUS= and the metrics say the daemon is degraded,
    and ports keep syncing."""
    faults = Faults(rig)
    daemon = start(rig, faults)
    daemon.wait_log(r"Adaptive|Ready")
    for attempt, delay in ((1, 50), (2, 100), (3, 200)):
        faults.inject("fail analytics")
        daemon.wait_log(rf"Worker analytics failed \(injected fault\); restart {attempt} of 3 within 60 s, in {delay} ms")
        wait_for(lambda: sum("Restarting worker analytics" in line for line in daemon.log_lines()) == attempt,
                 what=f"restart {attempt}")
    faults.inject("fail analytics")
    daemon.wait_log(r"Worker analytics failed \(injected fault\) after 3 restarts within 60 s; stopped, running degraded")
    wait_for(lambda: any(a.startswith("STATUS=") and "degraded: analytics failed" in a
                         for a in daemon.notify.assignments()), what="STATUS= naming the degraded worker")
    prom = rig.tmp / "portsyncd.prom"

    def degraded_in_metrics():
        values = metrics(prom)
        return (values.get(("portsyncd_worker_up", (("criticality", "optional"), ("worker", "analytics")))) == 0
                and values.get(("portsyncd_worker_restarts_total", (("worker", "analytics"),))) == 3
                and values.get(("portsyncd_worker_up", (("criticality", "critical"), ("worker", "netlink")))) == 1)
    wait_for(degraded_in_metrics, what="metrics: analytics down after 3 restarts, netlink up")
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0")
    rig.wait_state_matches_kernel(["Ethernet0"])
    assert daemon.alive


def test_critical_worker_past_its_restart_intensity_exits_1(rig):
    """The netlink worker failing a 4th time within the period (intensity 3) ends the process with status 1, so
    that systemd restarts it; each earlier failure was restarted and synced again."""
    faults = Faults(rig)
    daemon = start(rig, faults)
    for attempt in (1, 2, 3):
        faults.inject("fail netlink")
        daemon.wait_log(rf"Worker netlink failed \(injected fault\); restart {attempt} of 3")
        wait_for(lambda: sum("Netlink sockets opened again" in line for line in daemon.log_lines()) == attempt,
                 what=f"netlink restart {attempt}")
    faults.inject("fail netlink")
    assert daemon.wait_exit(10) == 1
    assert re.search(r"Worker netlink failed \(injected fault\) after 3 restarts within 60 s; it is critical: "
                     r"exiting so that systemd restarts portsyncd", daemon.stderr())
    assert any(a.startswith("STATUS=failed: critical worker netlink") for a in daemon.notify.assignments())


def test_restarted_netlink_worker_reconciles_what_changed_while_it_was_down(rig):
    """Ports created, deleted and taken down while the netlink worker waits for its restart are in STATE_DB as the
    kernel has them once it is back: the restart opens new sockets and dumps every link."""
    faults = Faults(rig)
    daemon = start(rig, faults, supervisor={"restart_initial_ms": 1500, "restart_max_ms": 3000})
    names = ["Ethernet0", "Ethernet4", "Ethernet8"]
    rig.add_synced_ports(names[:2])
    faults.inject("fail netlink")
    daemon.wait_log(r"Worker netlink failed \(injected fault\); restart 1 of 3 within 60 s, in 1500 ms")
    rig.ns.ip("link", "set", "dev", "Ethernet0", "down")
    rig.ns.ip("link", "del", "Ethernet4")
    rig.seed_appl("Ethernet8")
    rig.add_port("Ethernet8")
    daemon.wait_log(r"Netlink sockets opened again")
    rig.wait_state_matches_kernel(["Ethernet0", "Ethernet8"])
    wait_for(lambda: rig.state_row("Ethernet4") == {}, what="Ethernet4 deleted from STATE_DB")
    assert daemon.alive


def test_stalled_critical_worker_withholds_the_watchdog(rig):
    """With WATCHDOG_USEC set, a stuck port queue (the netlink and redis workers' queue) stops WATCHDOG=1 within
    the stall timeout: each watchdog tick sends STATUS= naming the worker instead. When the queue moves again, the
    pings resume."""
    faults = Faults(rig)
    daemon = start(rig, faults, env={"WATCHDOG_USEC": "200000"})
    wait_for(lambda: daemon.notify.count("WATCHDOG=1") >= 3, what="watchdog pings before the stall")
    faults.inject("stall netlink 2500")
    daemon.wait_log(r"Critical worker (netlink|redis) stalled \(no heartbeat for [0-9.]+ s\); withholding WATCHDOG=1")
    daemon.wait_log(r"Worker (netlink|redis) is beating again", timeout=15)
    wait_for(lambda: daemon.notify.assignments()[-1] == "WATCHDOG=1"
             or "WATCHDOG=1" in daemon.notify.assignments()[-5:], what="pings again after the stall")
    sequence = daemon.notify.assignments()
    first_withheld = next(i for i, a in enumerate(sequence) if "WATCHDOG=1 withheld" in a)
    resumed = next(i for i in range(first_withheld, len(sequence)) if sequence[i] == "WATCHDOG=1")
    withheld = [a for a in sequence[first_withheld:resumed] if a.startswith("STATUS=")]
    assert len([a for a in withheld if "WATCHDOG=1 withheld" in a]) >= 3, withheld
    assert all("netlink" in a or "redis" in a for a in withheld if "withheld" in a)
    assert daemon.alive


def test_stalled_critical_worker_without_a_watchdog_exits_1(rig):
    """Without a systemd watchdog nothing would ever restart a stuck port path, so the daemon exits 1 itself."""
    faults = Faults(rig)
    daemon = start(rig, faults)
    faults.inject("stall netlink 5000")
    assert daemon.wait_exit(10) == 1
    assert "no watchdog is set: exiting so that the service manager restarts portsyncd" in daemon.stderr()


def test_stalled_optional_worker_is_restarted(rig):
    """A stuck optional worker counts as a failure: reported by WORKER and restarted once its queue moves."""
    faults = Faults(rig)
    daemon = start(rig, faults)
    faults.inject("stall thresholds 1500")
    daemon.wait_log(r"Worker thresholds stalled \(no heartbeat for [0-9.]+ s\); restarting it")
    daemon.wait_log(r"Restarting worker thresholds")
    assert daemon.alive


INVALID_RELOADS = [
    ("syntax", '[log]\nlevel = = "notice"\n', 2, 9, "syntax error: Error while parsing value"),
    ("unterminated string", '[log]\nlevel = "notice\n', 2, 16, "syntax error"),
    ("duplicate key", '[log]\nlevel = "info"\nlevel = "notice"\n', 3, 9, "cannot redefine existing string 'level'"),
    ("duplicate section", '[log]\nlevel = "info"\n[log]\nlevel = "info"\n', 3, 1, "cannot redefine existing table 'log'"),
    ("unknown section", "[bogus]\nx = 1\n", 1, 1, 'unknown section "bogus"'),
    ("unknown key", "[redis]\nbogus = 1\n", 2, 1, 'unknown key "bogus" in [redis]'),
    ("string for integer", '[redis]\nreconnect_initial_ms = "fast"\n', 2, 1,
     "redis.reconnect_initial_ms must be an integer, not string"),
    ("float for integer", "[daemon]\nstatus_interval_ms = 1.5\n", 2, 1,
     "daemon.status_interval_ms must be an integer, not floating-point number"),
    ("boolean for integer", "[daemon]\nstatus_interval_ms = true\n", 2, 1,
     "daemon.status_interval_ms must be an integer, not bool"),
    ("array for integer", "[pipeline]\nstream_buffer_capacity = [1]\n", 2, 1,
     "pipeline.stream_buffer_capacity must be an integer, not array"),
    ("date for integer", "[daemon]\ngraceful_shutdown_timeout_ms = 1979-05-27\n", 2, 1,
     "daemon.graceful_shutdown_timeout_ms must be an integer, not date"),
    ("below range", "[daemon]\nstatus_interval_ms = 10\n", 2, 1,
     "daemon.status_interval_ms = 10 is out of range 100...3600000"),
    ("above range", "[netlink]\nreceive_buffer_bytes = 99999999999\n", 2, 1,
     "netlink.receive_buffer_bytes = 99999999999 is out of range 4096...1073741824"),
    ("negative", "[supervisor]\nrestart_intensity = -1\n", 2, 1,
     "supervisor.restart_intensity = -1 is out of range 0...1000"),
    ("bad log level", '[log]\nlevel = "loud"\n', 2, 1, 'log.level = "loud" is not one of trace, debug'),
    ("bad drop policy", '[pipeline]\ndrop_policy = "random"\n', 2, 1,
     'pipeline.drop_policy = "random" is not one of block, drop_oldest'),
    ("string for boolean", '[sonic]\nadopt_existing_interfaces = "yes"\n', 2, 1,
     "sonic.adopt_existing_interfaces must be a boolean, not string"),
    ("relative path", '[redis]\ndatabase_config = "db.json"\n', 2, 1,
     'redis.database_config = "db.json" must be an absolute path'),
    ("crossed bounds", "[redis]\nreconnect_initial_ms = 500\nreconnect_max_ms = 100\n", 2, 1,
     "redis.reconnect_initial_ms (500) must not exceed redis.reconnect_max_ms (100)"),
    ("stall within heartbeat", "[supervisor]\nheartbeat_interval_ms = 5000\nstall_timeout_ms = 1000\n", 3, 1,
     "supervisor.stall_timeout_ms (1000) must exceed supervisor.heartbeat_interval_ms (5000)"),
    ("section not a table", "log = 1\n", 1, 1, '"log" must be a table ([log])'),
    ("NUL escape", '[redis]\nunix_socket = "/tmp/a\\u0000b"\n', 2, 22, "a NUL character (\\u0000) is not allowed"),
]


def test_twenty_kinds_of_invalid_reload_each_keep_the_old_config(rig):
    """Each invalid file, saved atomically and signalled with SIGHUP, is refused with file:line:col and its reason;
    STATUS= shows it, config_last_reload_successful is 0, and the daemon keeps the old configuration (its log level
    still notice: no info lines) and keeps syncing. A valid file afterwards brings the metric back to 1."""
    assert len(INVALID_RELOADS) >= 20
    config_path = rig.write_config({"telemetry": {"metrics_file": str(rig.tmp / "portsyncd.prom")}})
    valid = config_path.read_text()
    daemon = rig.start(config_path=config_path)
    prom = rig.tmp / "portsyncd.prom"
    wait_for(lambda: prom.exists() and metrics(prom).get(("portsyncd_config_last_reload_successful", ())) == 1,
             what="config_last_reload_successful 1")
    for count, (case, text, line, column, message) in enumerate(INVALID_RELOADS, start=1):
        temporary = config_path.with_name("edit.tmp")
        temporary.write_text(text)
        temporary.rename(config_path)
        daemon.signal(signal.SIGHUP)
        expected = re.compile(re.escape(f"Reload refused, keeping the old configuration: {config_path}:{line}:{column}: ")
                              + r"(syntax error: [^:]*: )?" + re.escape(message))
        wait_for(lambda: any(expected.search(entry) for entry in daemon.log_lines()), what=f"{case}: {expected}")
        wait_for(lambda: any(a.startswith("STATUS=") and f"config refused, old kept: {config_path}:{line}:{column}"
                             in a for a in daemon.notify.assignments()), what=f"{case}: STATUS= naming it")
        wait_for(lambda: metrics(prom).get(("portsyncd_config_last_reload_successful", ())) == 0,
                 what=f"{case}: config_last_reload_successful 0")
    assert not any("Configuration reloaded" in entry for entry in daemon.log_lines())
    config_path.write_text(valid)
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"Configuration reloaded: no change")
    wait_for(lambda: metrics(prom).get(("portsyncd_config_last_reload_successful", ())) == 1,
             what="config_last_reload_successful back to 1")
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0")
    rig.wait_state_matches_kernel(["Ethernet0"])


def test_reload_protocol_and_applied_versus_restart_keys(rig):
    """SIGHUP: RELOADING=1 with MONOTONIC_USEC=, then READY=1; the journal lists the changed keys, which were
    applied and which need a restart; a reloaded supervisor setting takes effect (the next failure backs off by
    the new initial delay)."""
    faults = Faults(rig)
    config_path = rig.write_config({"supervisor": FAST_SUPERVISOR})
    daemon = rig.start(config_path=config_path, env=faults.env())
    changed = rig.write_config({"supervisor": dict(FAST_SUPERVISOR, restart_initial_ms=70),
                                "pipeline": {"stream_buffer_capacity": 4096}})
    before = len(daemon.notify.assignments())
    config_path.write_text(changed.read_text())
    daemon.signal(signal.SIGHUP)
    line = daemon.wait_log(r"Configuration reloaded: changed ").split(" APPLIED=")[0]
    assert "pipeline.stream_buffer_capacity" in line and "supervisor.restart_initial_ms" in line
    assert line.endswith("; applied: supervisor.restart_initial_ms; "
                         "needs a restart to take effect: pipeline.stream_buffer_capacity"), line
    wait_for(lambda: "READY=1" in daemon.notify.assignments()[before:], what="READY=1 after the reload")
    after = daemon.notify.assignments()[before:]
    reloading = after.index("RELOADING=1")
    assert re.fullmatch(r"MONOTONIC_USEC=\d+", after[reloading + 1])
    assert after.index("READY=1") > reloading
    faults.inject("fail analytics")
    daemon.wait_log(r"Worker analytics failed \(injected fault\); restart 1 of 3 within 60 s, in 70 ms")


def test_metrics_file_is_valid_prometheus_text_with_bounded_labels(rig):
    """The metrics file parses with Prometheus's client parser, carries the pipeline and worker series, and a
    hostile interface name creates no series."""
    faults = Faults(rig)
    daemon = start(rig, faults)
    rig.add_synced_ports(["Ethernet0"])
    rig.ns.ip("link", "add", 'Ethernet"{x}', "type", "veth", "peer", "name", "hostilepeer", check=False)
    prom = rig.tmp / "portsyncd.prom"
    wait_for(lambda: prom.exists() and metrics(prom).get(("portsyncd_ports_synced", ())) == 1,
             what="metrics with one synced port")
    values = metrics(prom)
    names = {name for name, _ in values}
    for expected in ("portsyncd_netlink_messages_total", "portsyncd_handoff_dropped_total",
                     "portsyncd_handoff_wait_seconds_bucket", "portsyncd_redis_write_latency_seconds_count",
                     "portsyncd_worker_up", "portsyncd_config_last_reload_successful", "portsyncd_ready"):
        assert expected in names, expected
    assert values[("portsyncd_ready", ())] == 1
    assert not any("x}" in str(labels) for _, labels in values), "a label made from an interface name"
    assert daemon.alive


def test_a_trap_ends_the_process_and_the_next_start_reconciles_redis(rig):
    """What in-process supervision does not cover: a Swift trap (SIGILL on x86_64, SIGTRAP on arm64) ends the
    process at once. systemd's Restart= starts it again, and that start's sync makes STATE_DB equal the kernel,
    including what changed while no daemon ran. Here the trap is a SIGILL sent to the daemon (a real one cannot be
    caused from outside), and the restart is done as systemd would: the same command again, with the shipped
    defaults. orchagent consumed the first start's PortConfigDone, so the second start is a rejoin: nothing is
    brought down (statement 31)."""
    names = ["Ethernet0", "Ethernet4", "Ethernet8"]
    daemon = rig.start(env={"SWIFT_BACKTRACE": "enable=no"})
    rig.orchagent_pop()
    rig.add_synced_ports(names[:2])
    daemon.signal(signal.SIGILL)
    assert daemon.wait_exit(10) == -signal.SIGILL
    rig.ns.ip("link", "set", "dev", "Ethernet0", "down")
    rig.ns.ip("link", "del", "Ethernet4")
    rig.seed_appl("Ethernet8")
    rig.add_port("Ethernet8")
    second = rig.start()
    second.wait_log(r"EVENT=start KIND=rejoin")
    rig.wait_state_matches_kernel(["Ethernet0", "Ethernet8"])
    wait_for(lambda: rig.state_row("Ethernet4") == {}, what="Ethernet4, gone from the kernel, gone from STATE_DB")

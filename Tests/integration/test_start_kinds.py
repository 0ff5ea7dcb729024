"""The three kinds of start (contract statements 31 and 32): cold, warm and rejoin, with the shipped defaults.

A daemon restarted alone (systemd's Restart=, a crash, an operator) finds a running switch: APPL_DB still holds the
PortConfigDone that orchagent consumed. That start is a rejoin: no APPL_DB write, no interface brought down, no
STATE_DB row of a live port deleted, and STATE_DB made equal to the kernel. None of these tests changes
`[sonic] adopt_existing_interfaces` (false by default): the restart is checked as it ships.
"""
import re
import signal

import pytest

from conftest import APPL_DB, STATE_DB, Flapper, port_name, wait_for

STABLE = 8
FLAPPING = 8


def names(count, first=0):
    return [port_name(i) for i in range(first, first + count)]


def state_deletes(rig, since, prefix=b"PORT_TABLE|Ethernet"):
    return [e.key for e in rig.events.since(since, STATE_DB) if e.event == "del" and e.key.startswith(prefix)]


def appl_writes(rig, since):
    return [(e.event, e.key) for e in rig.events.since(since, APPL_DB)]


def config_done_writes(rig, since=0):
    return rig.events.count(APPL_DB, "hset", b"_PORT_TABLE:PortConfigDone", since)


def start_line(daemon):
    return daemon.wait_log(r"EVENT=start\b", what="the start line (EVENT=start KIND=…)")


def running_switch(rig, env=None):
    """A cold start as SONiC does it, then the switch runs."""
    ports = names(STABLE + FLAPPING)
    daemon = rig.running_switch(ports, env=env)
    assert "KIND=cold" in start_line(daemon)
    return daemon, ports


def crash(daemon, signum):
    daemon.signal(signum)
    code = daemon.wait_exit(15)
    assert code != 0 or signum == signal.SIGTERM, code


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV, signal.SIGABRT],
                         ids=["sigkill", "sigterm", "sigsegv", "sigabrt"])
def test_restart_mid_storm_rejoins_without_bringing_a_port_down(rig, signum):
    """The daemon dies in the middle of a flap storm (SIGKILL, SIGTERM, a crash, the watchdog's SIGABRT) and is
    started again with the same command, as systemd's Restart= does. The new process rejoins: it brings no port
    down, deletes no STATE_DB row, writes nothing to APPL_DB (no copy, no second PortConfigDone, PortInitDone is
    already there), says so (KIND=rejoin in the journal, STATUS=, the metric), and STATE_DB equals the kernel."""
    env = {"SWIFT_BACKTRACE": "enable=no"}  # as the unit sets it: a crash ends the process at once
    first, ports = running_switch(rig, env)
    stable, flapping = ports[:STABLE], ports[STABLE:]
    mark = rig.events.mark()
    flapper = Flapper(rig, flapping)
    flapper.start()
    try:
        flapper.wait_batches(10)
        crash(first, signum)
        flapper.wait_batches(5)
        second = rig.start(env=env)
        flapper.wait_batches(10)
    finally:
        flapper.stop()
    line = start_line(second)
    assert "KIND=rejoin" in line and "REASON=" in line, line
    links = rig.links()
    assert [name for name in stable if not links[name.encode()].admin_up] == []
    assert not any("Old interface" in line for line in second.log_lines())
    rig.wait_state_matches_kernel(ports)
    assert state_deletes(rig, mark) == []
    assert appl_writes(rig, mark) == []
    assert config_done_writes(rig) == 1
    wait_for(lambda: any(a.startswith("STATUS=ready (rejoin start)") for a in second.notify.assignments()),
             what="STATUS= naming the rejoin")
    for name in stable:  # brought down by nobody, still up in STATE_DB
        assert rig.state_row(name)["admin_status"] == "up"
    assert second.alive


def test_rejoin_keeps_fields_other_daemons_wrote_and_deletes_only_rows_of_ports_gone(rig):
    """Statement 32: a rejoin writes its four fields into each live port's row (a field portsorch wrote stays)
    and deletes only the rows of ports the kernel no longer has (gone while no daemon ran)."""
    daemon, ports = running_switch(rig)
    for name in ports:
        rig.state.hset(b"PORT_TABLE|" + name.encode(), b"host_tx_ready", b"true")
    assert daemon.stop() == 0
    gone = ports[:2]
    for name in gone:
        rig.ns.ip("link", "del", name)
    rig.ns.ip("link", "set", "dev", ports[2], "down")
    mark = rig.events.mark()
    second = rig.start()
    assert "KIND=rejoin" in start_line(second)
    live = ports[2:]
    rig.wait_state_matches_kernel(live)
    wait_for(lambda: all(rig.state_row(name) == {} for name in gone), what="rows of the ports gone deleted")
    assert sorted(state_deletes(rig, mark)) == sorted(b"PORT_TABLE|" + name.encode() for name in gone)
    for name in live:
        assert rig.state_row(name)["host_tx_ready"] == "true"
    for name in gone:
        second.wait_log(rf"Port {name} has a STATE_DB row but no interface this process syncs \(rejoin start\)")
    assert appl_writes(rig, mark) == []


def test_rejoin_writes_port_init_done_only_when_appl_db_lacks_it(rig):
    """A rejoin writes PortInitDone once every configured port is seen, if APPL_DB has none (neither consumed nor
    pending), and never PortConfigDone."""
    daemon, ports = running_switch(rig)
    assert daemon.stop() == 0
    rig.appl.delete(b"PORT_TABLE:PortInitDone")
    mark = rig.events.mark()
    second = rig.start()
    assert "KIND=rejoin" in start_line(second)
    wait_for(lambda: rig.appl.exists(b"_PORT_TABLE:PortInitDone"), what="PortInitDone written again")
    writes = appl_writes(rig, mark)
    assert all(key in (b"_PORT_TABLE:PortInitDone", b"PORT_TABLE_KEY_SET") for _, key in writes), writes
    assert config_done_writes(rig) == 1


def test_pending_port_config_done_is_a_cold_start_again(rig):
    """PortConfigDone written by an earlier start but not consumed yet (orchagent not started): orchagent has
    created no host interface, so the start is cold again (the existing interfaces are still the old ones)."""
    rig.configure_ports(["Ethernet0"])
    first = rig.start()
    assert first.stop() == 0
    rig.add_port("Ethernet0")
    second = rig.start()
    line = start_line(second)
    assert "KIND=cold" in line and "not consumed it yet" in line, line
    wait_for(lambda: not rig.ns.link("Ethernet0").admin_up, what="Ethernet0 brought down as an old interface")


def test_flushed_appl_db_is_a_cold_start(rig):
    """swss restarted (APPL_DB flushed) while no daemon ran: the start is SONiC's cold start."""
    daemon, ports = running_switch(rig)
    assert daemon.stop() == 0
    rig.appl.flushdb()
    second = rig.start()
    assert "KIND=cold" in start_line(second)
    wait_for(lambda: rig.producer_pending("PortConfigDone") == {b"count": str(len(ports)).encode()},
             what="PortConfigDone written again")
    wait_for(lambda: not rig.ns.link(ports[0]).admin_up, what="old interfaces brought down")


def test_warm_start_deletes_rows_of_ports_gone_while_down(rig):
    """Warm restart (statements 2, 7, 24): as before, plus the rows of ports the kernel no longer has are
    deleted; the live ports' rows are never deleted."""
    daemon, ports = running_switch(rig)
    assert daemon.stop() == 0
    rig.enable_warm("system", "3")
    gone = ports[-4:]
    for name in gone:
        rig.ns.ip("link", "del", name)
    mark = rig.events.mark()
    second = rig.start()
    line = start_line(second)
    assert "KIND=warm" in line and "RESTORE_COUNT=4" in line, line
    live = ports[:-4]
    rig.wait_state_matches_kernel(live)
    wait_for(lambda: all(rig.state_row(name) == {} for name in gone), what="rows of the ports gone deleted")
    assert sorted(state_deletes(rig, mark)) == sorted(b"PORT_TABLE|" + name.encode() for name in gone)
    assert rig.state.hget(b"WARM_RESTART_TABLE|portsyncd", b"restore_count") == b"4"


def test_start_kind_and_ports_in_metrics(rig):
    """The start kind and the configured ports by sync state are metrics an alert can be written on."""
    rig.configure_ports(["Ethernet0", "Ethernet4", "Ethernet8"])
    rig.add_port("Ethernet0")  # exists before the cold start: an old interface
    daemon = rig.start(config={"telemetry": {"metrics_file": str(rig.tmp / "metrics.prom")}})
    rig.orchagent_pop()
    rig.seed_appl("Ethernet4")
    rig.add_port("Ethernet4")
    rig.wait_state_matches_kernel(["Ethernet4"])

    def metrics():
        path = rig.tmp / "metrics.prom"
        text = path.read_text() if path.exists() else ""
        values = dict(re.findall(r"^(portsyncd_(?:start_kind|ports_configured|ports_ignored|configured_ports)"
                                 r"(?:\{[^}]*\})?) (\S+)$", text, re.M))
        want = {
            'portsyncd_start_kind{kind="cold"}': "1", 'portsyncd_start_kind{kind="rejoin"}': "0",
            "portsyncd_ports_configured": "3", "portsyncd_ports_ignored": "1",
            'portsyncd_configured_ports{sync_state="synced"}': "1",
            'portsyncd_configured_ports{sync_state="ignored_old_interface"}': "1",
            'portsyncd_configured_ports{sync_state="not_in_kernel"}': "1",
        }
        got = {k: values.get(k) for k in want}
        return True if got == want else got

    wait_for(metrics, what="start kind and port sync states in the metrics file")
    wait_for(lambda: any("2 of 3 configured ports not in STATE_DB (1 ignored_old_interface, 1 not_in_kernel)" in a
                         for a in daemon.notify.assignments()), what="STATUS= naming the ports not in STATE_DB")

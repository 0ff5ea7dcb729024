"""What SONiC changes under a running daemon: APPL_DB flushed (statement 33) and CONFIG_DB LOGGER|portsyncd
(statement 34), with the shipped defaults."""
import signal
import time

from conftest import APPL_DB, CONFIG_DB, Flapper, OrchagentEmulator, default_port_fields, port_name, wait_for

PORTS = 8


def names(count=PORTS):
    return [port_name(i) for i in range(count)]


def config_done_writes(rig, since=0):
    return rig.events.count(APPL_DB, "hset", b"_PORT_TABLE:PortConfigDone", since)


def running_switch(rig, count=PORTS):
    ports = names(count)
    return rig.running_switch(ports), ports


def syncd_recreates(rig, ports):
    """What syncd does after a swss restart: the old netdevs go and new ones (new ifindexes) come."""
    rig.ns.batch([f"link del {name}" for name in ports])
    rig.add_ports(ports)


def test_appl_db_flush_under_a_running_daemon_is_a_cold_start_again(rig):
    """swss restarted under the daemon (swss.sh FLUSHes APPL_DB): within a second the daemon notices that
    PortConfigDone is gone and runs SONiC's cold start again in the same process: a new old-interface snapshot
    (the netdevs present are brought down and ignored, their rows deleted), the CONFIG_DB copy, PortConfigDone,
    and PortInitDone once every port is seen again (new netdevs, after orchagent consumed the copy)."""
    daemon, ports = running_switch(rig)
    flushed_at = time.monotonic()
    rig.appl.flushdb()
    wait_for(lambda: rig.producer_pending("PortConfigDone") == {b"count": str(PORTS).encode()}, timeout=5,
             what="PortConfigDone written again after the flush")
    elapsed = time.monotonic() - flushed_at
    print(f"flush -> PortConfigDone re-written: {elapsed * 1000:.0f} ms")
    assert elapsed < 3, elapsed  # generous: the watcher looks every 500 ms
    daemon.wait_log(r"APPL_DB has no PortConfigDone any more .* EVENT=appl_db_flushed")
    daemon.wait_log(r"Cold start after the flush done in \d+ ms: 8 ports copied")
    assert config_done_writes(rig) == 2
    wait_for(lambda: not any(rig.links()[name.encode()].admin_up for name in ports),
             what="the old interfaces brought down")
    wait_for(lambda: all(rig.state_row(name) == {} for name in ports), what="rows of the old interfaces deleted")
    popped = dict(rig.orchagent_pop())
    assert set(ports) <= {key.decode() for key in popped}
    syncd_recreates(rig, ports)
    rig.wait_state_matches_kernel(ports)
    wait_for(lambda: rig.appl.exists(b"_PORT_TABLE:PortInitDone"), what="PortInitDone written again")
    wait_for(lambda: any(a.startswith("STATUS=ready (cold start)") for a in daemon.notify.assignments()),
             what="STATUS= naming the cold start")
    assert daemon.alive


def test_orchagent_popping_is_not_a_flush(rig):
    """orchagent moves each key from the temporary hash to the final one inside one Lua call, so PortConfigDone
    is never missing while it pops: an eager consumer popping in a tight loop through several of the watcher's
    looks causes no second copy."""
    rig.configure_ports(names())
    monitor = rig.monitor()
    orchagent = OrchagentEmulator(rig, eager=True)
    try:
        daemon = rig.start()
        rig.add_ports(names())
        rig.wait_state_matches_kernel(names())

        def looks():
            return sum(1 for c in monitor.snapshot() if c.name == "EXISTS"
                       and b"PORT_TABLE:PortConfigDone" in c.args)
        wait_for(lambda: looks() >= 4, what="four looks of the watcher at PortConfigDone")
    finally:
        orchagent.stop()
    assert config_done_writes(rig) == 1
    assert not any("appl_db_flushed" in line for line in daemon.log_lines())


def test_flush_in_the_middle_of_a_flap_storm(rig):
    """A flush while ports flap: the cold sync runs once, the ports present become old interfaces (ignored, their
    rows gone), and once syncd's new netdevs come STATE_DB equals the kernel."""
    daemon, ports = running_switch(rig)
    flapper = Flapper(rig, ports)
    flapper.start()
    try:
        flapper.wait_batches(5)
        rig.appl.flushdb()
        daemon.wait_log(r"Cold start after the flush done", timeout=5)
        flapper.wait_batches(5)
    finally:
        flapper.stop()
    wait_for(lambda: all(rig.state_row(name) == {} for name in ports), what="rows of the old interfaces deleted")
    rig.orchagent_pop()
    syncd_recreates(rig, ports)
    rig.wait_state_matches_kernel(ports)
    assert config_done_writes(rig) == 2
    assert daemon.alive


def test_redis_restarted_empty_is_a_flush(rig):
    """Redis restarted without its data (no persistence) and CONFIG_DB loaded again: the writer reconnects, and
    the missing PortConfigDone makes the daemon run the cold start again; the journal says why."""
    daemon, ports = running_switch(rig)
    rig.redis.kill()
    rig.redis.start(seed={CONFIG_DB: {f"PORT|{name}": default_port_fields(i) for i, name in enumerate(ports)}})
    rig.reset_clients()
    wait_for(rig.events.connected.is_set, what="event recorder reconnected")
    wait_for(lambda: rig.producer_pending("PortConfigDone") == {b"count": str(PORTS).encode()}, timeout=15,
             what="PortConfigDone written again after Redis came back empty")
    daemon.wait_log(r"EVENT=appl_db_flushed")
    assert daemon.alive


def test_swssloglevel_sets_the_level_within_a_second(rig):
    """`swssloglevel -l ERROR -c portsyncd` writes CONFIG_DB LOGGER|portsyncd LOGLEVEL=ERROR: the daemon stops
    logging each link message (a notice) within a second; DEBUG makes it log more; NOTICE brings it back."""
    daemon, ports = running_switch(rig)
    assert rig.config_db.hget(b"LOGGER|portsyncd", b"LOGLEVEL") == b"NOTICE"
    changed = time.monotonic()
    rig.config_db.hset(b"LOGGER|portsyncd", b"LOGLEVEL", b"ERROR")
    daemon.wait_log(r"Log level error \(LOGLEVEL=ERROR in CONFIG_DB LOGGER\|portsyncd\)", timeout=3)
    print(f"swssloglevel -> new level: {(time.monotonic() - changed) * 1000:.0f} ms")
    before = len(daemon.log_lines())
    rig.ns.ip("link", "set", "dev", ports[0], "mtu", "1400")
    rig.wait_state_row(ports[0], {"mtu": "1400"})
    assert not any("nlmsg" in line for line in daemon.log_lines()[before:])
    rig.config_db.hset(b"LOGGER|portsyncd", b"LOGLEVEL", b"DEBUG")
    daemon.wait_log(r"Log level debug \(LOGLEVEL=DEBUG", timeout=3)
    rig.config_db.hset(b"LOGGER|portsyncd", b"LOGLEVEL", b"NOTICE")
    daemon.wait_log(r"Log level notice \(LOGLEVEL=NOTICE", timeout=3)
    rig.ns.ip("link", "set", "dev", ports[0], "mtu", "1500")
    daemon.wait_log(rf"nlmsg type:16 key:{ports[0]} ")


def test_loglevel_in_config_db_applies_from_the_start(rig):
    """LOGGER|portsyncd already says ERROR when the daemon starts: it is quiet from the first line on."""
    rig.config_db.hset(b"LOGGER|portsyncd", mapping={b"LOGLEVEL": b"ERROR", b"LOGOUTPUT": b"SYSLOG"})
    rig.configure_ports(["Ethernet0"])
    daemon = rig.start()
    rig.orchagent_pop()
    rig.add_port("Ethernet0")
    rig.wait_state_matches_kernel(["Ethernet0"])
    assert not any("nlmsg" in line for line in daemon.log_lines())
    assert rig.config_db.hget(b"LOGGER|portsyncd", b"LOGLEVEL") == b"ERROR"


def test_unknown_loglevel_is_refused_and_the_level_kept(rig):
    """A LOGLEVEL SONiC does not have: a warning naming the value and SONiC's names; the level stays."""
    daemon, ports = running_switch(rig)
    rig.config_db.hset(b"LOGGER|portsyncd", b"LOGLEVEL", b"LOUD")
    daemon.wait_log(r"LOGLEVEL=\"LOUD\", which SONiC does not know .* EVENT=log_level_refused", timeout=3)
    rig.ns.ip("link", "set", "dev", ports[1], "mtu", "1400")
    daemon.wait_log(rf"nlmsg type:16 key:{ports[1]} ")


def test_logoutput_stdout_moves_the_lines_to_stdout(rig):
    """LOGOUTPUT=STDOUT: the records go to standard output (STDERR and SYSLOG: standard error outside the
    journal)."""
    daemon, ports = running_switch(rig)
    rig.config_db.hset(b"LOGGER|portsyncd", b"LOGOUTPUT", b"STDOUT")
    wait_for(lambda: "Log output STDOUT" in daemon.stdout(), timeout=3, what="the output change on stdout")
    rig.ns.ip("link", "set", "dev", ports[2], "mtu", "1400")
    wait_for(lambda: f"key:{ports[2]} " in daemon.stdout(), what="the link message logged on stdout")
    rig.config_db.hset(b"LOGGER|portsyncd", b"LOGOUTPUT", b"SYSLOG")
    daemon.wait_log(r"Log output SYSLOG", timeout=3)
    assert daemon.stop() == 0


def test_the_last_change_of_either_level_wins(rig):
    """`[log] level` changed by a reload holds until LOGGER|portsyncd changes (the watcher does not put back the
    level the table had when the daemon started), and then the table's new level holds."""
    monitor = rig.monitor()
    config_path = rig.write_config()
    daemon = rig.start(config_path=config_path)
    config_path.write_text(rig.write_config({"log": {"level": "info"}}).read_text())
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"Configuration reloaded: changed log\.level")
    looks = len([c for c in monitor.snapshot() if c.name == "HMGET"])
    wait_for(lambda: len([c for c in monitor.snapshot() if c.name == "HMGET"]) >= looks + 3,
             what="three more looks of the watcher at LOGGER|portsyncd")
    assert not any("Log level" in line for line in daemon.log_lines())
    rig.config_db.hset(b"LOGGER|portsyncd", b"LOGLEVEL", b"DEBUG")
    daemon.wait_log(r"Log level debug \(LOGLEVEL=DEBUG", timeout=3)

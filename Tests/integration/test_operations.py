"""What an operator sees and does: STATUS=, reload by SIGHUP (valid and invalid), stray signals, a stop in the
middle of a flap storm, and the switch that adopts existing interfaces outside SONiC."""
import re
import signal

from conftest import Flapper, wait_for, port_name


def ports(count):
    return [port_name(i) for i in range(count)]


def test_status_line_names_ports_rate_and_redis(rig):
    """STATUS= says how many ports are synced, the event rate and the Redis connection state."""
    daemon = rig.start(config={"daemon": {"status_interval_ms": 100}})
    names = ports(3)
    rig.add_synced_ports(names)

    def status():
        lines = [a for a in daemon.notify.assignments() if a.startswith("STATUS=")]
        return lines and "3 ports synced" in lines[-1] and "events/s" in lines[-1] and "redis connected" in lines[-1]
    wait_for(status, what="STATUS= with 3 ports synced, events/s and redis connected")


def test_sighup_applies_a_valid_config_and_keeps_the_old_one_when_invalid(rig):
    """SIGHUP: RELOADING=1 … READY=1; a valid change is applied and logged with the changed keys; an invalid file
    is refused with file:line:col, STATUS= shows it, and the daemon keeps syncing with the old configuration."""
    config_path = rig.write_config()
    daemon = rig.start(config_path=config_path)
    config_path.write_text(rig.write_config({"log": {"level": "info"}}).read_text())
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"Configuration reloaded: changed log\.level")
    wait_for(lambda: "RELOADING=1" in daemon.notify.assignments(), what="RELOADING=1")
    config_path.write_text("[redis]\nreconnect_max_ms = -5\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(rf"Reload refused, keeping the old configuration: {config_path}:2:1:")
    wait_for(lambda: any(a.startswith("STATUS=") and "config refused, old kept:" in a
                         for a in daemon.notify.assignments()), what="STATUS= naming the config error")
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0")
    rig.wait_state_matches_kernel(["Ethernet0"])
    assert daemon.alive


def test_stray_signals_change_nothing(rig):
    """SIGUSR1, SIGUSR2, SIGCHLD, SIGWINCH and SIGCONT in the middle of port changes neither stop the daemon nor
    lose a state."""
    daemon = rig.start()
    names = ports(4)
    for name in names:
        rig.seed_appl(name)
    rig.add_ports(names)
    for number in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD, signal.SIGWINCH, signal.SIGCONT):
        daemon.signal(number)
        rig.ns.batch([f"link set dev {name} {'down' if i % 2 else 'up'}" for i, name in enumerate(names)])
    rig.wait_state_matches_kernel(names)
    assert daemon.alive


def test_sigterm_during_a_flap_storm_exits_0_with_every_accepted_change_in_redis(rig):
    """SIGTERM while ports flap: STOPPING=1 and EXTEND_TIMEOUT_USEC= (the drain budget), exit 0, and for every
    port STATE_DB holds the last state the daemon accepted: the last `nlmsg` line it logged for that port (every
    accepted message is logged at notice, as SONiC's portsyncd does) gives its admin and oper state."""
    daemon = rig.start()
    names = ports(8)
    rig.add_synced_ports(names)
    flapper = Flapper(rig, names)
    flapper.start()
    try:
        flapper.wait_batches(20)
        assert daemon.stop() == 0
    finally:
        flapper.stop()
    notices = daemon.notify.assignments()
    assert "STOPPING=1" in notices
    assert "EXTEND_TIMEOUT_USEC=3000000" in notices  # graceful_shutdown_timeout_ms 2000 + 1 s to exit
    assert any("Every accepted update is in Redis; exiting" in line for line in daemon.log_lines())
    last = {}
    for line in daemon.log_lines():
        match = re.search(r"nlmsg type:16 key:(\S+) admin:(\d) oper:(\d)", line)
        if match:
            last[match.group(1)] = (match.group(2), match.group(3))
    assert set(last) >= set(names)
    for name in names:
        row = rig.state_row(name)
        admin, oper = last[name]
        assert (row["admin_status"], row["netdev_oper_status"]) == (
            "up" if admin == "1" else "down", "up" if oper == "1" else "down"), (name, row, last[name])


def test_stray_signals_in_the_middle_of_a_storm_change_nothing(rig):
    """SIGUSR1, SIGUSR2, SIGCHLD, SIGWINCH and SIGCONT, sent again and again while ports flap, neither stop the
    daemon nor lose a state: afterwards STATE_DB equals the kernel."""
    daemon = rig.start()
    names = ports(8)
    rig.add_synced_ports(names)
    flapper = Flapper(rig, names)
    flapper.start()
    try:
        for _ in range(5):
            for number in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD, signal.SIGWINCH, signal.SIGCONT):
                daemon.signal(number)
            flapper.wait_batches(2)
    finally:
        flapper.stop()
    rig.wait_state_matches_kernel(names)
    assert daemon.alive


def test_adopt_existing_interfaces_syncs_them_instead_of_ignoring(rig):
    """[sonic] adopt_existing_interfaces = true (for hosts that are not SONiC switches): Ethernet interfaces
    present at start are not brought down and are synced like new ones."""
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0", up=True, peer_up=True)
    rig.start(config={"sonic": {"adopt_existing_interfaces": True}})
    rig.wait_state_matches_kernel(["Ethernet0"])
    assert rig.ns.link("Ethernet0").admin_up


def test_enobufs_resync_makes_state_db_equal_the_kernel_including_lost_deletes(rig):
    """A netlink overrun (the daemon stopped while the kernel sends more than its receive buffer holds) loses
    events, a delete among them. After the resync STATE_DB equals the kernel: changed ports have their last state
    and the deleted port's row is gone."""
    daemon = rig.start(config={"netlink": {"receive_buffer_bytes": 65536}})
    names = ports(6)
    rig.add_synced_ports(names)
    daemon.signal(signal.SIGSTOP)
    try:
        # The buffer fills with the txqueuelen changes first, so the changes at the end are the ones dropped.
        rig.ns.batch([f"link set dev {names[2 + i % 4]} txqueuelen {1000 + i}" for i in range(600)]
                     + [f"link set dev {names[0]} down", f"link del {names[1]}",
                        f"link set dev {names[3]} down", f"link set dev {names[4]} mtu 1400"])
    finally:
        daemon.signal(signal.SIGCONT)
    daemon.wait_log(r"High possibility of a lost message")
    remaining = [name for name in names if name != names[1]]
    rig.wait_state_matches_kernel(remaining)
    wait_for(lambda: rig.state_row(names[1]) == {}, what=f"{names[1]} deleted from STATE_DB after the resync")
    # The delete itself was lost in the overrun: the resync found the port gone and deleted its row.
    daemon.wait_log(rf"Port {names[1]} is gone from the kernel after lost events")
    assert daemon.alive


def test_watchdog_honours_watchdog_pid(rig):
    """WATCHDOG_USEC with a WATCHDOG_PID naming another process: the pings are for that process, not this one,
    so portsyncd sends none (sd_watchdog_enabled); with its own pid it pings."""
    other = rig.start(env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    mine = rig.start(env={"WATCHDOG_USEC": "200000"})
    wait_for(lambda: mine.notify.assignments().count("WATCHDOG=1") >= 3, what="3 pings from the daemon")
    assert other.notify.assignments().count("WATCHDOG=1") == 0


def test_config_file_change_reloads_without_a_signal(rig):
    """An editor's atomic save (write a temporary file, rename it over the config) and an in-place write are
    each seen through inotify on the directory and reloaded, with no SIGHUP; an invalid save is refused and the
    daemon keeps the old configuration."""
    config_path = rig.write_config()
    daemon = rig.start(config_path=config_path, config={})
    temporary = config_path.with_name(config_path.name + ".tmp")
    temporary.write_text(rig.write_config({"log": {"level": "info"}}).read_text())
    temporary.rename(config_path)
    daemon.wait_log(r"Configuration reloaded: changed log\.level")
    config_path.write_text(rig.write_config({"log": {"level": "notice"}}).read_text())
    daemon.wait_log(r"Configuration reloaded: changed log\.level")
    wait_for(lambda: sum("Configuration reloaded" in line for line in daemon.log_lines()) == 2,
             what="a second reload after the in-place write")
    config_path.write_text("[log]\nlevel = \"loud\"\n")
    daemon.wait_log(rf"Reload refused, keeping the old configuration: {config_path}:2:1:")
    assert daemon.alive


def test_a_notify_socket_nobody_reads_blocks_nothing(rig):
    """A service manager that stops reading its notify socket (its queue fills after a few datagrams) must not
    hold the daemon: ports keep syncing, and SIGTERM still drains and exits 0."""
    import socket as sockets
    path = str(rig.tmp / "deaf-notify")
    deaf = sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM)
    deaf.bind(path)
    try:
        daemon = rig.start(env={"NOTIFY_SOCKET": path}, wait_ready=False,
                           config={"daemon": {"status_interval_ms": 100}})
        daemon.wait_log(r"Ready: ")
        names = ports(2)
        rig.add_synced_ports(names)  # long after the deaf socket's queue is full
        rig.ns.ip("link", "set", "dev", names[0], "down")
        rig.wait_state_matches_kernel(names)
        assert daemon.stop() == 0
    finally:
        deaf.close()

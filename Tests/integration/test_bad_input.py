"""Hostile input: interface and port names that are not plain SONiC names, Redis dying under load, and
invalid configuration files."""

from __future__ import annotations

import re

import pytest

from conftest import (
    APPL_DB,
    CONFIG_DB,
    Flapper,
    SENTINEL_PORT,
    STATE_DB,
    b,
    decode_hash,
    default_port_fields,
    port_name,
    run,
    wait_for,
)

KEY_SET = b"PORT_TABLE_KEY_SET"

# Names the kernel may accept (dev_valid_name refuses '/', ':', whitespace, "." and ".."); each is tried for real.
HOSTILE_LINK_NAMES = [
    b"Ethernet0|x",
    b"Ethernet\xff",
    b"Ethernet0123456",  # 15 bytes, the longest name Linux allows
    b"Ethernet*",
    b"Ethernet?",
    b"Ethernet[1]",
    b"Ethernet\x01",
    b"Ethernet\x7f",
    b"Ethernet\"'",
    b"Ethernet\\x",
    b"Ethernet%s%n",
    b"Ethernet$(id)",
    b"Ethernet\xc3\xa9",
    b"Ethernet{0}",
    b"PortChannel|1",
    b"Ethernet0|Eth",
    b"Ethernet\x1b[2J",
    b"Ethernet:0",
    b"Ethernet\r",
    b"Ethernet 0",
]

MUST_BE_ACCEPTED_BY_KERNEL = [b"Ethernet0|x", b"Ethernet\xff", b"Ethernet0123456"]


def test_hostile_interface_names_write_only_their_own_key(rig):
    """Each hostile interface name the kernel accepts is either synced exactly under STATE_DB
    PORT_TABLE|<that exact name> or rejected; nothing else is ever written, deletes behave the same, the daemon
    keeps running and later ports still sync."""
    daemon = rig.start()
    rig.seed_sentinel()
    for name in HOSTILE_LINK_NAMES:
        rig.seed_appl(name)
    mark = rig.events.mark()
    created, refused = [], []
    for i, name in enumerate(HOSTILE_LINK_NAMES):
        peer = f"hp{i}"
        result = rig.ns.ip("link", "add", name, "type", "veth", "peer", "name", peer, check=False)
        if result.returncode != 0:
            refused.append(name)
            continue
        rig.ns.ip("link", "set", "dev", peer, "up")
        rig.ns.ip("link", "set", "dev", name, "up")
        created.append(name)
    for name in MUST_BE_ACCEPTED_BY_KERNEL:
        assert name in created, f"the kernel refused {name!r}; the rig cannot test it"
    rig.barrier()
    allowed = {b"PORT_TABLE|" + name for name in created} | {b"PORT_TABLE|" + b(SENTINEL_PORT)}
    foreign = [(e.db, e.event, e.key) for e in rig.events.since(mark) if e.key not in allowed]
    assert foreign == [], "writes under keys other than PORT_TABLE|<exact name>"
    links = rig.links()
    written = []
    for name in created:
        row = rig.state.hgetall(b"PORT_TABLE|" + name)
        if row:
            written.append(name)
            assert decode_hash(row) == links[name].sonic_state(), name
    print(f"written: {written}\nrejected: {[n for n in created if n not in written]}\nrefused by kernel: {refused}")
    assert daemon.alive

    mark = rig.events.mark()
    for name in created:
        rig.ns.ip("link", "del", "dev", name)
    rig.barrier()
    foreign = [(e.db, e.event, e.key) for e in rig.events.since(mark) if e.key not in allowed]
    assert foreign == [], "writes under keys other than PORT_TABLE|<exact name> on delete"
    for name in created:
        assert not rig.state.exists(b"PORT_TABLE|" + name), f"PORT_TABLE|{name!r} left after DELLINK"
    assert daemon.alive

    rig.seed_appl("Ethernet8")
    rig.add_port("Ethernet8")
    rig.wait_state_matches_kernel(["Ethernet8"])
    leftovers = set(rig.state.keys(b"PORT_TABLE|*")) - {b"PORT_TABLE|Ethernet8", b"PORT_TABLE|" + b(SENTINEL_PORT)}
    assert leftovers == set()
    assert daemon.alive


HOSTILE_CONFIG_NAMES = [
    b"Ethernet0|x",
    b"Ethernet0:1",
    b"Ethernet\xff",
    b"Ethernet*",
    b"Ethernet0\r\nSET x y",
    b"Ethernet0\x00z",
    b"",
    b"Ethernet 0",
    b"E" * 300,
]


def test_hostile_config_db_port_names_copy_only_their_own_key(rig):
    """A CONFIG_DB PORT|<name> with a hostile name is either copied exactly under _PORT_TABLE:<that name> (and
    PORT_TABLE_KEY_SET member <that name>) or rejected; nothing else appears in APPL_DB; normal ports are still
    copied and synced."""
    for name in HOSTILE_CONFIG_NAMES:
        rig.config_db.hset(b"PORT|" + name, mapping={b"lanes": b"1", b"alias": b"hostile"})
    rig.configure_ports(["Ethernet8"], {"lanes": "9,10,11,12", "admin_status": "up"})
    mark = rig.events.mark()
    daemon = rig.start()
    wait_for(lambda: rig.producer_pending("PortConfigDone") is not None, what="PortConfigDone")
    count = rig.producer_pending("PortConfigDone")
    assert set(count) == {b"count"} and count[b"count"].isdigit(), count
    members = rig.appl.smembers(KEY_SET)
    allowed_members = set(HOSTILE_CONFIG_NAMES) | {b"Ethernet8", b"PortConfigDone", b"PortInitDone"}
    assert members <= allowed_members, members - allowed_members
    assert b"Ethernet8" in members
    for member in members - {b"PortConfigDone", b"PortInitDone"}:
        expected = {b"lanes": b"9,10,11,12", b"admin_status": b"up"} if member == b"Ethernet8" else \
            {b"lanes": b"1", b"alias": b"hostile"}
        assert rig.appl.hgetall(b"_PORT_TABLE:" + member) == expected, member
    allowed_keys = {KEY_SET} | {b"_PORT_TABLE:" + m for m in allowed_members}
    foreign = [(e.event, e.key) for e in rig.events.since(mark, APPL_DB) if e.key not in allowed_keys]
    assert foreign == []
    assert set(rig.appl.keys(b"*")) <= allowed_keys
    for db in range(16):
        if db not in (APPL_DB, CONFIG_DB, STATE_DB):
            assert rig.db(db).dbsize() == 0, db
    rig.orchagent_pop()
    rig.add_port("Ethernet8")
    rig.wait_state_matches_kernel(["Ethernet8"])
    assert daemon.alive


def test_redis_killed_while_ports_flap(rig):
    """redis-server is SIGKILLed while ports flap and started again on the same socket (empty, then re-seeded
    by orchagent): the daemon reconnects, STATE_DB ends equal to the kernel for every port, PortConfigDone
    (and the startup copy, and PortInitDone) are not written again, and later ports still sync."""
    names = [port_name(i) for i in range(8)]
    daemon = rig.cold_start(names)
    rig.add_ports(names)
    wait_for(lambda: rig.producer_pending("PortInitDone") is not None, what="PortInitDone")
    rig.orchagent_pop()
    rig.wait_state_matches_kernel(names)
    flapper = Flapper(rig, names)
    flapper.start()
    try:
        flapper.wait_batches(3)
        rig.redis.kill()
        flapper.wait_batches(5)
        appl = {f"PORT_TABLE:{name}": default_port_fields(i) for i, name in enumerate(names)}
        appl["PORT_TABLE:Ethernet100"] = {"admin_status": "up"}
        appl["PORT_TABLE:PortConfigDone"] = {"count": str(len(names))}
        appl["PORT_TABLE:PortInitDone"] = {"lanes": "0"}
        config = {f"PORT|{name}": default_port_fields(i) for i, name in enumerate(names)}
        rig.redis.start(seed={APPL_DB: appl, CONFIG_DB: config})
        rig.reset_clients()
        rig.sentinel_seeded = rig.sentinel_ready = False
        flapper.wait_batches(5)
    finally:
        flapper.stop()
    assert daemon.alive, daemon.stderr()[-3000:]
    rig.wait_state_matches_kernel(names, timeout=20)
    assert rig.appl.smembers(KEY_SET) == set(), "startup copy, PortConfigDone or PortInitDone written again"
    assert rig.appl.keys(b"_PORT_TABLE:*") == []
    rig.add_port("Ethernet100")
    rig.wait_state_matches_kernel(["Ethernet100"])
    assert rig.appl.smembers(KEY_SET) == set()
    assert daemon.alive


INVALID_CONFIGS = [
    ("unknown key", "[redis]\nreconnect_initial_ms = 100\nbogus_key = 1\n", 3),
    ("unknown section", "[daemon]\nstatus_interval_ms = 1000\n\n[bogus]\nx = 1\n", 4),
    ("wrong type", "[redis]\nreconnect_initial_ms = \"fast\"\n", 2),
    ("out of range", "[log]\nlevel = \"notice\"\n[netlink]\nreceive_buffer_bytes = 1\n", 4),
    ("bad choice", "[log]\nlevel = \"loud\"\n", 2),
    ("wrong boolean", "[sonic]\nadopt_existing_interfaces = \"yes\"\n", 2),
    ("syntax", "[log]\nlevel = = \"notice\"\n", 2),
]


@pytest.mark.parametrize("case,text,line", INVALID_CONFIGS, ids=[c[0] for c in INVALID_CONFIGS])
def test_invalid_config_check_config_exits_1_with_position(rig, case, text, line):
    """--check-config of an invalid file: exit 1 and `FILE:LINE:COL: reason` on stderr."""
    path = rig.write_config(text=text)
    result = run([str(rig.binary), "--config", str(path), "--check-config"], check=False)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1, (case, result.returncode, stderr)
    match = re.search(re.escape(str(path)) + r":(\d+):(\d+):\s*\S", stderr)
    assert match, (case, stderr)
    assert int(match.group(1)) == line and int(match.group(2)) >= 1, (case, stderr)


@pytest.mark.parametrize("case,text,line", INVALID_CONFIGS, ids=[c[0] for c in INVALID_CONFIGS])
def test_invalid_config_daemon_exits_1_with_position(rig, case, text, line):
    """Starting the daemon with an invalid file: exit 1 before READY, `FILE:LINE:COL: reason` on stderr."""
    path = rig.write_config(text=text)
    daemon = rig.start(config_path=path, wait_ready=False)
    assert daemon.wait_exit(15) == 1, daemon.stderr()
    assert "READY=1" not in daemon.notify.assignments()
    match = re.search(re.escape(str(path)) + r":(\d+):(\d+):\s*\S", daemon.stderr())
    assert match and int(match.group(1)) == line, (case, daemon.stderr())
    assert rig.state.dbsize() == 0 and rig.appl.dbsize() == 0


def test_valid_config_check_config_exits_0(rig):
    """--check-config of a valid file (every key set): exit 0."""
    path = rig.write_config({"netlink": {"receive_buffer_bytes": 33554432},
                             "sonic": {"adopt_existing_interfaces": False}})
    result = run([str(rig.binary), "--config", str(path), "--check-config"], check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("new_name, accepted", [("Ethernet808", True), ("Ethernet|4", False), ("eth12", False)],
                         ids=["to_a_port_name", "to_a_rejected_name", "to_a_name_not_a_port"])
def test_a_renamed_port_loses_its_old_row(rig, new_name, accepted):
    """A rename (IFLA_IFNAME changes for an ifindex already synced) deletes the old name's STATE_DB row exactly as
    a DELLINK would, and writes the new name's row if the new name is accepted (and in APPL_DB); the journal says
    so (EVENT=renamed)."""
    daemon = rig.start()
    rig.add_synced_ports(["Ethernet8", "Ethernet0"])
    rig.seed_appl("Ethernet808")
    rig.ns.batch(["link set dev Ethernet8 down", f"link set dev Ethernet8 name {new_name}",
                  f"link set dev {new_name} up"])
    wait_for(lambda: rig.state_row("Ethernet8") == {}, what="the old name's row deleted")
    daemon.wait_log(r"Port Ethernet8 renamed to .* EVENT=renamed")
    rig.barrier()
    if accepted:
        rig.wait_state_matches_kernel([new_name, "Ethernet0"])
    else:
        assert rig.state_row(new_name) == {}
        rig.wait_state_matches_kernel(["Ethernet0"])
    assert daemon.alive

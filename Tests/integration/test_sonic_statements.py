"""The numbered statements of docs/sonic-contract.md: one or more tests per statement, each named after it.

The daemon runs for real in a network namespace against a real redis-server; ports are veth pairs; the test
plays orchagent (the consumer Lua script, or the APPL_DB final hash written directly).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading

import pytest

from conftest import (
    APPL_DB,
    CONFIG_DB,
    IFF_LOWER_UP,
    IFF_RUNNING,
    STATE_DB,
    WRITE_COMMANDS,
    Miss,
    OrchagentEmulator,
    atomic_groups,
    b,
    default_port_fields,
    is_test_consumer,
    port_name,
    run,
    wait_for,
    write_database_config,
)

KEY_SET = b"PORT_TABLE_KEY_SET"
IF_OPER_DORMANT = 5  # IFLA_OPERSTATE values (RFC 2863)
IF_OPER_UP = 6
WARM_KEY = b"WARM_RESTART_TABLE|portsyncd"


def bytes_fields(fields: dict) -> dict:
    return {b(k): b(v) for k, v in fields.items()}


def ports(n: int, start: int = 0) -> list:
    return [port_name(i) for i in range(start, start + n)]


def wait_pending(rig, key, expected=None, client=None, timeout=10.0, prefix=b"_PORT_TABLE:"):
    """Wait for a producer write of `key` (still in PORT_TABLE_KEY_SET) and return its fields."""

    def pending():
        got = rig.producer_pending(key, client=client, prefix=prefix)
        if got is None:
            return Miss("not in PORT_TABLE_KEY_SET")
        if expected is not None and got != expected:
            return Miss(got)
        return got

    return wait_for(pending, timeout=timeout, what=f"producer write of {key!r} ({expected})")


def init_done_writes(rig, since=0) -> int:
    """How many producer writes of PortInitDone Redis has seen (one HSET of its temporary hash each)."""
    return rig.events.count(APPL_DB, "hset", b"_PORT_TABLE:PortInitDone", since)


def wait_init_done(rig, client=None, timeout=10.0):
    return wait_pending(rig, "PortInitDone", {b"lanes": b"0"}, client=client, timeout=timeout)


def strace_netlink_start(rig, port="Ethernet0"):
    """Start portsyncd under strace and return (daemon, trace lines) after a normal stop."""
    rig.configure_ports([port])
    trace = rig.tmp / "strace.txt"
    daemon = rig.start(wrapper=("strace", "-f", "-qq", "-s", "1024", "-o", str(trace),
                                "-e", "trace=socket,bind,setsockopt,sendto,sendmsg,write,writev"))
    wait_pending(rig, port)
    assert daemon.stop() == 0
    return trace.read_text(errors="replace").splitlines()


class NetlinkTrace:
    """What strace says about portsyncd's netlink sockets and its first producer write."""

    SOCKET = re.compile(r"socket\(AF_NETLINK, [^,]+, NETLINK_ROUTE\) = (\d+)")
    BIND = re.compile(r"bind\((\d+), \{sa_family=AF_NETLINK, [^}]*nl_groups=([0-9a-fx]+)")
    ADD_MEMBERSHIP = re.compile(r"setsockopt\((\d+), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, \[(RTNLGRP_LINK|1)\]")
    SEND = re.compile(r"(?:sendto|sendmsg)\((\d+), ")
    RCVBUF = re.compile(r"setsockopt\((\d+), SOL_SOCKET, (SO_RCVBUF|SO_RCVBUFFORCE), \[(\d+)\]")

    def __init__(self, lines):
        self.lines = lines
        self.netlink_fds = set()
        self.membership = None  # (line index, fd)
        self.dumps = []  # (line index, fd)
        self.rcvbuf = []  # (line index, fd, option, value)
        self.first_copy = None
        for i, line in enumerate(lines):
            if m := self.SOCKET.search(line):
                self.netlink_fds.add(m.group(1))
            if (m := self.BIND.search(line)) and int(m.group(2), 16) & 1 and self.membership is None:
                self.membership = (i, m.group(1))
            if (m := self.ADD_MEMBERSHIP.search(line)) and self.membership is None:
                self.membership = (i, m.group(1))
            if (m := self.SEND.search(line)) and "RTM_GETLINK" in line and (
                    "NLM_F_DUMP" in line or "NLM_F_ROOT|NLM_F_MATCH" in line):
                self.dumps.append((i, m.group(1)))
            if m := self.RCVBUF.search(line):
                self.rcvbuf.append((i, m.group(1), m.group(2), int(m.group(3))))
            if self.first_copy is None and "_PORT_TABLE:Ethernet0" in line and re.search(
                    r"\b(write|writev|sendto|sendmsg)\(", line):
                self.first_copy = i


# ==========================================================================================================
# 1. Database map


def test_s01_default_database_map_without_any_config_file(rig):
    """Statement 1: with no arguments and no /etc/sonic/portsyncd.conf, portsyncd finds Redis through the unix
    socket of the `redis` instance in /var/run/redis/sonic-db/database_config.json."""
    rig.configure_ports(["Ethernet0"])
    script = ('mount -t tmpfs psd-run /run && mkdir -p /run/redis/sonic-db && '
              'cp "$1" /run/redis/sonic-db/database_config.json && '
              'if [ -d /etc/sonic ]; then mount -t tmpfs psd-etc /etc/sonic; fi && '
              'test ! -e /etc/sonic/portsyncd.conf && exec "$2"')
    argv = rig.ns.exec_argv("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                            str(rig.db_config_path), str(rig.binary))
    rig.start(argv=argv)
    wait_for(lambda: rig.state.hget(WARM_KEY, b"restore_count") == b"0", what="restore_count 0 in STATE_DB")
    assert wait_pending(rig, "Ethernet0") == bytes_fields(default_port_fields(0))
    assert wait_pending(rig, "PortConfigDone") == {b"count": b"1"}


def test_s01_database_ids_come_from_the_database_map(rig):
    """Statement 1: DB ids are taken from database_config.json (here APPL_DB 10, CONFIG_DB 11, STATE_DB 12),
    through the instance's unix socket (its TCP port is closed)."""
    write_database_config(rig.db_config_path, rig.redis.socket,
                          ids={"APPL_DB": 10, "CONFIG_DB": 11, "STATE_DB": 12}, tcp_port=1)
    appl, config, state = rig.db(10), rig.db(11), rig.db(12)
    rig.configure_ports(["Ethernet0"], db=config)
    daemon = rig.start()
    wait_for(lambda: state.hget(WARM_KEY, b"restore_count") == b"0", what="restore_count 0 in db 12")
    assert wait_pending(rig, "Ethernet0", client=appl) == bytes_fields(default_port_fields(0))
    assert wait_pending(rig, "PortConfigDone", client=appl) == {b"count": b"1"}
    wait_for(lambda: rig.events.publish_count(b"PORT_TABLE_CHANNEL@10") >= 1,
             what="a PUBLISH on PORT_TABLE_CHANNEL@10")
    rig.orchagent_pop(client=appl)
    rig.add_port("Ethernet0")
    link = rig.ns.link("Ethernet0")
    wait_for(lambda: rig.state_row("Ethernet0", client=state) == link.sonic_state() or
             Miss(rig.state_row("Ethernet0", client=state)), what="STATE_DB row in db 12")
    wait_init_done(rig, client=appl)
    for db in (0, 4, 6):
        assert rig.db(db).dbsize() == 0, f"db {db} has keys: {rig.db(db).keys()}"
    assert daemon.alive


def test_s01_separators_come_from_the_database_map(rig):
    """Statement 1: separators are taken from database_config.json (here CONFIG_DB ':', APPL_DB '|',
    STATE_DB ':')."""
    write_database_config(rig.db_config_path, rig.redis.socket,
                          separators={"CONFIG_DB": ":", "APPL_DB": "|", "STATE_DB": ":"})
    rig.config_db.hset(b"PORT:Ethernet0", mapping=bytes_fields(default_port_fields(0)))
    rig.start()
    wait_for(lambda: rig.state.hget(b"WARM_RESTART_TABLE:portsyncd", b"restore_count") == b"0",
             what="restore_count under WARM_RESTART_TABLE:portsyncd")
    expected = bytes_fields(default_port_fields(0))
    assert wait_pending(rig, "Ethernet0", expected, prefix=b"_PORT_TABLE|") == expected
    assert not rig.appl.exists(b"_PORT_TABLE:Ethernet0")
    popped = dict(rig.orchagent_pop(prefix=b"PORT_TABLE|"))
    assert popped[b"Ethernet0"] == expected
    assert popped[b"PortConfigDone"] == {b"count": b"1"}
    rig.add_port("Ethernet0")
    want = rig.ns.link("Ethernet0").sonic_state()
    wait_for(lambda: rig.state_row("Ethernet0", prefix=b"PORT_TABLE:") == want or
             Miss(rig.state_row("Ethernet0", prefix=b"PORT_TABLE:")), what="STATE_DB PORT_TABLE:Ethernet0")
    assert rig.state.keys(b"PORT_TABLE|*") == []


# ==========================================================================================================
# 2. Warm restart detection


def test_s02_cold_start_sets_restore_count_0(rig):
    """Statement 2: a cold start (no WARM_RESTART_ENABLE_TABLE) writes restore_count=0, even over an old value."""
    rig.state.hset(WARM_KEY, b"restore_count", b"7")
    rig.start()
    wait_for(lambda: rig.state.hget(WARM_KEY, b"restore_count") == b"0", what="restore_count 0")


@pytest.mark.parametrize("scope", ["system", "swss"])
def test_s02_warm_start_increments_restore_count(rig, scope):
    """Statement 2: enable=true in WARM_RESTART_ENABLE_TABLE|system or |swss plus an existing restore_count
    is a warm start, which writes restore_count+1."""
    rig.enable_warm(scope, "3")
    rig.start()
    wait_for(lambda: rig.state.hget(WARM_KEY, b"restore_count") == b"4" or
             Miss(rig.state.hget(WARM_KEY, b"restore_count")), what="restore_count 4")


def test_s02_warm_without_restore_count_falls_back_to_cold(rig):
    """Statement 2: enable=true but no restore_count field: cold start (restore_count=0, startup copy and
    PortConfigDone are written)."""
    rig.enable_warm("system", restore_count=None)
    rig.configure_ports(["Ethernet0"])
    rig.start()
    wait_for(lambda: rig.state.hget(WARM_KEY, b"restore_count") == b"0", what="restore_count 0")
    assert wait_pending(rig, "Ethernet0") == bytes_fields(default_port_fields(0))
    assert wait_pending(rig, "PortConfigDone") == {b"count": b"1"}


def test_s02_enable_other_than_true_is_cold(rig):
    """Statement 2: only the string "true" enables warm start."""
    rig.state.hset(b"WARM_RESTART_ENABLE_TABLE|system", b"enable", b"false")
    rig.state.hset(b"WARM_RESTART_ENABLE_TABLE|swss", b"enable", b"True")
    rig.state.hset(WARM_KEY, b"restore_count", b"3")
    rig.configure_ports(["Ethernet0"])
    rig.start()
    wait_for(lambda: rig.state.hget(WARM_KEY, b"restore_count") == b"0", what="restore_count 0")
    assert wait_pending(rig, "PortConfigDone") == {b"count": b"1"}


# ==========================================================================================================
# 3. switch_type


def test_s03_dpu_skips_old_interface_step(rig):
    """Statement 3: DEVICE_METADATA|localhost switch_type=dpu: existing Ethernet interfaces are not brought
    down and are not ignored."""
    rig.config_db.hset(b"DEVICE_METADATA|localhost", b"switch_type", b"dpu")
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0", up=True, peer_up=True)
    rig.start()
    assert rig.ns.link("Ethernet0").admin_up, "a dpu start must not bring Ethernet0 down"
    rig.wait_state_matches_kernel(["Ethernet0"])
    rig.ns.ip("link", "set", "dev", "Ethernet0", "mtu", "1400")
    rig.wait_state_row("Ethernet0", {"mtu": "1400", "admin_status": "up"})
    assert rig.ns.link("Ethernet0").admin_up


@pytest.mark.parametrize("switch_type", [None, "switch", "voq"])
def test_s03_non_dpu_switch_type_does_old_interface_step(rig, switch_type):
    """Statement 3: switch_type absent (default "switch") or anything but dpu: existing Ethernet interfaces are
    brought down and ignored (statement 22)."""
    if switch_type is not None:
        rig.config_db.hset(b"DEVICE_METADATA|localhost", b"switch_type", b(switch_type))
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0", up=True, peer_up=True)
    rig.start()
    wait_for(lambda: not rig.ns.link("Ethernet0").admin_up, what="Ethernet0 brought down")
    rig.barrier()
    assert rig.state_row("Ethernet0") == {}


# ==========================================================================================================
# 4. CONFIG_DB PORT|*


def test_s04_every_config_db_port_with_all_fields(rig):
    """Statement 4: every CONFIG_DB PORT|<name> key is read with all its fields (and nothing else is)."""
    fields = {
        "Ethernet0": {**default_port_fields(0), "description": "uplink to spine-1 (\u00fc)", "autoneg": "on",
                      "tpid": "0x8100", "pfc_asym": "off", "empty": "", "subport": "0", "role": "Ext"},
        "Ethernet4": default_port_fields(1),
        "Ethernet-BP0": {"lanes": "77", "alias": "bp0"},
    }
    rig.configure_ports(list(fields), fields)
    rig.config_db.hset(b"PORTCHANNEL|PortChannel0001", b"mtu", b"9100")
    rig.config_db.hset(b"PORT_QOS_MAP|Ethernet0", b"dscp_to_tc_map", b"AZURE")
    rig.config_db.hset(b"PORTS|Ethernet8", b"lanes", b"9")
    rig.start()
    popped = rig.orchagent_pop()
    got = dict(popped)
    assert len(popped) == len(got), f"a key was popped twice: {popped}"
    expected = {b(name): bytes_fields(f) for name, f in fields.items()}
    expected[b"PortConfigDone"] = {b"count": b"3"}
    assert got == expected


def test_s04_field_name_at_suffix_is_cut(rig):
    """Statement 4 (the start-up copy): a CONFIG_DB field name's `@...` suffix is cut off in the copy, as swss-common's
    Table::get does."""
    rig.configure_ports(["Ethernet0"], {"lanes": "1,2,3,4", "members@": "a,b", "x@y": "1"})
    rig.start()
    assert wait_pending(rig, "Ethernet0") == {b"lanes": b"1,2,3,4", b"members": b"a,b", b"x": b"1"}


# ==========================================================================================================
# 5. Producer write per port


def test_s05_cold_start_producer_write_pops_as_set(rig):
    """Statement 5: each CONFIG_DB port becomes one producer write (temporary hash with all fields, key set
    member, PUBLISH on PORT_TABLE_CHANNEL@0) that the consumer pops as (name, SET, same fields)."""
    names = ports(4)
    rig.configure_ports(names)
    rig.start()
    for i, name in enumerate(names):
        assert wait_pending(rig, name) == bytes_fields(default_port_fields(i))
    wait_for(lambda: rig.events.publish_count() >= 1, what="a PUBLISH on PORT_TABLE_CHANNEL@0")
    popped = rig.orchagent_pop()
    operations = sorted((key, "SET" if fields else "DEL", fields) for key, fields in popped)
    expected = sorted([(b(name), "SET", bytes_fields(default_port_fields(i))) for i, name in enumerate(names)]
                      + [(b"PortConfigDone", "SET", {b"count": b"4"})])
    assert operations == expected
    for i, name in enumerate(names):
        assert rig.appl.hgetall(b"PORT_TABLE:" + b(name)) == bytes_fields(default_port_fields(i))
        assert not rig.appl.exists(b"_PORT_TABLE:" + b(name))


def test_s05_producer_write_is_one_atomic_unit(rig):
    """Statement 5: the HSET of the temporary hash and the SADD to the key set of one port run in one atomic
    unit (a script or MULTI/EXEC), and the unit carries every field."""
    names = ports(3)
    monitor = rig.monitor()
    rig.configure_ports(names)
    rig.start()
    wait_pending(rig, "PortConfigDone")
    monitor.sync(rig.appl)
    groups = [g for g in atomic_groups(monitor.snapshot()) if not is_test_consumer(g)]
    for i, name in enumerate(names):
        key = b(name)
        with_sadd = [g for g in groups
                     if any(c.db == APPL_DB and c.name == "SADD" and c.args[1] == KEY_SET and key in c.args[2:]
                            for c in g)]
        assert with_sadd, f"no SADD PORT_TABLE_KEY_SET {name}"
        for group in with_sadd:
            written = {}
            for c in group:
                if c.db == APPL_DB and c.name in ("HSET", "HMSET") and c.args[1] == b"_PORT_TABLE:" + key:
                    written.update({c.args[j]: c.args[j + 1] for j in range(2, len(c.args) - 1, 2)})
            assert len(group) > 1 and group[0].name in ("EVAL", "EVALSHA", "MULTI", "FCALL"), (
                f"SADD for {name} is not inside a script or MULTI: {[c.args for c in group]}")
            assert written == bytes_fields(default_port_fields(i)), f"atomic unit for {name} wrote {written}"


# ==========================================================================================================
# 6. PortConfigDone


def test_s06_port_config_done_count_after_the_ports(rig):
    """Statement 6: after the port writes, one producer write of PortConfigDone with the single field
    count=<number of CONFIG_DB ports>."""
    names = ports(3)
    rig.configure_ports(names)
    rig.start()
    assert wait_pending(rig, "PortConfigDone") == {b"count": b"3"}
    events = [e for e in rig.events.since(0, APPL_DB) if e.event == "hset"]
    keys = [e.key for e in events]
    done = [i for i, k in enumerate(keys) if k == b"_PORT_TABLE:PortConfigDone"]
    assert len(done) == 1, f"PortConfigDone written {len(done)} times"
    for name in names:
        port_writes = [i for i, k in enumerate(keys) if k == b"_PORT_TABLE:" + b(name)]
        assert port_writes and max(port_writes) < done[0], f"{name} written after PortConfigDone: {keys}"


def test_s06_port_config_done_count_zero_without_ports(rig):
    """Statement 6: with no CONFIG_DB ports, PortConfigDone count="0" is still written."""
    rig.start()
    assert wait_pending(rig, "PortConfigDone") == {b"count": b"0"}
    popped = rig.orchagent_pop()
    assert (b"PortConfigDone", {b"count": b"0"}) in popped


# ==========================================================================================================
# 7. Warm start: no startup copy


def test_s07_warm_start_makes_no_startup_appl_writes(rig):
    """Statement 7: on a warm start neither the per-port copy nor PortConfigDone is written to APPL_DB."""
    names = ports(2)
    rig.configure_ports(names)
    for i, name in enumerate(names):
        rig.seed_appl(name, default_port_fields(i))
    rig.seed_appl("PortConfigDone", {"count": "2"})
    rig.enable_warm("system", "1")
    mark = rig.events.mark()
    rig.start()
    rig.barrier()
    producer_writes = [e.key for e in rig.events.since(mark, APPL_DB)
                       if e.key.startswith(b"_PORT_TABLE:") and e.key != b"_PORT_TABLE:PortInitDone"]
    assert producer_writes == []
    assert set(rig.appl.smembers(KEY_SET)) <= {b"PortInitDone"}
    assert wait_for(lambda: rig.state.hget(WARM_KEY, b"restore_count") == b"2", what="restore_count 2")


# ==========================================================================================================
# 8. Never the final hash, never an empty field list, never an APPL_DB delete


def test_s08_never_writes_final_hash_empty_fields_or_appl_deletes(rig):
    """Statement 8: over a whole life (start, ports, flaps, deletes, stop) portsyncd never writes
    PORT_TABLE:<name>, never sends an empty field list, and never deletes anything from APPL_DB."""
    names = ports(2)
    rig.configure_ports(names)
    rig.seed_sentinel()
    monitor = rig.monitor()
    daemon = rig.start()
    rig.orchagent_pop()
    rig.add_ports(names)
    rig.ns.batch(["link set dev Ethernet0 down", "link set dev Ethernet0 mtu 1400", "link set dev Ethernet0 up",
                  "link del dev Ethernet4"])
    wait_init_done(rig)
    rig.orchagent_pop()
    rig.add_port("Ethernet4", mtu=9000)
    rig.barrier()
    assert daemon.stop() == 0
    monitor.sync(rig.appl)
    deletes = {"DEL", "UNLINK", "HDEL", "SREM", "SPOP", "FLUSHDB", "FLUSHALL", "RENAME", "RENAMENX", "EXPIRE",
               "PEXPIRE", "EXPIREAT", "PEXPIREAT", "GETDEL", "MOVE", "SWAPDB"}
    producer_units = 0
    for group in atomic_groups(monitor.snapshot()):
        if is_test_consumer(group):
            continue
        for c in group:
            if c.name in ("HSET", "HMSET", "HSETNX"):
                assert len(c.args) >= 4 and len(c.args) % 2 == 0, f"HSET without field/value pairs: {c.args}"
            if c.db != APPL_DB or c.name not in WRITE_COMMANDS:
                continue
            assert c.name not in deletes, f"APPL_DB delete: {c.args}"
            if c.name in ("HSET", "HMSET", "HSETNX", "SET"):
                assert not c.args[1].startswith(b"PORT_TABLE:"), f"final hash written: {c.args}"
        added = [m for c in group if c.db == APPL_DB and c.name == "SADD" and c.args[1] == KEY_SET for m in c.args[2:]]
        for member in added:
            producer_units += 1
            pairs = [c for c in group if c.db == APPL_DB and c.name in ("HSET", "HMSET")
                     and c.args[1] == b"_PORT_TABLE:" + member and len(c.args) >= 4]
            assert pairs, f"producer write of {member!r} without fields: {[c.args for c in group]}"
    assert producer_units >= 4, "expected the port copies, PortConfigDone and PortInitDone"


# ==========================================================================================================
# 9. Ordering when not atomic


def test_s09_temporary_hash_before_key_set_unless_atomic(rig):
    """Statement 9: every SADD to PORT_TABLE_KEY_SET (and its PUBLISH) either runs in one atomic unit with the
    temporary-hash HSET, or comes after that HSET."""
    names = ports(4)
    rig.configure_ports(names)
    monitor = rig.monitor()
    rig.start()
    rig.orchagent_pop()
    rig.add_ports(names)
    wait_init_done(rig)
    monitor.sync(rig.appl)
    flat = []
    for group in atomic_groups(monitor.snapshot()):
        atomic = len(group) > 1 and group[0].name in ("EVAL", "EVALSHA", "MULTI", "FCALL")
        flat += [(c, atomic, is_test_consumer(group), id(group)) for c in group]
    checked = 0
    for i, (c, atomic, consumer, _) in enumerate(flat):
        if consumer or c.db != APPL_DB or c.name != "SADD" or c.args[1] != KEY_SET:
            continue
        for member in c.args[2:]:
            checked += 1
            if atomic:
                continue
            earlier = False
            for c2, _, consumer2, _ in reversed(flat[:i]):
                if consumer2:
                    break
                if c2.db == APPL_DB and c2.name in ("HSET", "HMSET") and c2.args[1] == b"_PORT_TABLE:" + member:
                    earlier = True
                    break
            assert earlier, f"SADD {member!r} before its HSET (and not atomic)"
    for i, (c, atomic, consumer, _) in enumerate(flat):
        if c.name == "PUBLISH" and not atomic and not consumer:
            assert any(c2.name in ("HSET", "HMSET") for c2, *_ in flat[:i]), "PUBLISH before any HSET"
    assert checked >= len(names) + 2


def test_s09_eager_consumer_never_sees_a_missing_hash(rig):
    """Statement 9: a consumer popping as fast as it can during the cold start never sees a key whose
    temporary hash is missing (which it would take for a delete)."""
    names = ports(24)
    rig.configure_ports(names)
    orchagent = OrchagentEmulator(rig, eager=True)
    try:
        rig.start()
        expected = {b(n): bytes_fields(default_port_fields(i)) for i, n in enumerate(names)}
        expected[b"PortConfigDone"] = {b"count": b"24"}
        wait_for(lambda: {k for k, _ in orchagent.results()} >= set(expected) or
                 Miss(len(orchagent.results())), what="every startup entry consumed")
    finally:
        orchagent.stop()
    results = orchagent.results()
    assert [k for k, f in results if not f] == [], "popped as DEL"
    merged = {}
    for key, fields in results:
        merged.setdefault(key, {}).update(fields)
    assert {k: merged[k] for k in expected} == expected


# ==========================================================================================================
# 10. PortInitDone


def test_s10_port_init_done_waits_for_every_port_then_once(rig):
    """Statement 10: PortInitDone (single field lanes=0) is written once every CONFIG_DB port has been seen,
    and only once per process whatever happens later."""
    rig.cold_start(ports(2))
    rig.add_port("Ethernet0")
    rig.wait_state_matches_kernel(["Ethernet0"])
    rig.barrier()
    assert rig.producer_pending("PortInitDone") is None
    assert init_done_writes(rig) == 0
    rig.add_port("Ethernet4")
    assert wait_init_done(rig) == {b"lanes": b"0"}
    assert rig.appl.hgetall(b"_PORT_TABLE:PortInitDone") == {b"lanes": b"0"}
    rig.orchagent_pop()
    rig.ns.batch(["link set dev Ethernet0 down", "link set dev Ethernet0 up", "link del dev Ethernet4"])
    rig.add_port("Ethernet4")
    rig.wait_state_matches_kernel(["Ethernet0", "Ethernet4"])
    rig.barrier()
    assert init_done_writes(rig) == 1
    assert rig.producer_pending("PortInitDone") is None


def test_s10_port_init_done_at_once_without_ports(rig):
    """Statement 10: with no CONFIG_DB ports, PortInitDone lanes=0 is written at once."""
    rig.start()
    assert wait_init_done(rig) == {b"lanes": b"0"}
    rig.barrier()
    assert init_done_writes(rig) == 1


def test_s10_port_init_done_written_again_on_warm_restart(rig):
    """Statement 10: a warm restart writes PortInitDone again (once)."""
    names = ports(2)
    daemon = rig.cold_start(names)
    rig.add_ports(names)
    wait_init_done(rig)
    rig.orchagent_pop()
    assert daemon.stop() == 0
    assert init_done_writes(rig) == 1
    rig.enable_warm("swss", rig.state.hget(WARM_KEY, b"restore_count").decode())
    mark = rig.events.mark()
    rig.start()
    assert wait_init_done(rig) == {b"lanes": b"0"}
    rig.barrier()
    assert init_done_writes(rig, mark) == 1


# ==========================================================================================================
# 11. Subscribe, then dump, then CONFIG_DB copy


def test_s11_subscribes_before_dump_before_config_copy(rig):
    """Statement 11: the RTNLGRP_LINK membership comes before the RTM_GETLINK dump (AF_UNSPEC, NLM_F_DUMP),
    and both come before the CONFIG_DB copy (strace of the real process)."""
    trace = NetlinkTrace(strace_netlink_start(rig))
    assert trace.membership is not None, "no RTNLGRP_LINK membership in the trace"
    index, fd = trace.membership
    assert trace.dumps, "no RTM_GETLINK dump in the trace"
    dump = trace.dumps[0][0]
    assert index < dump, "dump sent before joining RTNLGRP_LINK"
    assert "AF_UNSPEC" in trace.lines[dump], trace.lines[dump]
    assert trace.first_copy is not None, "no producer write of Ethernet0 in the trace"
    assert dump < trace.first_copy, "CONFIG_DB copy written before the dump was requested"


def test_s11_dump_replies_handled_like_live_events(rig):
    """Statement 11: links that exist before the start are handled from the dump exactly like live events
    (warm start, so they are not old interfaces)."""
    specs = {"Ethernet0": dict(up=True, peer_up=True), "Ethernet4": dict(up=True, peer_up=False),
             "Ethernet8": dict(up=False, peer_up=True), "Ethernet12": dict(up=True, peer_up=True, mtu=9100)}
    for name, spec in specs.items():
        rig.seed_appl(name)
        rig.add_port(name, **spec)
    rig.ns.batch(["link set dev Ethernet0 mode dormant", "link set dev " + rig.peers[b"Ethernet0"] + " down",
                  "link set dev " + rig.peers[b"Ethernet0"] + " up"])
    rig.enable_warm("system", "0")
    rig.start()
    rig.wait_state_matches_kernel(list(specs))
    rig.ns.ip("link", "set", "dev", "Ethernet8", "up")
    rig.wait_state_matches_kernel(["Ethernet8"])


def test_s11_no_link_lost_while_starting(rig):
    """Statement 11: links created while portsyncd starts (before, during and after the dump) all end up in
    STATE_DB, because the membership is taken before the dump."""
    names = [port_name(i) for i in range(200)]
    for name in names:
        rig.seed_appl(name)
    rig.enable_warm("system", "0")
    created = []
    stop = threading.Event()
    errors = []

    def create():
        try:
            for name in names:
                if stop.is_set():
                    return
                rig.add_port(name)
                created.append(name)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    worker = threading.Thread(target=create)
    worker.start()
    try:
        wait_for(lambda: len(created) >= 3, what="a few links before the start")
        daemon = rig.start(wait_ready=False)
        daemon.wait_ready()
        at_ready = len(created)
        wait_for(lambda: len(created) >= at_ready + 5 or worker.is_alive() is False, what="links after READY")
    finally:
        stop.set()
        worker.join()
    assert not errors, errors
    rig.wait_state_matches_kernel(created, timeout=20)


# ==========================================================================================================
# 12. Receive buffer, every message of every datagram


def test_s12_receive_buffer_asks_for_16_mib(rig):
    """Statement 12: SO_RCVBUF (or SO_RCVBUFFORCE) of at least 16 MiB on the subscribed netlink socket."""
    trace = NetlinkTrace(strace_netlink_start(rig))
    assert trace.membership is not None
    fd = trace.membership[1]
    on_fd = [(opt, value) for _, f, opt, value in trace.rcvbuf if f == fd]
    assert on_fd, f"no SO_RCVBUF on the subscribed socket {fd}: {trace.rcvbuf}"
    assert max(value for _, value in on_fd) >= 16 * 1024 * 1024, on_fd


def test_s12_receive_buffer_in_the_kernel(rig):
    """Statement 12: the kernel's view (ss) of the daemon's netlink socket has the buffer it asked for (at
    least 16 MiB, as far as net.core.rmem_max lets plain SO_RCVBUF go)."""
    daemon = rig.start()
    out = run(rig.ns.exec_argv("ss", "-f", "netlink", "-e", "-m", "-p")).stdout.decode()
    # The daemon is the only process of this namespace subscribed to RTMGRP_LINK (groups bit 0): its event socket
    # is the one with that bit, whatever port id the kernel gave it (the first netlink socket a process binds gets
    # its pid; the daemon's other netlink sockets, for dumps and statistics, may come first).
    assert daemon.pid
    buffers = [int(rb.group(1)) for line in out.splitlines()
               for rb, groups in [(re.search(r"rb(\d+)", line), re.search(r"groups=(0x[0-9a-f]+)", line))]
               if rb and groups and int(groups.group(1), 16) & 1]
    assert buffers, f"no netlink socket of pid {daemon.pid} in:\n{out}"
    rmem_max = int(open("/proc/sys/net/core/rmem_max").read())
    assert max(buffers) >= 2 * min(16 * 1024 * 1024, rmem_max), (buffers, rmem_max)


def test_s12_burst_of_links_all_synced(rig):
    """Statement 12: a burst of 64 new ports (hundreds of messages, many per datagram) is handled completely."""
    names = ports(64)
    for name in names:
        rig.seed_appl(name)
    rig.start()
    rig.add_ports(names)
    rig.wait_state_matches_kernel(names, timeout=20)


def test_s12_multipart_dump_every_link_handled(rig):
    """Statement 12: a dump of 120 ports (many datagrams up to NLMSG_DONE) is handled completely."""
    names = ports(120)
    for name in names:
        rig.seed_appl(name)
    rig.add_ports(names[0::2], up=True, peer_up=True)
    rig.add_ports(names[1::2], up=False, peer_up=True)
    rig.enable_warm("system", "0")
    rig.start()
    rig.wait_state_matches_kernel(names, timeout=20)


# ==========================================================================================================
# 13. Only RTM_NEWLINK / RTM_DELLINK


# What the kernel sends a socket joined to the neighbour, address and route groups (not the link group) while a port
# gets addresses, routes and neighbours, forwarded byte for byte to the daemon's event socket: a netlink unicast from
# this root process to the socket's port id, found from the daemon's descriptors and its namespace's netlink table.
# Prints the number of messages forwarded, their types, and how many name the port (an RTM_NEWADDR's IFA_LABEL).
FORWARD_NON_LINK_SCRIPT = r"""
import json, os, re, socket, struct, subprocess, sys
pid = int(sys.argv[1])
inodes = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
    except OSError:
        continue
    if match:
        inodes.add(int(match.group(1)))
events = []
with open(f"/proc/{pid}/net/netlink") as table:
    next(table)
    for row in table:
        sk, protocol, port_id, groups, *_, inode = row.split()
        if int(protocol) == 0 and int(inode) in inodes and int(groups, 16) & 1:  # NETLINK_ROUTE, RTMGRP_LINK
            events.append(int(port_id))
assert len(events) == 1, f"the daemon's RTMGRP_LINK sockets: {events}"
listener = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
listener.bind((0, 0x4 | 0x10 | 0x40 | 0x100 | 0x400))  # NEIGH, IPV4_IFADDR, IPV4_ROUTE, IPV6_IFADDR, IPV6_ROUTE
for line in sys.argv[2:]:
    subprocess.run(["ip", *line.split()], check=True)
listener.settimeout(0.3)
datagrams = []
while True:
    try:
        datagrams.append(listener.recv(65536))
    except socket.timeout:
        break
sender = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
sender.bind((0, 0))
types, labelled, count = set(), 0, 0
for datagram in datagrams:
    sender.sendto(datagram, (events[0], 0))
    offset = 0
    while offset + 16 <= len(datagram):
        length, kind = struct.unpack_from("=IH", datagram, offset)
        types.add(kind)
        count += 1
        labelled += kind == 20 and b"Ethernet0\0" in datagram[offset:offset + length]
        offset += (length + 3) & ~3
print(json.dumps({"messages": count, "types": sorted(types), "labelled": labelled}))
"""


def other_messages(path, at_least=0) -> list | Miss:
    """[n], n being the daemon's count of netlink messages that were neither RTM_NEWLINK nor RTM_DELLINK (from its
    metrics file), once n >= at_least; a list, so that 0 is an answer for `wait_for`."""
    text = path.read_text() if path.exists() else ""
    match = re.search(r'^portsyncd_netlink_messages_total\{type="other"\} (\S+)$', text, re.M)
    if not match:
        return Miss("no metric yet")
    count = int(float(match.group(1)))
    return [count] if count >= at_least else Miss(count)


def test_s13_non_link_rtnetlink_traffic_writes_nothing(rig):
    """Statement 13: address, route and neighbour messages about a port (other rtnetlink types) cause no Redis
    write; only link messages do.

    The daemon's socket joins only RTMGRP_LINK, so the kernel alone never sends it these types, and changing
    addresses, routes and neighbours proves nothing by itself. So the messages the kernel sent for those changes to
    another socket are forwarded, byte for byte, to the daemon's socket, and its metrics show they arrived. Without
    the type rule they would be taken for link messages: an RTM_NEWADDR carries the port's name where a link
    message does (IFA_LABEL and IFLA_IFNAME are both attribute 3), and would delete its STATE_DB row.
    (Tests/PortSyncCoreTests/CapturedRuleTests.swift has the same rule on captured datagrams, without a daemon.)"""
    metrics = rig.tmp / "metrics.prom"
    daemon = rig.start(config={"telemetry": {"metrics_file": str(metrics)}})
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0")
    # RUNNING comes from the kernel's link watch a moment after the carrier: before it, STATE_DB can equal the kernel
    # (oper down) with one more NEWLINK still to come, which would land among the writes checked below.
    wait_for(lambda: rig.ns.link("Ethernet0").running, what="Ethernet0 RUNNING in the kernel")
    rig.wait_state_row("Ethernet0", {"state": "ok", "admin_status": "up", "netdev_oper_status": "up"})
    rig.barrier()
    [before] = wait_for(lambda: other_messages(metrics), what="the daemon's metrics file")
    mark = rig.events.mark()
    result = run(rig.ns.exec_argv(
        "python3", "-c", FORWARD_NON_LINK_SCRIPT, str(daemon.pid),
        "addr add 192.0.2.1/24 dev Ethernet0",
        "route add 198.51.100.0/24 via 192.0.2.2 dev Ethernet0",
        "neigh add 192.0.2.2 lladdr 02:00:00:00:00:02 dev Ethernet0",
        "addr add 2001:db8::1/64 dev Ethernet0 nodad",
        "route del 198.51.100.0/24",
        "neigh del 192.0.2.2 dev Ethernet0",
        "addr del 192.0.2.1/24 dev Ethernet0"))
    forwarded = json.loads(result.stdout)
    # RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWNEIGH, RTM_DELNEIGH; some naming Ethernet0.
    assert {20, 21, 24, 25, 28}.issubset(forwarded["types"]), forwarded
    assert forwarded["labelled"] >= 1, forwarded
    rig.barrier()  # the forwarded datagrams were queued on the daemon's socket before the sentinel's NEWLINK
    writes = [e for e in rig.events.since(mark) if b"Ethernet0" in e.key]
    assert writes == [], (forwarded, [line for line in daemon.log_lines() if "Ethernet0" in line][-6:])
    assert rig.state_row("Ethernet0").get("state") == "ok"
    wait_for(lambda: other_messages(metrics, at_least=before + forwarded["messages"]),
             what=f"{forwarded['messages']} forwarded messages counted as other types")
    rig.ns.ip("link", "set", "dev", "Ethernet0", "mtu", "1400")
    rig.wait_state_row("Ethernet0", {"mtu": "1400"})


# ==========================================================================================================
# 14. Name filter


ACCEPTED_NAMES = ["Ethernet-IB0", "Ethernet0.10", "Ethernet-Rec0", "Ethernet-BP0", "PortChannel0001", "Ethernet"]
IGNORED_NAMES = ["eth0", "Vlan10", "Eth1_1", "ethernet0", "ETHERNET0", "Etherne", "portchannel2", "xEthernet0",
                 "Port", "PortChanne1"]


def test_s14_only_ethernet_and_portchannel_prefixes(rig):
    """Statement 14: names starting with Ethernet or PortChannel are synced (Ethernet-IB0, Ethernet0.10,
    ...); eth0, lo, Vlan10, Bridge, Eth1_1 (Eth1/1 is not a valid Linux name) and other case or prefix variants
    produce no Redis traffic at all."""
    rig.start()
    for name in ACCEPTED_NAMES + IGNORED_NAMES + ["lo", "Bridge", "PortChannel9"]:
        rig.seed_appl(name)
    rig.seed_sentinel()
    monitor = rig.monitor()
    for name in ACCEPTED_NAMES + IGNORED_NAMES:
        if name != "Vlan10":
            rig.add_port(name)
    rig.ns.batch(["link add Vlan10 type bridge", "link set dev Vlan10 up", "link add Bridge type bridge",
                  "link set dev Bridge up", "link set dev lo up", "link add PortChannel9 type bridge",
                  "link set dev PortChannel9 up"])
    rig.barrier()
    rig.wait_state_matches_kernel(ACCEPTED_NAMES + ["PortChannel9"])
    monitor.sync(rig.appl)
    commands = monitor.snapshot()
    ignored = [b(n) for n in IGNORED_NAMES + ["lo", "Bridge"]]
    for name in ignored:
        assert rig.state_row(name) == {}, name
    touched = []
    for c in commands:
        for arg in c.args[1:]:
            for name in ignored:
                if arg == name or arg.endswith(b":" + name) or arg.endswith(b"|" + name):
                    touched.append((name, c.args))
    assert touched == [], "Redis traffic for ignored names"


# ==========================================================================================================
# 15. admin from IFF_UP, oper from IFF_RUNNING


def test_s15_up_without_running_gives_oper_down(rig):
    """Statement 15: IFF_UP without IFF_RUNNING (peer down: no carrier) gives admin_status=up,
    netdev_oper_status=down."""
    rig.start()
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0", up=True, peer_up=False)
    link = rig.ns.link("Ethernet0")
    assert link.admin_up and not link.running, hex(link.flags)
    rig.wait_state_row("Ethernet0", {"state": "ok", "admin_status": "up", "netdev_oper_status": "down",
                                     "mtu": "1500"})


def test_s15_lower_up_without_running_gives_oper_down(rig):
    """Statement 15: IFF_LOWER_UP is not used: a dormant link (UP, LOWER_UP, not RUNNING) is oper down; once it
    is RUNNING it is oper up."""
    rig.start()
    rig.seed_appl("Ethernet0")
    peer = rig.add_port("Ethernet0", up=True, peer_up=True)
    rig.wait_state_row("Ethernet0", {"admin_status": "up", "netdev_oper_status": "up"})
    # The kernel only re-evaluates the operational state when it changes, so each carrier change is awaited.
    rig.ns.batch(["link set dev Ethernet0 mode dormant", f"link set dev {peer} down"])
    wait_for(lambda: rig.ns.link("Ethernet0").operstate not in (IF_OPER_UP, None), what="Ethernet0 oper down")
    rig.ns.ip("link", "set", "dev", peer, "up")

    def dormant():
        link = rig.ns.link("Ethernet0")
        if link.operstate == IF_OPER_DORMANT and link.flags & IFF_LOWER_UP and not link.flags & IFF_RUNNING:
            return link
        return Miss((hex(link.flags), link.operstate))

    wait_for(dormant, what="Ethernet0 UP and LOWER_UP but not RUNNING (dormant)")
    rig.wait_state_row("Ethernet0", {"admin_status": "up", "netdev_oper_status": "down"})
    rig.ns.batch(["link set dev Ethernet0 mode default", f"link set dev {peer} down"])
    wait_for(lambda: rig.ns.link("Ethernet0").operstate not in (IF_OPER_DORMANT, None), what="Ethernet0 not dormant")
    rig.ns.ip("link", "set", "dev", peer, "up")
    wait_for(lambda: rig.ns.link("Ethernet0").running, what="Ethernet0 RUNNING again")
    rig.wait_state_row("Ethernet0", {"admin_status": "up", "netdev_oper_status": "up"})
    rig.wait_state_matches_kernel(["Ethernet0"])


def test_s15_admin_and_oper_follow_the_flags(rig):
    """Statement 15: down/down, up/down, up/up and back, and mtu = IFLA_MTU, through real transitions."""
    rig.start()
    rig.seed_appl("Ethernet0")
    peer = rig.add_port("Ethernet0", up=False, peer_up=False)
    rig.wait_state_row("Ethernet0", {"admin_status": "down", "netdev_oper_status": "down", "mtu": "1500"})
    rig.ns.ip("link", "set", "dev", "Ethernet0", "up")
    rig.wait_state_row("Ethernet0", {"admin_status": "up", "netdev_oper_status": "down"})
    rig.ns.ip("link", "set", "dev", peer, "up")
    rig.wait_state_row("Ethernet0", {"admin_status": "up", "netdev_oper_status": "up"})
    rig.ns.ip("link", "set", "dev", "Ethernet0", "mtu", "9100")
    rig.wait_state_row("Ethernet0", {"admin_status": "up", "netdev_oper_status": "up", "mtu": "9100"})
    rig.ns.ip("link", "set", "dev", "Ethernet0", "down")
    rig.wait_state_row("Ethernet0", {"admin_status": "down", "netdev_oper_status": "down", "mtu": "9100"})
    rig.wait_state_matches_kernel(["Ethernet0"])


# ==========================================================================================================
# 16. team


def test_s16_team_kind_is_ignored(rig):
    """Statement 16: a link of kind "team" (teamd's PortChannel) causes no Redis write, NEWLINK or DELLINK."""
    rig.start()
    rig.seed_appl("PortChannel0002")
    rig.seed_sentinel()
    result = rig.ns.ip("link", "add", "PortChannel0002", "type", "team", check=False)
    if result.returncode != 0:
        pytest.skip(f"this kernel has no team driver ({result.stderr.decode().strip()}); s16CapturedTeam "
                    "(Tests/PortSyncCoreTests/CapturedRuleTests.swift) runs the rule on real datagrams whose kind is "
                    "rewritten to team, and test_s16_kind_rule_is_not_a_name_rule covers the closest real case")
    mark = rig.events.mark()
    rig.ns.ip("link", "set", "dev", "PortChannel0002", "up")
    rig.ns.ip("link", "del", "dev", "PortChannel0002")
    rig.barrier()
    assert [e for e in rig.events.since(mark) if e.key.endswith(b"PortChannel0002")] == []


def test_s16_kind_rule_is_not_a_name_rule(rig):
    """Statement 16 (closest real case without a team driver): the skip is by IFLA_INFO_KIND, not by name:
    PortChannel links of kind bridge and veth are synced, NEWLINK and DELLINK."""
    rig.start()
    rig.seed_appl("PortChannel0001")
    rig.seed_appl("PortChannel0003")
    rig.ns.batch(["link add PortChannel0001 type bridge", "link set dev PortChannel0001 up"])
    rig.add_port("PortChannel0003")
    links = rig.links()
    assert links[b"PortChannel0001"].kind == "bridge" and links[b"PortChannel0003"].kind == "veth"
    rig.wait_state_matches_kernel(["PortChannel0001", "PortChannel0003"])
    rig.ns.ip("link", "del", "dev", "PortChannel0001")
    wait_for(lambda: rig.state_row("PortChannel0001") == {}, what="PortChannel0001 deleted from STATE_DB")


# ==========================================================================================================
# 17. master


def test_s17_newlink_with_master_processed_dellink_with_master_ignored(rig):
    """Statement 17: NEWLINK with IFLA_MASTER (a bridge member) is processed; the AF_BRIDGE DELLINK with a
    master sent when the port leaves the bridge (or the bridge goes) is ignored; a real removal still deletes."""
    rig.start()
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0")
    rig.wait_state_matches_kernel(["Ethernet0"])
    rig.ns.batch(["link add Bridge type bridge", "link set dev Ethernet0 master Bridge",
                  "link set dev Ethernet0 mtu 1400"])
    links = rig.links()
    assert links[b"Ethernet0"].master == links[b"Bridge"].ifindex
    rig.wait_state_row("Ethernet0", {"state": "ok", "mtu": "1400"})
    mark = rig.events.mark()
    rig.ns.ip("link", "set", "dev", "Ethernet0", "nomaster")
    rig.barrier()
    assert rig.state_row("Ethernet0").get("state") == "ok"
    rig.ns.batch(["link set dev Ethernet0 master Bridge", "link del dev Bridge"])
    rig.barrier()
    assert rig.state_row("Ethernet0").get("state") == "ok"
    assert rig.events.count(STATE_DB, "del", b"PORT_TABLE|Ethernet0", mark) == 0
    rig.ns.ip("link", "del", "dev", "Ethernet0")
    wait_for(lambda: rig.state_row("Ethernet0") == {}, what="Ethernet0 deleted from STATE_DB")


# ==========================================================================================================
# 18. NEWLINK -> one HSET, only with an APPL_DB entry


def test_s18_one_hset_in_sonic_field_order(rig):
    """Statement 18: each accepted NEWLINK gives exactly one HSET PORT_TABLE|<name> state ok netdev_oper_status
    <s> admin_status <s> mtu <n> (no per-field HSETs, no DEL+HSET)."""
    rig.start()
    rig.seed_appl("Ethernet0")
    rig.seed_sentinel()
    monitor = rig.monitor()
    peer = rig.add_port("Ethernet0", up=True, peer_up=False)
    rig.wait_state_row("Ethernet0", {"admin_status": "up", "netdev_oper_status": "down"})
    rig.ns.ip("link", "set", "dev", peer, "up")
    rig.wait_state_row("Ethernet0", {"netdev_oper_status": "up"})
    rig.ns.ip("link", "set", "dev", "Ethernet0", "mtu", "9100")
    rig.wait_state_row("Ethernet0", {"mtu": "9100"})
    monitor.sync(rig.appl)
    key = b"PORT_TABLE|Ethernet0"
    touching = [c for c in monitor.snapshot()
                if c.db == STATE_DB and c.name in WRITE_COMMANDS and len(c.args) > 1 and c.args[1] == key]
    assert touching, "no write of PORT_TABLE|Ethernet0"
    shape = re.compile(rb"^(up|down)$")
    for c in touching:
        assert c.name == "HSET", f"not a single HSET: {c.args}"
        assert c.args[2::2] == [b"state", b"netdev_oper_status", b"admin_status", b"mtu"], c.args
        assert c.args[3] == b"ok" and shape.match(c.args[5]) and shape.match(c.args[7]) and c.args[9].isdigit()
    assert (b"9100" in [c.args[9] for c in touching])


def test_s18_merges_into_existing_state_row(rig):
    """Statement 18: the HSET merges: fields written by others (portsorch's speed, ...) stay, and the key is
    never deleted to be rewritten."""
    rig.start()
    rig.seed_appl("Ethernet0")
    rig.state.hset(b"PORT_TABLE|Ethernet0", mapping={b"speed": b"100000", b"supported_speeds": b"40000,100000"})
    mark = rig.events.mark()
    rig.add_port("Ethernet0")
    rig.wait_state_matches_kernel(["Ethernet0"])
    rig.ns.ip("link", "set", "dev", "Ethernet0", "mtu", "1400")
    row = rig.wait_state_row("Ethernet0", {"mtu": "1400"})
    assert row["speed"] == "100000" and row["supported_speeds"] == "40000,100000"
    assert rig.events.count(STATE_DB, "del", b"PORT_TABLE|Ethernet0", mark) == 0


def test_s18_no_appl_entry_no_write_and_not_seen(rig):
    """Statement 18: with no APPL_DB PORT_TABLE:<name>, nothing is written, `Cannot find <name> in port table`
    is logged, and the port does not count as seen; once the entry exists the next NEWLINK writes it."""
    rig.configure_ports(["Ethernet0"])
    daemon = rig.start()
    rig.seed_sentinel()
    rig.add_port("Ethernet0")
    daemon.wait_log(r"Cannot find Ethernet0 in port table")
    rig.barrier()
    assert rig.state_row("Ethernet0") == {}
    assert rig.producer_pending("PortInitDone") is None
    rig.orchagent_pop()
    assert rig.appl.exists(b"PORT_TABLE:Ethernet0")
    rig.ns.ip("link", "set", "dev", "Ethernet0", "mtu", "1400")
    rig.wait_state_row("Ethernet0", {"state": "ok", "mtu": "1400"})
    assert wait_init_done(rig) == {b"lanes": b"0"}


def test_s18_any_appl_field_is_enough(rig):
    """Statement 18: any field in APPL_DB PORT_TABLE:<name> (here only `lanes`) is enough to write."""
    rig.start()
    rig.seed_appl("Ethernet0", {"lanes": "1,2,3,4"})
    rig.add_port("Ethernet0")
    rig.wait_state_matches_kernel(["Ethernet0"])


# ==========================================================================================================
# 19. DELLINK


def test_s19_dellink_deletes_state_row_without_appl_check(rig):
    """Statement 19: a DELLINK deletes STATE_DB PORT_TABLE|<name> as a whole (other writers' fields too), even
    when APPL_DB has no PORT_TABLE:<name> any more."""
    rig.start()
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0")
    rig.wait_state_matches_kernel(["Ethernet0"])
    rig.state.hset(b"PORT_TABLE|Ethernet0", b"speed", b"100000")
    rig.appl.delete(b"PORT_TABLE:Ethernet0")
    mark = rig.events.mark()
    rig.ns.ip("link", "del", "dev", "Ethernet0")
    wait_for(lambda: not rig.state.exists(b"PORT_TABLE|Ethernet0"), what="PORT_TABLE|Ethernet0 deleted")
    assert rig.events.count(STATE_DB, "del", b"PORT_TABLE|Ethernet0", mark) == 1


# ==========================================================================================================
# 20. No deduplication


def test_s20_unchanged_newlink_still_written(rig):
    """Statement 20: a NEWLINK that changes nothing portsyncd writes (a txqueuelen change) is still written,
    so subscribers get one keyspace event each time."""
    rig.start()
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0")
    rig.wait_state_matches_kernel(["Ethernet0"])
    rig.barrier()
    before = rig.state_row("Ethernet0")
    for qlen in (1001, 1002, 1003):
        count = rig.events.count(STATE_DB, "hset", b"PORT_TABLE|Ethernet0")
        rig.ns.ip("link", "set", "dev", "Ethernet0", "txqueuelen", str(qlen))
        wait_for(lambda: rig.events.count(STATE_DB, "hset", b"PORT_TABLE|Ethernet0") > count,
                 what=f"a STATE_DB write after txqueuelen {qlen}")
    assert rig.state_row("Ethernet0") == before


# ==========================================================================================================
# 21. ENOBUFS


def test_s21_enobufs_logged_and_daemon_keeps_running(rig):
    """Statement 21: a netlink receive-buffer overrun is logged with "High possibility of a lost message" and
    the daemon keeps running and syncing; whatever it does to recover (a re-dump is allowed) still ignores old
    interfaces (statement 28)."""
    rig.seed_appl("Ethernet200", {"lanes": "1"})
    rig.add_port("Ethernet200")
    daemon = rig.start(config={"netlink": {"receive_buffer_bytes": 65536}})
    wait_for(lambda: not rig.ns.link("Ethernet200").admin_up, what="old Ethernet200 brought down")
    names = ports(4)
    rig.add_synced_ports(names)
    daemon.signal(signal.SIGSTOP)
    try:
        lines = [f"link set dev {names[i % 4]} txqueuelen {1000 + i}" for i in range(600)]
        lines += ["link set dev Ethernet200 up", "link set dev Ethernet0 mtu 1400"]
        rig.ns.batch(lines)
    finally:
        daemon.signal(signal.SIGCONT)
    daemon.wait_log(r"High possibility of a lost message")
    assert daemon.alive
    rig.seed_appl("Ethernet100")
    rig.add_port("Ethernet100")
    rig.wait_state_matches_kernel(["Ethernet100"])
    rig.barrier()
    assert rig.state_row("Ethernet200") == {}, "an old interface was synced after the overrun"
    assert daemon.alive


# ==========================================================================================================
# 22 and 28. Old interfaces


def _start_with_old_interfaces(rig):
    for name in ("Ethernet0", "Ethernet4", "PortChannel0001", "eth0"):
        # APPL_DB entries without admin_status, so the configured ports are not "seen" at start (statement 23).
        rig.seed_appl(name, {"lanes": "1,2,3,4", "mtu": "9100"})
        rig.add_port(name, up=True, peer_up=True)
    old = rig.links()
    rig.configure_ports(["Ethernet0", "Ethernet4"])
    daemon = rig.start()
    return daemon, old


def test_s22_existing_ethernet_interfaces_brought_down_and_ignored(rig):
    """Statement 22: on a cold start every existing Ethernet* interface is brought admin down and goes into
    the old set: neither the dump nor the resulting NEWLINKs write STATE_DB. Other names are left alone."""
    daemon, old = _start_with_old_interfaces(rig)
    wait_for(lambda: not rig.ns.link("Ethernet0").admin_up and not rig.ns.link("Ethernet4").admin_up,
             what="Ethernet0 and Ethernet4 brought down")
    rig.barrier()
    links = rig.links()
    assert links[b"PortChannel0001"].admin_up and links[b"eth0"].admin_up
    assert links[b"Ethernet0"].ifindex == old[b"Ethernet0"].ifindex
    assert rig.state_row("Ethernet0") == {} and rig.state_row("Ethernet4") == {}
    rig.wait_state_matches_kernel(["PortChannel0001"])
    assert daemon.alive


def test_s28_old_ifindex_ignored_for_life_new_ifindex_synced(rig):
    """Statement 28: every later NEWLINK/DELLINK of an old ifindex is ignored (no write, no delete); a new
    netdev with the same name (new ifindex) is synced. An old port never counts as seen."""
    daemon, _ = _start_with_old_interfaces(rig)
    wait_for(lambda: not rig.ns.link("Ethernet0").admin_up, what="Ethernet0 brought down")
    rig.orchagent_pop()
    rig.state.hset(b"PORT_TABLE|Ethernet4", b"state", b"ok")
    rig.barrier()
    mark = rig.events.mark()
    rig.ns.batch(["link set dev Ethernet0 up", "link set dev Ethernet0 mtu 1400", "link set dev Ethernet0 down",
                  "link set dev Ethernet0 up", "link del dev Ethernet4"])
    rig.barrier()
    old_writes = [e for e in rig.events.since(mark) if e.key in (b"PORT_TABLE|Ethernet0", b"PORT_TABLE|Ethernet4")]
    assert old_writes == []
    assert rig.state_row("Ethernet4") == {"state": "ok"}
    rig.add_port("Ethernet4")
    rig.wait_state_matches_kernel(["Ethernet4"])
    rig.barrier()
    assert rig.state_row("Ethernet0") == {}
    assert rig.producer_pending("PortInitDone") is None and init_done_writes(rig) == 0
    assert daemon.alive


# ==========================================================================================================
# 23. APPL_DB admin_status counts as seen (cold)


def test_s23_appl_admin_status_counts_as_seen(rig):
    """Statement 23: on a cold start, ports whose APPL_DB final hash already has admin_status count as seen,
    so PortInitDone comes without any netdev."""
    names = ports(2)
    for i, name in enumerate(names):
        rig.seed_appl(name, default_port_fields(i))
    rig.configure_ports(names)
    rig.start()
    assert wait_init_done(rig) == {b"lanes": b"0"}


def test_s23_appl_hash_without_admin_status_is_not_seen(rig):
    """Statement 23: a final hash without admin_status does not count; PortInitDone waits for the netdev."""
    rig.seed_appl("Ethernet0", default_port_fields(0))
    rig.seed_appl("Ethernet4", {"lanes": "5,6,7,8"})
    rig.configure_ports(["Ethernet0", "Ethernet4"])
    rig.start()
    rig.barrier()
    assert rig.producer_pending("PortInitDone") is None
    rig.add_port("Ethernet4")
    assert wait_init_done(rig) == {b"lanes": b"0"}


# ==========================================================================================================
# 24. Warm start: no old interfaces, no pruning


def test_s24_warm_start_keeps_existing_interfaces_and_does_not_prune(rig):
    """Statement 24: on a warm start existing Ethernet interfaces stay up and are synced (no old set), and
    APPL_DB admin_status does not count as seen: PortInitDone waits for every port's NEWLINK."""
    names = ports(2)
    for i, name in enumerate(names):
        rig.seed_appl(name, default_port_fields(i))
    rig.configure_ports(names)
    rig.add_port("Ethernet0", up=True, peer_up=True)
    rig.enable_warm("system", "5")
    rig.start()
    assert rig.ns.link("Ethernet0").admin_up
    rig.wait_state_matches_kernel(["Ethernet0"])
    rig.barrier()
    assert rig.producer_pending("PortInitDone") is None and init_done_writes(rig) == 0
    rig.ns.ip("link", "set", "dev", "Ethernet0", "mtu", "1400")
    rig.wait_state_row("Ethernet0", {"mtu": "1400"})
    rig.add_port("Ethernet4")
    assert wait_init_done(rig) == {b"lanes": b"0"}
    assert rig.ns.link("Ethernet0").admin_up


# ==========================================================================================================
# 25. READY=1 and the watchdog


def test_s25_ready_after_startup_writes_and_snapshot(rig):
    """Statement 25: when READY=1 arrives, restore_count, the startup copy, PortConfigDone are in Redis and the
    existing Ethernet interfaces are already down; a port made right after READY is new, not old."""
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0", up=True, peer_up=True)
    rig.configure_ports(["Ethernet0", "Ethernet4"])
    rig.start()
    assert rig.state.hget(WARM_KEY, b"restore_count") == b"0"
    assert rig.producer_pending("Ethernet0") == bytes_fields(default_port_fields(0))
    assert rig.producer_pending("Ethernet4") == bytes_fields(default_port_fields(1))
    assert rig.producer_pending("PortConfigDone") == {b"count": b"2"}
    assert not rig.ns.link("Ethernet0").admin_up
    rig.seed_appl("Ethernet4")
    rig.add_port("Ethernet4")
    rig.wait_state_matches_kernel(["Ethernet4"])


def test_s25_watchdog_pings_continue_after_ready(rig):
    """Statement 25: with WATCHDOG_USEC set, WATCHDOG=1 keeps coming after READY=1."""
    daemon = rig.start(env={"WATCHDOG_USEC": "300000"})
    ready_at = daemon.notify.index("READY=1")
    wait_for(lambda: daemon.notify.assignments()[ready_at:].count("WATCHDOG=1") >= 4,
             what="4 WATCHDOG=1 after READY=1")
    assert daemon.alive


def test_s25_sigterm_sends_stopping_and_exits_0(rig):
    """Statement 25 (systemd side): SIGTERM gives STOPPING=1 and exit status 0."""
    daemon = rig.start()
    assert daemon.stop() == 0
    assignments = daemon.notify.assignments()
    assert "STOPPING=1" in assignments[assignments.index("READY=1"):]


# ==========================================================================================================
# 26. Logging


def test_s26_notice_log_for_accepted_message(rig):
    """Statement 26: each accepted link message is logged at NOTICE with the type, name, ifindex, MAC, master,
    kind and flags."""
    daemon = rig.start()
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0")
    rig.ns.batch(["link add Bridge type bridge", "link set dev Ethernet0 master Bridge"])
    links = rig.links()
    link, bridge = links[b"Ethernet0"], links[b"Bridge"]
    wait_for(lambda: rig.state_row("Ethernet0").get("state") == "ok", what="Ethernet0 in STATE_DB")

    def number(value):
        return re.compile(rf"(?<![0-9A-Za-z]){value}(?![0-9])")

    def matching_line():
        for line in daemon.log_lines():
            if ("Ethernet0" in line and re.search(r"notice", line, re.I) and link.mac in line.lower()
                    and number(link.ifindex).search(line) and number(bridge.ifindex).search(line)):
                return line
        return Miss([l for l in daemon.log_lines() if "Ethernet0" in l][-3:])

    line = wait_for(matching_line, what="a NOTICE line with name, MAC, ifindex and master of Ethernet0")
    assert re.search(r"newlink|\b16\b", line, re.I), line
    assert "veth" in line, line
    assert re.search(r"flags\W{0,3}(0x[0-9a-fA-F]+|[0-9]+)", line), line


def test_s26_logger_defaults_written_if_missing(rig):
    """Statement 26: CONFIG_DB LOGGER|portsyncd gets LOGLEVEL=NOTICE and LOGOUTPUT=SYSLOG if missing; values
    already there are kept."""
    daemon = rig.start()
    wait_for(lambda: rig.config_db.hgetall(b"LOGGER|portsyncd") ==
             {b"LOGLEVEL": b"NOTICE", b"LOGOUTPUT": b"SYSLOG"} or Miss(rig.config_db.hgetall(b"LOGGER|portsyncd")),
             what="LOGGER|portsyncd defaults")
    assert daemon.stop() == 0
    rig.config_db.hset(b"LOGGER|portsyncd", mapping={b"LOGLEVEL": b"INFO", b"LOGOUTPUT": b"STDERR"})
    rig.start()
    rig.barrier()
    assert rig.config_db.hgetall(b"LOGGER|portsyncd") == {b"LOGLEVEL": b"INFO", b"LOGOUTPUT": b"STDERR"}


# ==========================================================================================================
# 27. Exit status


def test_s27_database_map_missing_at_start(rig):
    """Statement 27: no database map at start-up: either exit 1 (SONiC), or, as the allowed improvement, no
    READY while it is missing and a normal cold start once it appears."""
    late_map = rig.tmp / "late" / "database_config.json"
    rig.configure_ports(["Ethernet0"])
    daemon = rig.start(config={"redis": {"database_config": str(late_map)}}, wait_ready=False)
    try:
        code = daemon.wait_exit(3)
    except AssertionError:
        code = None
    if code is not None:
        assert code == 1, daemon.stderr()
        assert "READY=1" not in daemon.notify.assignments()
        return
    assert "READY=1" not in daemon.notify.assignments(), "READY=1 without a database map"
    late_map.parent.mkdir()
    write_database_config(late_map, rig.redis.socket)
    daemon.wait_ready()
    assert wait_pending(rig, "PortConfigDone") == {b"count": b"1"}
    assert wait_pending(rig, "Ethernet0") == bytes_fields(default_port_fields(0))


def _restrict_default_user(rig, *patterns):
    """Give the test its own Redis user and limit the default user (portsyncd's) to the key patterns given."""
    admin = rig.redis.client(0)
    admin.execute_command("ACL", "SETUSER", "psdadmin", "on", ">psd", "~*", "&*", "+@all")
    admin.close()
    rig.redis.auth = ("psdadmin", "psd")
    rig.reset_clients()
    rig.db(0).execute_command("ACL", "SETUSER", "default", "resetkeys", *patterns, "resetchannels", "&*")


STARTUP_PATTERNS = ("~PORT_TABLE*", "~PORT|*", "~_PORT_TABLE:Ethernet*", "~WARM_RESTART*", "~DEVICE_METADATA*",
                    "~LOGGER*")


@pytest.mark.parametrize("error", ["wrongtype_config_port", "noperm_port_config_done"])
def test_s27_redis_error_at_startup_exits_1(rig, error):
    """Statement 27: a Redis error reply at start-up (a CONFIG_DB PORT key that is not a hash: WRONGTYPE; or
    the PortConfigDone write refused: NOPERM) is fatal: exit status 1 and no READY."""
    rig.configure_ports(["Ethernet0"])
    if error == "wrongtype_config_port":
        rig.config_db.set(b"PORT|Ethernet4", b"not a hash")
    else:
        _restrict_default_user(rig, *STARTUP_PATTERNS)
    daemon = rig.start(wait_ready=False)
    assert daemon.wait_exit(15) == 1, daemon.stderr()[-2000:]
    assert "READY=1" not in daemon.notify.assignments()


def test_s27_redis_unreachable_at_start(rig):
    """Statement 27: Redis down at start-up: either exit 1 (SONiC) or, as the allowed improvement, no READY
    until Redis is there and then a normal cold start with exactly one PortConfigDone."""
    rig.redis.kill()
    daemon = rig.start(wait_ready=False)
    try:
        code = daemon.wait_exit(3)
    except AssertionError:
        code = None
    if code is not None:
        assert code == 1, daemon.stderr()
        assert "READY=1" not in daemon.notify.assignments()
        return
    assert "READY=1" not in daemon.notify.assignments(), "READY=1 sent without Redis"
    rig.redis.start(seed={CONFIG_DB: {"PORT|Ethernet0": default_port_fields(0)}})
    rig.reset_clients()
    daemon.wait_ready()
    assert wait_pending(rig, "Ethernet0") == bytes_fields(default_port_fields(0))
    assert wait_pending(rig, "PortConfigDone") == {b"count": b"1"}
    assert rig.appl.scard(KEY_SET) == 2


def test_s27_port_init_done_write_error_exits_1(rig):
    """Statement 27: a Redis error while writing PortInitDone is fatal: exit status 1 (here Redis refuses the
    key through an ACL; start-up may read it, to decide the kind of start)."""
    rig.configure_ports(["Ethernet0"])
    _restrict_default_user(rig, *STARTUP_PATTERNS, "~_PORT_TABLE:PortConfigDone", "%R~_PORT_TABLE:PortInitDone")
    daemon = rig.start()
    rig.orchagent_pop()
    rig.add_port("Ethernet0")
    wait_for(lambda: rig.state_row("Ethernet0").get("state") == "ok", what="Ethernet0 in STATE_DB")
    assert daemon.wait_exit(10) == 1
    assert rig.producer_pending("PortInitDone") is None


def test_s27_reconnect_does_not_resend_port_config_done(rig):
    """Statement 27: after Redis comes back with its data (APPL_DB still holds the PortConfigDone and PortInitDone
    orchagent consumed), a reconnecting daemon neither copies the ports again nor re-sends PortConfigDone (nor
    PortInitDone, statement 10), and keeps syncing. (Redis back empty is a flush: statement 33.)"""
    daemon = rig.cold_start(["Ethernet0"])
    rig.add_port("Ethernet0")
    wait_init_done(rig)
    rig.redis.kill()
    seed = {CONFIG_DB: {"PORT|Ethernet0": default_port_fields(0)},
            APPL_DB: {"PORT_TABLE:Ethernet0": default_port_fields(0), "PORT_TABLE:Ethernet4": {"admin_status": "up"},
                      "PORT_TABLE:PortConfigDone": {"count": "1"}, "PORT_TABLE:PortInitDone": {"lanes": "0"}}}
    rig.redis.start(seed=seed)
    rig.reset_clients()
    rig.sentinel_seeded = rig.sentinel_ready = False
    wait_for(rig.events.connected.is_set, what="event recorder reconnected")
    rig.ns.ip("link", "set", "dev", "Ethernet0", "mtu", "1400")
    rig.wait_state_row("Ethernet0", {"state": "ok", "mtu": "1400"}, timeout=15)
    rig.add_port("Ethernet4")
    rig.wait_state_matches_kernel(["Ethernet0", "Ethernet4"])
    assert rig.appl.smembers(KEY_SET) == set()
    assert rig.appl.keys(b"_PORT_TABLE:*") == []
    assert daemon.alive


# ==========================================================================================================
# 29. Command line


def test_s29_unknown_option_gives_usage_and_nonzero_exit(portsyncd_bin):
    """Statement 29: an unknown option prints usage on stderr and exits non-zero."""
    for option in ("--bogus", "-x", "--no-such-option=1"):
        result = subprocess.run([str(portsyncd_bin), option], capture_output=True, timeout=20)
        assert result.returncode != 0, option
        assert re.search(rb"usage", result.stderr, re.I), (option, result.stderr)


def test_s29_known_options_still_work(rig):
    """Statement 29 (the other side): --version exits 0, --check-config of a valid file exits 0."""
    result = subprocess.run([str(rig.binary), "--version"], capture_output=True, timeout=20)
    assert result.returncode == 0 and (result.stdout.strip() or result.stderr.strip())
    path = rig.write_config()
    result = subprocess.run([str(rig.binary), "--config", str(path), "--check-config"], capture_output=True,
                            timeout=20)
    assert result.returncode == 0, result.stderr


# ==========================================================================================================
# 30. Interop


def _check_swss_ready(rig, names, orchagent):
    """What sonic-swss tests/conftest.py check_swss_ready waits for."""
    wait_for(lambda: rig.appl.hget(b"PORT_TABLE:PortConfigDone", b"count") == b(len(names)) or
             Miss(rig.appl.hgetall(b"PORT_TABLE:PortConfigDone")), what="PORT_TABLE:PortConfigDone count")
    wait_for(lambda: rig.appl.hgetall(b"PORT_TABLE:PortInitDone") == {b"lanes": b"0"} or
             Miss(rig.appl.hgetall(b"PORT_TABLE:PortInitDone")), what="PORT_TABLE:PortInitDone lanes=0")
    for name in names:
        wait_for(lambda: rig.state_row(name).get("state") == "ok", what=f"STATE_DB PORT_TABLE|{name} state ok")
    assert [k for k, f in orchagent.results() if not f] == []


def test_s30_interop_cold_start_check_swss_ready(rig):
    """Statement 30: with an emulated orchagent (subscribe + consumer Lua), a cold start ends with
    PortConfigDone count=N, PortInitDone lanes=0 and state=ok for every port."""
    names = ports(8)
    rig.configure_ports(names)
    daemon = rig.start()
    orchagent = OrchagentEmulator(rig)
    try:
        wait_for(lambda: all(rig.appl.exists(b"PORT_TABLE:" + b(n)) for n in names),
                 what="orchagent consumed every port")
        rig.add_ports(names)
        _check_swss_ready(rig, names, orchagent)
        for i, name in enumerate(names):
            assert rig.appl.hgetall(b"PORT_TABLE:" + b(name)) == bytes_fields(default_port_fields(i))
        rig.wait_state_matches_kernel(names)
    finally:
        orchagent.stop()
    assert daemon.alive


def test_s30_interop_orchagent_started_late(rig):
    """Statement 30: an orchagent that starts after portsyncd still picks up the entries queued before it
    (initial pop), and the switch becomes ready."""
    names = ports(4)
    rig.configure_ports(names)
    rig.start()
    wait_pending(rig, "PortConfigDone")
    orchagent = OrchagentEmulator(rig)
    try:
        rig.add_ports(names)
        _check_swss_ready(rig, names, orchagent)
    finally:
        orchagent.stop()


def test_s30_interop_warm_restart_check_swss_ready(rig):
    """Statement 30 (warm): after a cold run, a warm restart of portsyncd with the same orchagent keeps the
    switch ready: PortInitDone again, restore_count 1, STATE_DB rows equal the kernel."""
    names = ports(4)
    rig.configure_ports(names)
    first = rig.start()
    orchagent = OrchagentEmulator(rig)
    try:
        rig.add_ports(names)
        _check_swss_ready(rig, names, orchagent)
        assert first.stop() == 0
        rig.enable_warm("system", rig.state.hget(WARM_KEY, b"restore_count").decode())
        rig.appl.delete(b"PORT_TABLE:PortInitDone")
        mark = rig.events.mark()
        rig.start()
        _check_swss_ready(rig, names, orchagent)
        assert rig.state.hget(WARM_KEY, b"restore_count") == b"1"
        assert [e.key for e in rig.events.since(mark, APPL_DB)
                if e.key.startswith(b"_PORT_TABLE:") and e.key != b"_PORT_TABLE:PortInitDone"] == []
        rig.wait_state_matches_kernel(names)
    finally:
        orchagent.stop()

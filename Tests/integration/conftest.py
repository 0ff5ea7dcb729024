"""Fixtures for portsyncd's end-to-end tests.

Every test gets a `rig`: its own redis-server on a unix socket in a fresh temporary directory, a SONiC
`database_config.json` pointing at it, its own network namespace, and helpers to start the real daemon inside
that namespace, read what it tells systemd (NOTIFY_SOCKET), play orchagent (the consumer Lua script), make
veth pairs, and read the kernel's view of every link. Everything a test creates is removed by the fixture's
finalizer, also when the test fails.

Waiting is always done by polling a condition (`wait_for`); a timeout fails with what was awaited and the last
value seen.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / ".build" / "debug" / "portsyncd"
CONSUMER_LUA_PATH = Path(__file__).with_name("sonic_consumer.lua")
CONSUMER_LUA = CONSUMER_LUA_PATH.read_text()
CONSUMER_MARKER = b"sonic_consumer.lua"

APPL_DB = 0
CONFIG_DB = 4
STATE_DB = 6

DEFAULT_DB_IDS = {
    "APPL_DB": 0,
    "ASIC_DB": 1,
    "COUNTERS_DB": 2,
    "LOGLEVEL_DB": 3,
    "CONFIG_DB": 4,
    "FLEX_COUNTER_DB": 5,
    "STATE_DB": 6,
    "APPL_STATE_DB": 14,
}
DEFAULT_DB_SEPARATORS = {
    "APPL_DB": ":",
    "ASIC_DB": ":",
    "COUNTERS_DB": ":",
    "LOGLEVEL_DB": ":",
    "CONFIG_DB": "|",
    "FLEX_COUNTER_DB": ":",
    "STATE_DB": "|",
    "APPL_STATE_DB": ":",
}

IFF_UP = 0x1
IFF_RUNNING = 0x40
IFF_LOWER_UP = 0x10000

SENTINEL_PORT = "Ethernet9996"

_NS_COUNTER = itertools.count()


# ----------------------------------------------------------------------------------------------------------
# Waiting


class Miss:
    """A falsy predicate result that still says what was seen (shown when `wait_for` times out)."""

    def __init__(self, detail):
        self.detail = detail

    def __bool__(self):
        return False

    def __repr__(self):
        return repr(self.detail)


# Every observer thread below (Redis keyspace events, MONITOR, notify datagrams, daemon output) signals this
# condition when something happens, so `wait_for` re-checks its predicate on each event instead of on a timer.
ACTIVITY = threading.Condition()


def activity():
    """Wake every `wait_for`: something was observed."""
    with ACTIVITY:
        ACTIVITY.notify_all()


def wait_for(predicate, timeout=10.0, what=None, interval=0.05, ignore=()):
    """Wait until `predicate` returns something truthy and return that; fail after `timeout` seconds with
    what was awaited and the last value seen. It re-checks on every observed event (see ACTIVITY), and at the
    latest every `interval` seconds for changes no observer sees (a process exit, a kernel link state).
    Exceptions of the types in `ignore` count as "not yet"."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
        except ignore as error:  # noqa: PERF203 - polling loop
            last = f"{type(error).__name__}: {error}"
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            name = what or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {name}; last value seen: {last!r}")
        with ACTIVITY:
            ACTIVITY.wait(min(interval, max(0.0, deadline - time.monotonic())))


# ----------------------------------------------------------------------------------------------------------
# Small helpers


def pairs_to_dict(flat):
    """[f1, v1, f2, v2] -> {f1: v1, f2: v2}"""
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def b(value) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def decode_hash(raw: dict) -> dict:
    return {k.decode(errors="surrogateescape"): v.decode(errors="surrogateescape") for k, v in raw.items()}


def daemon_binary() -> Path:
    path = Path(os.environ.get("PORTSYNCD_BIN", str(DEFAULT_BIN)))
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"portsyncd binary not found or not executable at {path}; set PORTSYNCD_BIN to the binary to "
            "test (default: .build/debug/portsyncd in the repository).",
            pytrace=False,
        )
    return path


def run(argv, check=True, input=None, timeout=60):
    result = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"command failed ({result.returncode}): {argv!r}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
        )
    return result


def write_database_config(path: Path, socket_path: str, ids=None, separators=None, tcp_port=6379):
    """A SONiC `database_config.json` with every database on the instance `redis`."""
    ids = {**DEFAULT_DB_IDS, **(ids or {})}
    separators = {**DEFAULT_DB_SEPARATORS, **(separators or {})}
    document = {
        "INSTANCES": {"redis": {"hostname": "127.0.0.1", "port": tcp_port, "unix_socket_path": socket_path}},
        "DATABASES": {
            name: {"id": ids[name], "separator": separators[name], "instance": "redis"} for name in ids
        },
        "VERSION": "1.0",
    }
    path.write_text(json.dumps(document, indent=2))
    return path


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(str(value))


def toml_document(sections: dict) -> str:
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        for key, value in keys.items():
            lines.append(f"{key} = {toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Redis


class RedisServer:
    """A redis-server on a unix socket only, configured the way SONiC's database container is."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.socket = str(directory / "redis.sock")
        self.proc = None
        self.auth = None  # (username, password) for the test's own connections
        self._starts = itertools.count()

    def start(self, seed=None):
        """Start (or start again, on the same socket). `seed` = {db: {key: {field: value}}} is loaded from an
        RDB file, so the data is there before the first client can connect."""
        assert self.proc is None or self.proc.poll() is not None, "redis-server already running"
        dbfilename = f"start{next(self._starts)}.rdb"
        if seed:
            self._make_rdb(seed, dbfilename)
        argv = [
            "redis-server", "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "777",
            "--save", "", "--appendonly", "no", "--notify-keyspace-events", "AKE", "--databases", "100",
            "--client-output-buffer-limit", "pubsub 0 0 0",
            "--dir", str(self.dir), "--dbfilename", dbfilename,
            "--logfile", str(self.dir / "redis.log"), "--loglevel", "warning",
        ]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        probe = redis.Redis(unix_socket_path=self.socket, socket_timeout=2)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}; see {self.dir}/redis.log")
            return probe.ping()

        wait_for(up, timeout=10, what="redis-server to answer PING", ignore=(redis.ConnectionError, OSError))
        probe.close()

    def _make_rdb(self, seed, dbfilename):
        helper_dir = self.dir / f"seed-{dbfilename}.d"
        helper_dir.mkdir()
        helper_socket = str(helper_dir / "s.sock")
        helper = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", helper_socket, "--save", "", "--appendonly", "no",
             "--databases", "100", "--dir", str(helper_dir), "--dbfilename", dbfilename],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for db, keys in seed.items():
                client = redis.Redis(unix_socket_path=helper_socket, db=db, socket_timeout=5)
                wait_for(client.ping, timeout=10, what="seed redis-server", ignore=(redis.ConnectionError, OSError))
                for key, fields in keys.items():
                    client.hset(b(key), mapping={b(f): b(v) for f, v in fields.items()})
                client.close()
            saver = redis.Redis(unix_socket_path=helper_socket, socket_timeout=5)
            wait_for(saver.ping, timeout=10, what="seed redis-server", ignore=(redis.ConnectionError, OSError))
            saver.save()
            saver.close()
        finally:
            helper.kill()
            helper.wait()
        shutil.move(str(helper_dir / dbfilename), str(self.dir / dbfilename))
        shutil.rmtree(helper_dir, ignore_errors=True)

    def kill(self):
        """SIGKILL: nothing is saved, every connection breaks."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def client(self, db=0, **options) -> redis.Redis:
        if self.auth:
            options.setdefault("username", self.auth[0])
            options.setdefault("password", self.auth[1])
        return redis.Redis(unix_socket_path=self.socket, db=db, socket_timeout=10, **options)


@dataclass
class KeyEvent:
    db: int
    event: str
    key: bytes


class RedisEvents:
    """Records every keyspace event (`__keyevent@*__:*`, i.e. every write, any database) and every message
    published on a `PORT_TABLE_CHANNEL@*` channel, in order. Reconnects by itself after a Redis restart."""

    def __init__(self, server: RedisServer):
        self.server = server
        self.events: list[KeyEvent] = []
        self.publishes: list[tuple[bytes, bytes]] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.stopping = threading.Event()
        self.marks: dict = {}
        self._tokens = itertools.count()
        self.thread = threading.Thread(target=self._run, name="redis-events", daemon=True)

    def start(self):
        self.thread.start()
        wait_for(self.connected.is_set, timeout=10, what="keyspace event subscription")

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=5)

    def _run(self):
        while not self.stopping.is_set():
            pubsub = None
            try:
                pubsub = self.server.client(0).pubsub()
                pubsub.psubscribe("__keyevent@*__:*", "PORT_TABLE_CHANNEL@*")
                confirmations = 0
                while not self.stopping.is_set():
                    message = pubsub.get_message(timeout=0.05)
                    if message is None:
                        continue
                    activity()
                    if message["type"] == "psubscribe":
                        confirmations += 1
                        if confirmations == 2:
                            self.connected.set()
                        continue
                    if message["type"] != "pmessage":
                        continue
                    channel = message["channel"]
                    if channel == self.SYNC_CHANNEL:
                        with self.lock:
                            self.marks[message["data"]] = (len(self.events),)
                    elif channel.startswith(b"__keyevent@"):
                        head, event = channel.split(b"__:", 1)
                        db = int(head[len(b"__keyevent@"):])
                        with self.lock:
                            self.events.append(KeyEvent(db, event.decode(), message["data"]))
                    else:
                        with self.lock:
                            self.publishes.append((channel, message["data"]))
            except (redis.ConnectionError, redis.TimeoutError, OSError, ValueError):
                self.connected.clear()
                self.stopping.wait(0.02)  # the server is being restarted: try again shortly
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # noqa: BLE001 - best effort on a dead connection
                        pass

    SYNC_CHANNEL = b"PORT_TABLE_CHANNEL@psd-sync"

    def mark(self) -> int:
        """The position after every event of every write Redis has executed so far (delivery is asynchronous,
        so a marker is published and awaited)."""
        token = b"%d" % next(self._tokens)
        client = self.server.client(0)
        try:
            client.publish(self.SYNC_CHANNEL, token)
        finally:
            client.close()
        position = wait_for(lambda: self.marks.get(token), timeout=10, what="the event recorder to catch up")
        return position[0]

    def since(self, mark=0, db=None) -> list[KeyEvent]:
        """Every event after `mark`, up to now (synchronised with Redis first)."""
        end = self.mark()
        with self.lock:
            events = list(self.events[mark:end])
        return [e for e in events if db is None or e.db == db]

    def count(self, db, event, key, since=0) -> int:
        return sum(1 for e in self.since(since, db) if e.event == event and e.key == b(key))

    def publish_count(self, channel=b"PORT_TABLE_CHANNEL@0") -> int:
        with self.lock:
            return sum(1 for c, _ in self.publishes if c == channel)


@dataclass
class MonitorCommand:
    seq: int
    db: int
    source: str  # "lua" for commands run by a script, otherwise the client's address
    args: list

    @property
    def name(self) -> str:
        return self.args[0].decode(errors="replace").upper() if self.args else ""

    @property
    def from_script(self) -> bool:
        return self.source == "lua"


_MONITOR_LINE = re.compile(rb"^\+(\d+\.\d+) \[(\d+) ([^\]]*)\] ?(.*)$", re.S)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b", b'"': b'"', b"\\": b"\\"}


def parse_monitor_arguments(text: bytes) -> list:
    """The quoted arguments of one MONITOR line, unescaped to their exact bytes."""
    out = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == 0x20:
            i += 1
            continue
        if text[i] != 0x22:
            raise ValueError(f"unexpected MONITOR text at {i}: {text!r}")
        i += 1
        buf = bytearray()
        while True:
            c = text[i]
            if c == 0x5C:
                nxt = text[i + 1:i + 2]
                if nxt == b"x":
                    buf.append(int(text[i + 2:i + 4], 16))
                    i += 4
                else:
                    buf += _ESCAPES.get(nxt, nxt)
                    i += 2
            elif c == 0x22:
                i += 1
                break
            else:
                buf.append(c)
                i += 1
        out.append(bytes(buf))
    return out


class RedisMonitor:
    """A MONITOR connection: every command Redis executes, with its database and whether a script ran it."""

    def __init__(self, server: RedisServer):
        self.server = server
        self.commands: list[MonitorCommand] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(server.socket)
        if server.auth:
            user, password = server.auth
            self.sock.sendall(self._command(b"AUTH", b(user), b(password)))
            self._expect_ok()
        self.sock.sendall(self._command(b"MONITOR"))
        self._buffer = b""
        self._expect_ok()
        self.sock.settimeout(0.05)
        self._seq = itertools.count()
        self._markers = itertools.count()
        self.thread = threading.Thread(target=self._run, name="redis-monitor", daemon=True)
        self.thread.start()

    @staticmethod
    def _command(*args) -> bytes:
        out = b"*%d\r\n" % len(args)
        for arg in args:
            out += b"$%d\r\n%s\r\n" % (len(arg), arg)
        return out

    def _expect_ok(self):
        while b"\r\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("MONITOR connection closed")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        assert line == b"+OK", f"unexpected reply {line!r}"

    def _run(self):
        while not self.stopping.is_set():
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            self._buffer += chunk
            while b"\r\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\r\n", 1)
                match = _MONITOR_LINE.match(line)
                if not match:
                    continue
                command = MonitorCommand(next(self._seq), int(match.group(2)), match.group(3).decode(errors="replace"),
                                         parse_monitor_arguments(match.group(4)))
                with self.lock:
                    self.commands.append(command)
                activity()

    def sync(self, client: redis.Redis):
        """Wait until every command executed before now is recorded."""
        token = b"psd-monitor-sync-%d" % next(self._markers)
        client.echo(token)
        wait_for(lambda: any(c.name == "ECHO" and c.args[1:] == [token] for c in self.snapshot()), timeout=10,
                 what="MONITOR to catch up")

    def snapshot(self) -> list[MonitorCommand]:
        with self.lock:
            return list(self.commands)

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()


WRITE_COMMANDS = {
    "SET", "SETNX", "SETEX", "PSETEX", "MSET", "MSETNX", "APPEND", "INCR", "INCRBY", "DECR", "DECRBY", "GETSET",
    "GETDEL", "HSET", "HMSET", "HSETNX", "HDEL", "HINCRBY", "HINCRBYFLOAT", "DEL", "UNLINK", "EXPIRE", "PEXPIRE",
    "EXPIREAT", "PEXPIREAT", "PERSIST", "RENAME", "RENAMENX", "SADD", "SREM", "SPOP", "SMOVE", "LPUSH", "RPUSH",
    "LPOP", "RPOP", "LSET", "LREM", "LTRIM", "ZADD", "ZREM", "FLUSHDB", "FLUSHALL", "COPY", "MOVE", "RESTORE",
    "SWAPDB", "PUBLISH",
}


def atomic_groups(commands: list[MonitorCommand]) -> list[list[MonitorCommand]]:
    """Split MONITOR output into units that ran atomically: an EVAL/EVALSHA followed by the commands its script
    ran, a MULTI ... EXEC block, or a single command."""
    groups: list[list[MonitorCommand]] = []
    current = None  # an open EVAL group
    multi = None  # an open MULTI group
    for command in commands:
        if command.from_script:
            if current is not None:
                current.append(command)
            else:
                groups.append([command])
            continue
        current = None
        name = command.name
        if name == "MULTI":
            multi = [command]
            continue
        if multi is not None:
            multi.append(command)
            if name in ("EXEC", "DISCARD"):
                groups.append(multi)
                multi = None
            continue
        if name in ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL"):
            current = [command]
            groups.append(current)
            continue
        groups.append([command])
    if multi is not None:
        groups.append(multi)
    return groups


def is_test_consumer(group: list[MonitorCommand]) -> bool:
    """Whether an atomic group is the test's own consumer script (playing orchagent)."""
    head = group[0]
    return head.name == "EVAL" and len(head.args) > 1 and CONSUMER_MARKER in head.args[1]


# ----------------------------------------------------------------------------------------------------------
# Network namespace and the kernel's view of links


LINK_DUMP_SCRIPT = r'''
import json, socket, struct
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
s.bind((0, 0))
s.send(struct.pack("=IHHII", 32, 18, 0x301, 1, 0) + struct.pack("=BxHiII", 0, 0, 0, 0, 0))
links = []
done = False
while not done:
    data = s.recv(1 << 20)
    off = 0
    while off + 16 <= len(data):
        length, kind, _, _, _ = struct.unpack_from("=IHHII", data, off)
        if length < 16:
            break
        if kind == 3:
            done = True
            break
        if kind == 2:
            raise SystemExit("netlink error reply")
        if kind == 16:
            _, _, index, flags, _ = struct.unpack_from("=BxHiII", data, off + 16)
            link = {"ifindex": index, "flags": flags, "name": "", "mtu": 0, "master": 0, "kind": None,
                    "mac": None, "operstate": None}
            at, end = off + 32, off + length
            while at + 4 <= end:
                alen, atype = struct.unpack_from("=HH", data, at)
                if alen < 4:
                    break
                payload = data[at + 4:at + alen]
                atype &= 0x3FFF
                if atype == 3:
                    link["name"] = payload.split(b"\0", 1)[0].hex()
                elif atype == 4:
                    link["mtu"] = struct.unpack_from("=I", payload)[0]
                elif atype == 10:
                    link["master"] = struct.unpack_from("=I", payload)[0]
                elif atype == 1:
                    link["mac"] = ":".join("%02x" % c for c in payload)
                elif atype == 16:
                    link["operstate"] = payload[0]
                elif atype == 18:
                    nat = 0
                    while nat + 4 <= len(payload):
                        nlen, ntype = struct.unpack_from("=HH", payload, nat)
                        if nlen < 4:
                            break
                        if ntype & 0x3FFF == 1:
                            link["kind"] = payload[nat + 4:nat + nlen].split(b"\0", 1)[0].decode("ascii", "replace")
                        nat += (nlen + 3) & ~3
                at += (alen + 3) & ~3
            links.append(link)
        off += (length + 3) & ~3
print(json.dumps(links))
'''


@dataclass
class Link:
    name: bytes
    ifindex: int
    flags: int
    mtu: int
    master: int
    kind: str | None
    mac: str | None
    operstate: int | None

    @property
    def admin_up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def running(self) -> bool:
        return bool(self.flags & IFF_RUNNING)

    @property
    def lower_up(self) -> bool:
        return bool(self.flags & IFF_LOWER_UP)

    def sonic_state(self) -> dict:
        """What SONiC's portsyncd writes to STATE_DB PORT_TABLE|<name> for this link (statement 18)."""
        return {
            "state": "ok",
            "netdev_oper_status": "up" if self.running else "down",
            "admin_status": "up" if self.admin_up else "down",
            "mtu": str(self.mtu),
        }


class Netns:
    def __init__(self):
        self.name = f"psd-{os.getpid()}-{next(_NS_COUNTER)}"
        run(["ip", "netns", "add", self.name])
        self._peers = itertools.count()

    def ip(self, *args, check=True):
        return run(["ip", "-n", self.name, *args], check=check)

    def batch(self, lines, check=True):
        """Run many `ip` commands in one process (`ip -batch -`)."""
        if not lines:
            return None
        text = "\n".join(lines) + "\n"
        return run(["ip", "-n", self.name, "-batch", "-"], input=text.encode(), check=check)

    def exec_argv(self, *argv):
        return ["ip", "netns", "exec", self.name, *argv]

    def new_peer_name(self) -> str:
        return f"pv{next(self._peers)}"

    def links(self) -> dict:
        result = run(self.exec_argv("python3", "-c", LINK_DUMP_SCRIPT))
        links = {}
        for entry in json.loads(result.stdout):
            name = bytes.fromhex(entry.pop("name"))
            links[name] = Link(name=name, **entry)
        return links

    def link(self, name) -> Link:
        links = self.links()
        assert b(name) in links, f"link {name!r} not in the namespace; present: {sorted(links)}"
        return links[b(name)]

    def delete(self):
        run(["ip", "netns", "del", self.name], check=False)


# ----------------------------------------------------------------------------------------------------------
# systemd notification socket


class NotifyListener:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, list[str]]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode(errors="replace").splitlines()))
            activity()

    def assignments(self) -> list[str]:
        with self.lock:
            return [line for _, lines in self.messages for line in lines]

    def count(self, assignment: str) -> int:
        return sum(1 for line in self.assignments() if line == assignment)

    def index(self, assignment: str) -> int | None:
        for i, line in enumerate(self.assignments()):
            if line == assignment:
                return i
        return None

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


# ----------------------------------------------------------------------------------------------------------
# The daemon


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as handle:
                    out += [int(x) for x in handle.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


class Daemon:
    """One running portsyncd (possibly under a wrapper such as strace or unshare)."""

    def __init__(self, argv, env, notify: NotifyListener, log_path: Path, binary: Path):
        self.argv = argv
        self.notify = notify
        self.binary = binary
        self.log_path = log_path
        self.stdout_lines: list[bytes] = []
        self.stderr_lines: list[bytes] = []
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self._pid = None
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout_lines, b"out| "), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr_lines, b""), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self, stream, sink, tag):
        with open(self.log_path, "ab") as log:
            for line in iter(stream.readline, b""):
                sink.append(line)
                log.write(tag + line)
                log.flush()
                activity()

    # --- identity

    def _find_pid(self):
        """The daemon's own pid, found below any wrapper by its executable; None if not (yet) there."""
        target = os.path.realpath(self.binary)
        queue = [self.proc.pid]
        while queue:
            pid = queue.pop(0)
            try:
                if os.path.realpath(f"/proc/{pid}/exe") == target:
                    return pid
            except OSError:
                pass
            queue += _children(pid)
        return None

    @property
    def pid(self) -> int:
        if self._pid is None:
            self._pid = wait_for(self._find_pid, timeout=10,
                                 what=f"the portsyncd process under pid {self.proc.pid}")
        return self._pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def returncode(self):
        return self.proc.poll()

    # --- output

    def stderr(self) -> str:
        return b"".join(self.stderr_lines).decode(errors="replace")

    def stdout(self) -> str:
        return b"".join(self.stdout_lines).decode(errors="replace")

    def log_lines(self) -> list[str]:
        return [line.decode(errors="replace").rstrip("\n") for line in list(self.stderr_lines)]

    def wait_log(self, pattern, timeout=10.0, what=None):
        """Wait for a stderr line matching the regex `pattern`; return it."""
        regex = re.compile(pattern)

        def found():
            for line in self.log_lines():
                if regex.search(line):
                    return line
            return Miss(self.log_lines()[-5:])

        return wait_for(found, timeout=timeout, what=what or f"a log line matching {pattern!r}")

    # --- life cycle

    def wait_ready(self, timeout=15.0):
        def ready():
            if self.notify.count("READY=1"):
                return True
            if self.proc.poll() is not None:
                self.join_output()
                raise AssertionError(
                    f"portsyncd exited with {self.proc.returncode} before READY=1\nstderr:\n{self.stderr()[-4000:]}")
            return Miss(self.notify.assignments()[-3:])

        wait_for(ready, timeout=timeout, what="READY=1 from portsyncd")

    def join_output(self):
        for pump in self._pumps:
            pump.join(timeout=5)

    def wait_exit(self, timeout=10.0) -> int:
        wait_for(lambda: self.proc.poll() is not None, timeout=timeout, what="portsyncd to exit")
        self.join_output()
        return self.proc.returncode

    def signal(self, signum):
        os.kill(self.pid, signum)

    def stop(self, timeout=10.0) -> int:
        """SIGTERM and wait for the exit status."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self):
        """Make sure nothing is left running (finalizer)."""
        if self.proc.poll() is not None:
            return
        pids = [p for p in {self._pid or self._find_pid(), self.proc.pid} if p]
        for pid in pids:
            for signum in (signal.SIGCONT, signal.SIGTERM):
                try:
                    os.kill(pid, signum)
                except OSError:
                    pass
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self.proc.wait(timeout=5)
        self.join_output()


# ----------------------------------------------------------------------------------------------------------
# The rig


def default_port_fields(index: int) -> dict:
    """CONFIG_DB PORT|EthernetN fields as a SONiC platform's port_config.ini gives them."""
    lanes = ",".join(str(index * 4 + lane) for lane in range(1, 5))
    return {
        "lanes": lanes,
        "alias": f"etp{index + 1}",
        "speed": "100000",
        "mtu": "9100",
        "admin_status": "up",
        "index": str(index + 1),
        "fec": "rs",
    }


def port_name(index: int) -> str:
    return f"Ethernet{index * 4}"


class Rig:
    def __init__(self, binary: Path):
        self.binary = binary
        self.tmp = Path(tempfile.mkdtemp(prefix="psd", dir="/tmp"))
        self.daemons: list[Daemon] = []
        self.monitors: list[RedisMonitor] = []
        self._clients: dict = {}
        self.events = None
        self.ns = None
        self.redis = RedisServer(self.tmp)
        try:
            self.redis.start()
            self.events = RedisEvents(self.redis)
            self.events.start()
            self.ns = Netns()
        except BaseException:
            self.close()
            raise
        self.db_config_path = write_database_config(self.tmp / "database_config.json", self.redis.socket)
        self._configs = itertools.count()
        self._daemon_ids = itertools.count()
        self.peers: dict[bytes, str] = {}
        self.sentinel_ready = False
        self.sentinel_seeded = False
        self._sentinel_mtu = itertools.cycle(range(1300, 1500))

    # --- redis access

    def db(self, number: int) -> redis.Redis:
        key = (number, self.redis.auth)
        if key not in self._clients:
            self._clients[key] = self.redis.client(number)
        return self._clients[key]

    @property
    def appl(self) -> redis.Redis:
        return self.db(APPL_DB)

    @property
    def config_db(self) -> redis.Redis:
        return self.db(CONFIG_DB)

    @property
    def state(self) -> redis.Redis:
        return self.db(STATE_DB)

    def reset_clients(self):
        for client in self._clients.values():
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
        self._clients.clear()

    def monitor(self) -> RedisMonitor:
        monitor = RedisMonitor(self.redis)
        self.monitors.append(monitor)
        return monitor

    # --- SONiC data

    def configure_ports(self, names, fields=None, db=None):
        """CONFIG_DB PORT|<name> for each name (fields: one dict for all, or {name: fields})."""
        client = db or self.config_db
        for i, name in enumerate(names):
            if fields is None:
                values = default_port_fields(i)
            elif isinstance(fields, dict) and name in fields:
                values = fields[name]
            else:
                values = fields
            client.hset(b"PORT|" + b(name), mapping={b(f): b(v) for f, v in values.items()})

    def seed_appl(self, name, fields=None, client=None, prefix=b"PORT_TABLE:"):
        """Play orchagent directly: write the APPL_DB final hash PORT_TABLE:<name>."""
        values = fields or {"admin_status": "up", "mtu": "9100", "speed": "100000"}
        (client or self.appl).hset(prefix + b(name), mapping={b(f): b(v) for f, v in values.items()})

    def orchagent_pop(self, client=None, key_set=b"PORT_TABLE_KEY_SET", prefix=b"PORT_TABLE:",
                      del_set=b"PORT_TABLE_DEL_SET", batch=128) -> list:
        """Pop everything the producer left, with the consumer Lua script; [(key, {field: value})]."""
        client = client or self.appl
        popped = []
        while True:
            reply = client.eval(CONSUMER_LUA, 3, key_set, prefix, del_set, batch, b"_")
            if not reply:
                return popped
            popped += [(key, pairs_to_dict(fields)) for key, fields in reply]

    def producer_pending(self, key, client=None, prefix=b"_PORT_TABLE:", key_set=b"PORT_TABLE_KEY_SET"):
        """The fields a producer write left for `key` (not yet popped), or None."""
        client = client or self.appl
        if not client.sismember(key_set, b(key)):
            return None
        return client.hgetall(prefix + b(key))

    def state_row(self, name, client=None, prefix=b"PORT_TABLE|") -> dict:
        return decode_hash((client or self.state).hgetall(prefix + b(name)))

    def enable_warm(self, scope="system", restore_count="0"):
        self.state.hset(b"WARM_RESTART_ENABLE_TABLE|" + b(scope), b"enable", b"true")
        if restore_count is not None:
            self.state.hset(b"WARM_RESTART_TABLE|portsyncd", b"restore_count", b(restore_count))

    # --- kernel

    def add_port(self, name, up=True, peer_up=True, mtu=None, peer=None):
        """A veth pair `name` <-> `peer` in the namespace."""
        peer = peer or self.ns.new_peer_name()
        self.peers[b(name)] = peer
        if isinstance(name, bytes):
            self.ns.ip("link", "add", name, "type", "veth", "peer", "name", peer)
            if mtu:
                self.ns.ip("link", "set", "dev", name, "mtu", str(mtu))
            if peer_up:
                self.ns.ip("link", "set", "dev", peer, "up")
            if up:
                self.ns.ip("link", "set", "dev", name, "up")
            return peer
        lines = [f"link add {name} type veth peer name {peer}"]
        if mtu:
            lines.append(f"link set dev {name} mtu {mtu}")
        if peer_up:
            lines.append(f"link set dev {peer} up")
        if up:
            lines.append(f"link set dev {name} up")
        self.ns.batch(lines)
        return peer

    def add_ports(self, names, up=True, peer_up=True):
        lines = []
        for name in names:
            peer = self.ns.new_peer_name()
            self.peers[b(name)] = peer
            lines.append(f"link add {name} type veth peer name {peer}")
            if peer_up:
                lines.append(f"link set dev {peer} up")
            if up:
                lines.append(f"link set dev {name} up")
        self.ns.batch(lines)

    def add_synced_ports(self, names):
        """Play orchagent for `names` (APPL_DB entries), create them, and wait until STATE_DB has each."""
        for name in names:
            self.seed_appl(name)
        self.add_ports(names)
        self.wait_state_matches_kernel(names)

    def links(self) -> dict:
        return self.ns.links()

    def state_mismatches(self, names) -> list:
        links = self.links()
        bad = []
        for name in names:
            link = links.get(b(name))
            if link is None:
                bad.append((name, "not in kernel"))
                continue
            row = self.state_row(name)
            want = link.sonic_state()
            got = {k: row.get(k) for k in want}
            if got != want:
                bad.append((name, {"state_db": got, "kernel": want}))
        return bad

    def wait_state_matches_kernel(self, names, timeout=10.0):
        names = list(names)

        def matches():
            bad = self.state_mismatches(names)
            return True if not bad else Miss(bad[:4])

        wait_for(matches, timeout=timeout, what=f"STATE_DB PORT_TABLE rows equal to the kernel for {names[:6]}...")

    def wait_state_row(self, name, expected: dict, timeout=10.0):
        def row():
            got = self.state_row(name)
            return got if all(got.get(k) == v for k, v in expected.items()) else Miss(got)

        return wait_for(row, timeout=timeout, what=f"STATE_DB PORT_TABLE|{name!r} to hold {expected}")

    def seed_sentinel(self):
        """The APPL_DB entry of the barrier's sentinel port; call it before a MONITOR window to keep the test's
        own writes out of it."""
        if not self.sentinel_seeded:
            self.seed_appl(SENTINEL_PORT, {"admin_status": "up"})
            self.sentinel_seeded = True

    def barrier(self, timeout=10.0):
        """Returns once the daemon has handled every link message sent before the call: it changes the MTU of
        a sentinel port (created after READY, with an APPL_DB entry) and waits for STATE_DB to show it."""
        self.seed_sentinel()
        if not self.sentinel_ready:
            self.add_port(SENTINEL_PORT, up=False, peer_up=False)
            self.sentinel_ready = True
        mtu = next(self._sentinel_mtu)
        self.ns.ip("link", "set", "dev", SENTINEL_PORT, "mtu", str(mtu))
        self.wait_state_row(SENTINEL_PORT, {"state": "ok", "mtu": str(mtu)}, timeout=timeout)

    # --- the daemon

    def base_config(self) -> dict:
        return {
            "redis": {
                "database_config": str(self.db_config_path),
                "unix_socket": "",
                "reconnect_initial_ms": 20,
                "reconnect_max_ms": 200,
            },
            "daemon": {"graceful_shutdown_timeout_ms": 2000, "status_interval_ms": 200},
            "http": {"port": 0},
            "log": {"level": "notice"},
        }

    def write_config(self, overrides=None, text=None) -> Path:
        path = self.tmp / f"portsyncd-{next(self._configs)}.toml"
        if text is not None:
            path.write_text(text)
            return path
        sections = self.base_config()
        for section, keys in (overrides or {}).items():
            sections.setdefault(section, {}).update(keys)
        path.write_text(toml_document(sections))
        return path

    def daemon_env(self, notify: NotifyListener, extra=None) -> dict:
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
                            "LISTEN_PID", "LISTEN_FDNAMES", "INVOCATION_ID")}
        env["NOTIFY_SOCKET"] = notify.path
        env.update(extra or {})
        return env

    def start(self, config=None, config_path=None, env=None, args=(), argv=None, wait_ready=True,
              wrapper=()) -> Daemon:
        """Start portsyncd in the namespace: `ip netns exec NS [wrapper...] portsyncd --config FILE`."""
        n = next(self._daemon_ids)
        notify = NotifyListener(self.tmp / f"notify{n}")
        if argv is None:
            path = config_path or self.write_config(config)
            argv = self.ns.exec_argv(*wrapper, str(self.binary), "--config", str(path), *args)
        daemon = Daemon(argv, self.daemon_env(notify, env), notify, self.tmp / f"daemon{n}.log", self.binary)
        self.daemons.append(daemon)
        if wait_ready:
            daemon.wait_ready()
        return daemon

    def cold_start(self, ports=(), fields=None, config=None, pop=True) -> Daemon:
        """The usual cold start: CONFIG_DB ports, start, READY, then orchagent consumes the startup copy."""
        self.configure_ports(ports, fields)
        daemon = self.start(config=config)
        if pop:
            self.orchagent_pop()
        return daemon

    def running_switch(self, ports, env=None, config=None) -> Daemon:
        """A switch as it runs: a cold start, orchagent consumes the copy, the ports are created after READY and
        reach STATE_DB, PortInitDone is written and consumed."""
        self.configure_ports(ports)
        daemon = self.start(config=config, env=env)
        self.orchagent_pop()
        self.add_ports(ports)
        self.wait_state_matches_kernel(ports)
        wait_for(lambda: self.appl.exists(b"PORT_TABLE:PortInitDone") or self.appl.exists(b"_PORT_TABLE:PortInitDone"),
                 what="PortInitDone")
        self.orchagent_pop()
        return daemon

    # --- clean-up

    def close(self):
        for daemon in self.daemons:
            try:
                daemon.kill()
            except Exception:  # noqa: BLE001 - keep cleaning
                pass
            daemon.notify.close()
        for monitor in self.monitors:
            monitor.close()
        if self.events is not None:
            self.events.stop()
        self.reset_clients()
        self.redis.kill()
        if self.ns is not None:
            self.ns.delete()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def diagnostics(self) -> str:
        parts = []
        for i, daemon in enumerate(self.daemons):
            parts.append(f"--- portsyncd #{i}: {' '.join(map(str, daemon.argv))}\n"
                         f"exit: {daemon.returncode}\nnotify: {daemon.notify.assignments()[-10:]}\n"
                         f"stderr (tail):\n{daemon.stderr()[-6000:]}")
        return "\n".join(parts)


class OrchagentEmulator:
    """Plays orchagent's ConsumerStateTable on APPL_DB PORT_TABLE: SUBSCRIBE to PORT_TABLE_CHANNEL@0, pop what
    was queued before it started, then pop after every message. With `eager` it pops in a tight loop instead,
    to catch a producer whose writes are not atomic."""

    def __init__(self, rig: "Rig", eager=False):
        self.rig = rig
        self.eager = eager
        self.popped: list = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.client = rig.redis.client(APPL_DB)
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe("PORT_TABLE_CHANNEL@0")
        wait_for(lambda: (m := self.pubsub.get_message(timeout=0.05)) is not None and m["type"] == "subscribe",
                 timeout=10, what="orchagent emulator SUBSCRIBE")
        self.thread = threading.Thread(target=self._run, name="orchagent", daemon=True)
        self.thread.start()

    def _pop(self):
        got = self.rig.orchagent_pop(client=self.client)
        if got:
            with self.lock:
                self.popped += got

    def _run(self):
        self._pop()
        while not self.stopping.is_set():
            try:
                message = self.pubsub.get_message(timeout=0.001 if self.eager else 0.05)
                if self.eager or (message is not None and message["type"] == "message"):
                    self._pop()
            except (redis.ConnectionError, OSError):
                return

    def results(self) -> list:
        with self.lock:
            return list(self.popped)

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.pubsub.close()
        self.client.close()


@pytest.fixture(scope="session")
def portsyncd_bin() -> Path:
    return daemon_binary()


@pytest.fixture
def rig(portsyncd_bin, request):
    instance = Rig(portsyncd_bin)
    request.node._psd_rig = instance
    yield instance
    instance.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    instance = getattr(item, "_psd_rig", None)
    if instance is not None and report.failed and call.when == "call":
        report.sections.append(("portsyncd", instance.diagnostics()))


class Flapper(threading.Thread):
    """Random admin, carrier and MTU changes on ports, in batches, until stopped."""

    def __init__(self, rig, names):
        super().__init__(name="flapper", daemon=True)
        self.rig = rig
        self.names = names
        self.batches = 0
        self.errors = []
        self.stopping = threading.Event()

    def run(self):
        rnd = random.Random(20240611)
        try:
            while not self.stopping.is_set():
                lines = []
                for _ in range(12):
                    name = rnd.choice(self.names)
                    peer = self.rig.peers[b(name)]
                    lines.append(rnd.choice([
                        f"link set dev {name} up", f"link set dev {name} down",
                        f"link set dev {peer} up", f"link set dev {peer} down",
                        f"link set dev {name} mtu {rnd.choice([1400, 1500, 9100])}",
                    ]))
                self.rig.ns.batch(lines)
                self.batches += 1
        except Exception as error:  # noqa: BLE001 - reported by the test
            self.errors.append(error)

    def wait_batches(self, more):
        target = self.batches + more
        wait_for(lambda: self.batches >= target or bool(self.errors), what=f"{more} more flap batches")
        assert not self.errors, self.errors

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)
        assert not self.errors, self.errors


# --- HTTP inside the rig's network namespace

_CLONE_NEWNET = 0x40000000


def in_netns(ns_name: str, make):
    """`make()` run on a helper thread that entered the network namespace `ns_name` first: a socket belongs to the
    namespace it was created in, whichever thread uses it afterwards. Returns what `make` returns."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    result = {}

    def run_inside():
        try:
            fd = os.open(f"/var/run/netns/{ns_name}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            result["value"] = make()
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            result["error"] = error

    thread = threading.Thread(target=run_inside)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def netns_connect(ns_name: str, port: int, host: str = "127.0.0.1", timeout: float = 10.0,
                  rcvbuf: int | None = None) -> socket.socket:
    """A TCP connection made from inside the network namespace `ns_name`."""
    sock = in_netns(ns_name, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    try:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock

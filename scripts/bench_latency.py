#!/usr/bin/env python3
"""Kernel event → STATE_DB latency of a running portsyncd, on real veths (PERFORMANCE.md's method).

Starts a private redis-server (keyspace notifications on), seeds CONFIG_DB, starts portsyncd in a network
namespace, and after READY=1 creates Ethernet0 (veth) and plays orchagent for it. Then it toggles Ethernet0's
admin state N times through one long-lived `ip -batch -`, and for every toggle records:
  daemon latency: a second netlink socket in the namespace hears the kernel → the STATE_DB keyspace event;
  end to end:     the command written to `ip` → the STATE_DB keyspace event.
Both clocks are this process's monotonic clock, read when select() reports the socket readable.
Prints one JSON object: p50/p99 of each, in microseconds."""
import argparse
import ctypes
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--bin", required=True)
parser.add_argument("--toggles", type=int, default=400)
parser.add_argument("--clients", type=int, default=0,
                    help="measure with this many stream clients connected (half SSE, half WebSocket) plus 10 that "
                         "never read (scripts/stream_clients.c, compiled with cc at start); adds their bus → socket "
                         "latency to the output, and the floor: a bare C loop writing to as many loopback "
                         "connections (scripts/fanout_floor.c)")
parser.add_argument("--interval-ms", type=float, default=0,
                    help="pause between toggles (0: the next toggle as soon as STATE_DB has the last one)")
parser.add_argument("--storm", action="store_true",
                    help="measure while 32 other ports flap as fast as the kernel takes it (a second ip -batch)")
args = parser.parse_args()

work = tempfile.mkdtemp(prefix="portsyncd-bench.")
ns = f"psd-bench-{os.getpid()}"
procs = []


def cleanup():
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
    subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    shutil.rmtree(work, ignore_errors=True)


class Redis:
    """A minimal RESP client over the unix socket (so select() sees its socket directly)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buffer = b""

    def send(self, *parts):
        out = b"*%d\r\n" % len(parts)
        for part in parts:
            part = part if isinstance(part, bytes) else str(part).encode()
            out += b"$%d\r\n%s\r\n" % (len(part), part)
        self.sock.sendall(out)

    def _line(self):
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("redis closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            return rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            while len(self.buffer) < length + 2:
                self.buffer += self.sock.recv(65536)
            data, self.buffer = self.buffer[:length], self.buffer[length + 2:]
            return data
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise ValueError(line)

    def call(self, *parts):
        self.send(*parts)
        return self.read()

    def pending(self):
        return b"\r\n" in self.buffer


def wait_ready(notify, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readable, _, _ = select.select([notify], [], [], max(0, deadline - time.monotonic()))
        if readable and b"READY=1" in notify.recv(65536).split(b"\n"):
            return
    sys.exit("portsyncd did not send READY=1")


def netlink_in_ns():
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    libc.setns(target, 0x40000000)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.setsockopt(socket.SOL_SOCKET, 33, 32 * 1024 * 1024)  # SO_RCVBUFFORCE: the storm must not overrun it
    sock.bind((0, 1))
    libc.setns(own, 0x40000000)
    os.close(own)
    os.close(target)
    return sock


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def build(name):
    """Compiles scripts/NAME.c into the work directory; returns the binary's path."""
    if shutil.which("cc") is None:
        sys.exit("bench_latency.py --clients needs a C compiler: `cc` was not found (install gcc or clang)")
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.c")
    binary = os.path.join(work, name)
    built = subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", binary, source],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if built.returncode != 0:
        sys.exit(f"could not compile {source}:\n{built.stdout}")
    return binary


def main():
    stream_clients = build("stream_clients") if args.clients else None
    sock_path = os.path.join(work, "redis.sock")
    procs.append(subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", sock_path, "--save", "", "--appendonly", "no",
         "--notify-keyspace-events", "AKE", "--databases", "100"], stdout=subprocess.DEVNULL))
    deadline = time.monotonic() + 10
    while True:  # until redis-server accepts connections on its socket
        try:
            Redis(sock_path).call("PING")
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                sys.exit("redis-server did not start")
            time.sleep(0.01)
    db = {"INSTANCES": {"redis": {"hostname": "127.0.0.1", "port": 6379, "unix_socket_path": sock_path}},
          "DATABASES": {"APPL_DB": {"id": 0, "separator": ":", "instance": "redis"},
                        "CONFIG_DB": {"id": 4, "separator": "|", "instance": "redis"},
                        "STATE_DB": {"id": 6, "separator": "|", "instance": "redis"}}, "VERSION": "1.0"}
    with open(os.path.join(work, "database_config.json"), "w") as f:
        json.dump(db, f)
    with open(os.path.join(work, "portsyncd.conf"), "w") as f:
        f.write(f'[redis]\ndatabase_config = "{work}/database_config.json"\n[log]\nlevel = "warning"\n'
                f'[http]\nport = 9470\nmax_clients = {max(256, args.clients + 20)}\n'
                f'max_connections = {max(512, args.clients + 64)}\n'
                # With clients: a 128-event buffer per client (and the default 64 KiB send buffer), so that the
                # clients that never read are cut as slow within the run.
                + ('[events]\nclient_buffer_capacity = 128\n' if args.clients else ''))
    control = Redis(sock_path)
    control.call("SELECT", 4)
    for i in range(64):
        control.call("HSET", f"PORT|Ethernet{i * 4}", "lanes", str(i), "mtu", "9100", "admin_status", "up")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    notify_path = os.path.join(work, "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    daemon_proc = subprocess.Popen(["ip", "netns", "exec", ns, args.bin, "--config", f"{work}/portsyncd.conf"],
                                   env=env)
    procs.append(daemon_proc)
    wait_ready(notify)
    control.call("SELECT", 0)
    control.call("HSET", "PORT_TABLE:Ethernet0", "admin_status", "up", "mtu", "9100")
    listener = netlink_in_ns()
    subscriber = Redis(sock_path)
    subscriber.call("SUBSCRIBE", "__keyspace@6__:PORT_TABLE|Ethernet0")
    ip = subprocess.Popen(["ip", "-n", ns, "-batch", "-"], stdin=subprocess.PIPE, text=True, bufsize=1)
    procs.append(ip)
    ip.stdin.write("link add Ethernet0 type veth peer name peer0\n")
    ip.stdin.flush()

    def wait_keyspace(timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            if not subscriber.pending():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([subscriber.sock], [], [], remaining)[0]:
                    raise TimeoutError("no STATE_DB keyspace event for Ethernet0")
            message = subscriber.read()
            if message[0] == b"message":
                return time.monotonic_ns()

    wait_keyspace()

    def toggles(count, daemon, end_to_end):
        for index in range(count + 20):
            # Drain what earlier toggles left (a second NEWLINK, its keyspace event).
            while select.select([listener], [], [], 0)[0]:
                try:
                    listener.recv(65536)
                except OSError as error:  # ENOBUFS: this listener fell behind; its next event still times the kernel
                    if error.errno != 105:
                        raise
            while subscriber.pending() or select.select([subscriber.sock], [], [], 0.002)[0]:
                subscriber.read()
            if args.interval_ms:
                time.sleep(args.interval_ms / 1000)
            state = "up" if toggles.state % 2 == 0 else "down"
            toggles.state += 1
            written = time.monotonic_ns()
            ip.stdin.write(f"link set Ethernet0 {state}\n")
            ip.stdin.flush()
            select.select([listener], [], [], 5)
            heard = time.monotonic_ns()
            stored = wait_keyspace()
            if index >= 20:  # warm-up
                daemon.append((stored - heard) / 1000)
                end_to_end.append((stored - written) / 1000)

    toggles.state = 0
    listener.setblocking(False)
    # With clients: the same toggles first without them, for the ratio within one run.
    baseline = []
    if args.clients:
        toggles(args.toggles, baseline, [])
    clients = None
    if args.clients:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        clients = subprocess.Popen(
            ["ip", "netns", "exec", ns, stream_clients, "--port", "9470", "--clients", str(args.clients)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(clients)
        if clients.stdout.readline().strip() != "ready":
            sys.exit("the stream clients did not connect")
    storm_stop = None
    storm_count = [0]
    if args.storm:
        import threading
        others = [f"Ethernet{4 * (i + 1)}" for i in range(32)]
        for name in others:
            control.call("HSET", f"PORT_TABLE:{name}", "admin_status", "up")
        ip.stdin.write("".join(f"link add {n} type veth peer name p{n}\n" for n in others))
        ip.stdin.flush()
        # -force: keep going past a failed line, so one slow link never ends the storm.
        storm = subprocess.Popen(["ip", "-force", "-n", ns, "-batch", "-"], stdin=subprocess.PIPE, text=True,
                                 stderr=subprocess.DEVNULL)
        procs.append(storm)
        storm_stop = threading.Event()

        def flap():
            state = 0
            try:
                while not storm_stop.is_set():
                    state ^= 1
                    storm.stdin.write("".join(f"link set {n} {'up' if state else 'down'}\n" for n in others))
                    storm_count[0] += len(others)
                storm.stdin.close()
            except BrokenPipeError:
                pass  # the storm's ip was stopped first

        storm_thread = threading.Thread(target=flap, daemon=True)
        storm_thread.start()
        storm_started = time.monotonic()
    daemon, end_to_end = [], []
    toggles(args.toggles, daemon, end_to_end)
    storm_rate = None
    if storm_stop is not None:
        storm_stop.set()
        storm_thread.join()
        storm_rate = round(storm_count[0] / (time.monotonic() - storm_started))
    streams = {}
    if clients is not None:
        clients.stdin.write("stop\n")
        clients.stdin.flush()
        line = clients.stdout.readline()
        if not line.strip():
            sys.exit("the stream clients ended without a result")
        streams = json.loads(line)
        # The daemon's memory with the clients connected (and at its peak), from /proc (`ip netns exec` execs it).
        with open(f"/proc/{daemon_proc.pid}/status") as status:
            memory = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
        streams["daemon_rss_mib"] = round(int(memory["VmRSS"].split()[0]) / 1024, 1)
        streams["daemon_peak_rss_mib"] = round(int(memory["VmHWM"].split()[0]) / 1024, 1)
        # The floor: a bare C loop writing one message to as many loopback connections, at the same pace, read by
        # a process on epoll: what the kernel alone takes (scripts/fanout_floor.c). Run after the daemon's phase.
        floor = json.loads(subprocess.run(
            [build("fanout_floor"), "--connections", str(args.clients), "--rounds", "200",
             "--interval-ms", str(int(args.interval_ms or 20))], check=True, stdout=subprocess.PIPE, text=True).stdout)
        streams["floor_write_to_socket_p50_us"] = floor["write_to_socket_p50_us"]
        streams["floor_write_to_socket_p99_us"] = floor["write_to_socket_p99_us"]
        streams["floor_writer_cpu_us_per_event"] = floor["writer_cpu_us_per_round"]
        streams["bus_to_socket_p99_over_floor"] = round(
            streams["bus_to_socket_p99_us"] / max(floor["write_to_socket_p99_us"], 1), 2)
    print(json.dumps({
        **streams,
        "toggles": args.toggles,
        "storm_changes_per_s": storm_rate,
        "daemon_latency_p50_us": round(percentile(daemon, 0.50), 1),
        "daemon_latency_p99_us": round(percentile(daemon, 0.99), 1),
        "interval_ms": args.interval_ms,
        **({"baseline_daemon_latency_p50_us": round(percentile(baseline, 0.50), 1),
            "baseline_daemon_latency_p99_us": round(percentile(baseline, 0.99), 1),
            "daemon_latency_p99_ratio": round(percentile(daemon, 0.99) / max(percentile(baseline, 0.99), 1), 2)}
           if baseline else {}),
        "end_to_end_p50_us": round(percentile(end_to_end, 0.50), 1),
        "end_to_end_p99_us": round(percentile(end_to_end, 0.99), 1),
    }))


try:
    main()
finally:
    cleanup()

#!/usr/bin/env python3
"""Start-up cost with N ports in CONFIG_DB: time from exec to READY=1, the daemon's CPU time to READY and its RSS.
Prints one JSON object."""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--bin", required=True)
parser.add_argument("--ports", type=int, default=8192)
args = parser.parse_args()
work = tempfile.mkdtemp(prefix="portsyncd-startup.")
ns = f"psd-startup-{os.getpid()}"
procs = []
try:
    sock_path = os.path.join(work, "redis.sock")
    procs.append(subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock_path, "--save", "",
                                   "--appendonly", "no", "--databases", "100"], stdout=subprocess.DEVNULL))
    deadline = time.monotonic() + 10
    while subprocess.run(["redis-cli", "-s", sock_path, "ping"], capture_output=True).stdout.strip() != b"PONG":
        if time.monotonic() > deadline:
            sys.exit("redis-server did not start")
        time.sleep(0.01)
    seed = "".join(f'HSET "PORT|Ethernet{i * 4}" lanes "{i * 4},{i * 4 + 1},{i * 4 + 2},{i * 4 + 3}" alias etp{i} '
                   f"speed 100000 mtu 9100 admin_status up index {i} fec rs autoneg off\n" for i in range(args.ports))
    subprocess.run(["redis-cli", "-s", sock_path, "-n", "4"], input=seed.encode(), stdout=subprocess.DEVNULL,
                   check=True)
    with open(os.path.join(work, "database_config.json"), "w") as f:
        json.dump({"INSTANCES": {"redis": {"hostname": "127.0.0.1", "port": 6379, "unix_socket_path": sock_path}},
                   "DATABASES": {"APPL_DB": {"id": 0, "separator": ":", "instance": "redis"},
                                 "CONFIG_DB": {"id": 4, "separator": "|", "instance": "redis"},
                                 "STATE_DB": {"id": 6, "separator": "|", "instance": "redis"}}}, f)
    with open(os.path.join(work, "portsyncd.conf"), "w") as f:
        f.write(f'[redis]\ndatabase_config = "{work}/database_config.json"\n[log]\nlevel = "warning"\n')
    subprocess.run(["ip", "netns", "add", ns], check=True)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(os.path.join(work, "notify.sock"))
    notify.settimeout(60)
    start = time.monotonic()
    daemon = subprocess.Popen(["ip", "netns", "exec", ns, args.bin, "--config", f"{work}/portsyncd.conf"],
                              env=dict(os.environ, NOTIFY_SOCKET=os.path.join(work, "notify.sock")))
    procs.append(daemon)
    while b"READY=1" not in notify.recv(65536).split(b"\n"):
        pass
    ready = time.monotonic() - start
    pid = int(subprocess.run(["pgrep", "-n", "-f", f"{work}/portsyncd.conf"], capture_output=True).stdout)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as f:
        rss_kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    print(json.dumps({"ports": args.ports, "ready_s": round(ready, 3), "cpu_s": cpu, "rss_mib": round(rss_kib / 1024, 1)}))
finally:
    for proc in reversed(procs):
        proc.terminate()
        proc.wait()
    subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    shutil.rmtree(work, ignore_errors=True)

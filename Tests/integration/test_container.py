"""portsyncd as a program of SONiC's swss container (statement 35): the real `supervisord` (Debian's
`supervisor`), the real `supervisord-dependent-startup` plugin, a real redis-server and the rig's network
namespace, with a supervisord.conf laid out like SONiC's docker-orchagent `supervisord.conf.j2`:

- `[eventlistener:dependent-startup]` exactly as SONiC has it (`python3 -m supervisord_dependent_startup`);
- `[program:portsyncd]`: priority 3, `autostart=false`, `autorestart=false`, stdout and stderr to syslog
  (`stdout_syslog=true`, as SONiC writes it now; older images have `stdout_logfile=syslog`, which supervisor 4
  reads as the same thing and calls deprecated), `dependent_startup=true`. No `NOTIFY_SOCKET`, no journal: the
  daemon runs in the foreground as SONiC's does. The command is the binary under test with a configuration
  file naming the rig's `database_config.json` (SONiC's has no argument and reads
  /var/run/redis/sonic-db/database_config.json);
- `[program:orchagent]`: a stand-in (orchagent_standin.py) that consumes APPL_DB PORT_TABLE with the real
  consumer script, `dependent_startup_wait_for=portsyncd:running`. The test then creates the host interfaces,
  as orchagent has SAI do once it has the port configuration;
- `[eventlistener:supervisor-proc-exit-listener]`: a stand-in (proc_exit_listener.py) that records every
  PROCESS_STATE_EXITED and PROCESS_STATE_RUNNING event and whether SONiC's rule would call it a critical-process
  exit. SONiC's listener would then terminate supervisord (the container restarts); this one does not, so the
  test can see that supervisord does not restart portsyncd by itself. The stand-ins are the two fakes here:
  orchagent needs a switch ASIC, and SONiC's listener needs swsscommon and SONiC's CONFIG_DB FEATURE table.

syslog: supervisord sends its programs' output to syslog(3), which writes to /dev/log. supervisord runs in a
private mount namespace whose /dev is an overlay of the host's /dev with `log` pointing at a datagram socket the
test reads; the host's /dev is never written. SONiC's portsyncd also waits for `rsyslogd:running`; here the
syslog socket exists before supervisord starts, so there is no rsyslogd program.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import Daemon, Miss, NotifyListener, activity, decode_hash, port_name, run, wait_for

HERE = Path(__file__).resolve().parent
PORTS = [port_name(i) for i in range(4)]

# The private mount namespace supervisord runs in: /dev overlaid (upper layer on a tmpfs that only this
# namespace sees), /dev/log a link to the test's syslog socket, the host's /dev submounts (pts, shm, ...) bound
# back in. Then supervisord in the foreground, inside the rig's network namespace.
LAUNCH = r"""
set -eu
dir=$1 netns=$2 conf=$3
submounts=$(awk '$5 ~ "^/dev/[^/]+$" { print $5 }' /proc/self/mountinfo)
mkdir -p "$dir/dev-layer" "$dir/host-dev"
mount -t tmpfs -o mode=0700 psd-dev "$dir/dev-layer"
mkdir "$dir/dev-layer/upper" "$dir/dev-layer/work"
mount --rbind /dev "$dir/host-dev"
mount -t overlay psd-dev -o "lowerdir=/dev,upperdir=$dir/dev-layer/upper,workdir=$dir/dev-layer/work" /dev
for mountpoint in $submounts; do
    mount --rbind "$dir/host-dev/${mountpoint#/dev/}" "$mountpoint"
done
umount -l "$dir/host-dev"
ln -sfn "$dir/syslog.sock" /dev/log
exec ip netns exec "$netns" supervisord --nodaemon --configuration "$conf"
"""

SUPERVISORD_CONF = """\
[unix_http_server]
file={dir}/supervisor.sock
chmod=0700

[supervisord]
logfile={dir}/supervisord.log
logfile_maxbytes=1MB
logfile_backups=2
loglevel=info
pidfile={dir}/supervisord.pid
childlogdir={dir}
nodaemon=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{dir}/supervisor.sock

[eventlistener:dependent-startup]
command=python3 -m supervisord_dependent_startup
autostart=true
autorestart=unexpected
startretries=0
exitcodes=0,3
events=PROCESS_STATE
buffer_size=1024

[eventlistener:supervisor-proc-exit-listener]
command={python} {here}/proc_exit_listener.py --critical-processes {dir}/critical_processes --record {dir}/events.jsonl
events=PROCESS_STATE_EXITED,PROCESS_STATE_RUNNING
autostart=true
autorestart=unexpected
buffer_size=1024

[program:portsyncd]
command={binary} --config {config}
priority=3
autostart=false
autorestart=false
stdout_logfile=NONE
stdout_syslog=true
stderr_logfile=NONE
stderr_syslog=true
dependent_startup=true

[program:orchagent]
command={python} {here}/orchagent_standin.py --database-config {database_config} --record {dir}/orchagent.jsonl
priority=4
autostart=false
autorestart=false
stdout_logfile=NONE
stdout_syslog=true
stderr_logfile=NONE
stderr_syslog=true
dependent_startup=true
dependent_startup_wait_for=portsyncd:running
"""

# One stderr line of portsyncd outside the journal: time, level, message (PortsyncLogHandler.writeLine).
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z? (trace|debug|info|notice|warning|error|critical) \S")
# What syslog(3) sends: <PRI>Mmm dd hh:mm:ss TAG: MESSAGE (supervisord's tag: the name it was run by).
SYSLOG_DATAGRAM = re.compile(r"^<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d ([^:]+): (.*)$", re.S)


def supervisord_python() -> str:
    """The interpreter that runs Debian's supervisord (its #! line): the one that must import the plugin."""
    path = shutil.which("supervisord")
    if path is None:
        pytest.fail("supervisord is not installed: this test needs Debian's `supervisor` package (`make test-deps` "
                    "installs it; or `apt-get install supervisor`)", pytrace=False)
    words = Path(path).read_text(errors="replace").splitlines()[0].removeprefix("#!").split()
    interpreter = shutil.which(words[1]) if Path(words[0]).name == "env" else words[0]
    probe = subprocess.run([interpreter, "-c", "import supervisord_dependent_startup"], capture_output=True)
    if probe.returncode != 0:
        pytest.fail(f"{interpreter} (which runs {path}) cannot import supervisord_dependent_startup: "
                    f"`make test-deps` installs it for that interpreter", pytrace=False)
    return interpreter


class SyslogSocket:
    """The container's /dev/log: a unix datagram socket; every record is kept as (priority, tag, message)."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.sock.settimeout(0.05)
        self.records: list[tuple[int, str, str]] = []
        self.unparsed: list[bytes] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="syslog", daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError:
                return
            match = SYSLOG_DATAGRAM.match(data.decode(errors="replace").rstrip("\n"))
            with self.lock:
                if match:
                    self.records.append((int(match.group(1)), match.group(2), match.group(3)))
                else:
                    self.unparsed.append(data)
            activity()

    def program_records(self, program: str) -> list[tuple[int, str, str]]:
        """What supervisord logged for one program: (priority, tag, line), each line sent as `<program> <line>`."""
        with self.lock:
            return [(priority, tag, message[len(program) + 1:]) for priority, tag, message in self.records
                    if message.startswith(program + " ")]

    def program_lines(self, program: str) -> list[str]:
        return [line for _, _, line in self.program_records(program)]

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()


def read_jsonl(path: Path) -> list[dict]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        for task in os.listdir(f"/proc/{current}/task") if os.path.isdir(f"/proc/{current}/task") else []:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                queue.append(child)
    return found


class SwssContainer:
    """supervisord with SONiC's swss stanzas for portsyncd and orchagent, in the rig's network namespace."""

    def __init__(self, rig):
        self.rig = rig
        self.dir = rig.tmp / "swss"
        self.dir.mkdir()
        self.python = supervisord_python()
        self.conf = self.dir / "supervisord.conf"
        self.events_path = self.dir / "events.jsonl"
        self.orchagent_path = self.dir / "orchagent.jsonl"
        self.proc = None
        self.syslog = SyslogSocket(self.dir / "syslog.sock")
        daemon_config = rig.write_config()
        (self.dir / "critical_processes").write_text("program:orchagent\nprogram:portsyncd\n")
        self.conf.write_text(SUPERVISORD_CONF.format(
            dir=self.dir, here=HERE, python=sys.executable, binary=Path(rig.binary).resolve(), config=daemon_config,
            database_config=rig.db_config_path))

    def start(self):
        # Neither systemd's notification socket nor its journal, as in the container; `python3` is the
        # interpreter that runs supervisord, as in the container (where it is the only one).
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
                            "LISTEN_PID", "LISTEN_FDNAMES", "INVOCATION_ID")}
        env["PATH"] = f"{Path(self.python).parent}:{env.get('PATH', '/usr/bin:/bin')}"
        self.output = (self.dir / "supervisord.out").open("wb")
        # cwd: the dependent-startup plugin, given no -c, reads the supervisord.conf of its current directory.
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", LAUNCH, "launch", str(self.dir),
             self.rig.ns.name, str(self.conf)],
            cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=self.output, stderr=subprocess.STDOUT,
            start_new_session=True)

    # --- supervisorctl

    def ctl(self, *args) -> str:
        result = run(["supervisorctl", "--configuration", str(self.conf), *args], check=False)
        return result.stdout.decode(errors="replace")

    def status(self) -> dict:
        """{program: (state, rest of the line)} from `supervisorctl status`; {} while supervisord is not up."""
        if self.proc.poll() is not None:
            raise AssertionError(f"supervisord exited with {self.proc.returncode}:\n{self.diagnostics()}")
        states = {}
        for line in self.ctl("status").splitlines():
            parts = line.split(None, 2)
            if len(parts) >= 2 and parts[1].isupper():
                states[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
        return states

    def wait_state(self, program, state, timeout=20.0):
        def reached():
            got = self.status().get(program)
            return got if got and got[0] == state else Miss(got)

        return wait_for(reached, timeout=timeout, what=f"supervisorctl status: {program} {state}")

    def pid(self, program) -> int:
        return int(self.ctl("pid", program).strip())

    # --- records

    def events(self) -> list[dict]:
        return read_jsonl(self.events_path)

    def consumed(self) -> list[dict]:
        return read_jsonl(self.orchagent_path)

    def supervisord_log(self) -> list[str]:
        try:
            return (self.dir / "supervisord.log").read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def log_index(self, text) -> int:
        """The index of the first line of supervisord's log that contains `text` (waited for)."""

        def found():
            log = self.supervisord_log()
            return next((i + 1 for i, line in enumerate(log) if text in line), None) or Miss(log[-3:])

        return wait_for(found, timeout=10, what=f"supervisord's log to say {text!r}") - 1

    def wait_event(self, event, process, timeout=15.0) -> list[dict]:
        """Every `event` the exit listener recorded for `process`, once there is one."""

        def recorded():
            found = [e for e in self.events() if e["event"] == event and e["process"] == process]
            return found or Miss(self.events()[-3:])

        return wait_for(recorded, timeout=timeout, what=f"the exit listener to record {event} for {process}")

    def diagnostics(self) -> str:
        parts = ["--- supervisord.log\n" + "\n".join(self.supervisord_log()[-40:])]
        for path in sorted(self.dir.glob("*.log")) + [self.dir / "supervisord.out"]:
            if path.name != "supervisord.log" and path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        parts.append("--- events\n" + "\n".join(map(json.dumps, self.events())))
        with self.syslog.lock:
            parts.append("--- syslog (tail)\n" + "\n".join(f"<{p}>{t}: {m}" for p, t, m in self.syslog.records[-40:]))
        return "\n".join(parts)

    # --- clean-up

    def close(self):
        """Stop supervisord (it stops its programs), then kill whatever is left, also after a failure."""
        if self.proc is not None:
            if self.proc.poll() is None:
                left = descendants(self.proc.pid)
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    left += descendants(self.proc.pid)
                    self.proc.kill()
                    self.proc.wait(timeout=5)
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            self.output.close()
        self.syslog.close()


@pytest.fixture
def container(rig):
    instance = SwssContainer(rig)
    # A failed test's report shows the rig's diagnostics (conftest); supervisord's are added to them.
    rig_diagnostics = rig.diagnostics
    rig.diagnostics = lambda: rig_diagnostics() + "\n" + instance.diagnostics()
    yield instance
    instance.close()


def test_without_systemd_it_runs_in_the_foreground_logs_to_stderr_and_ends_by_the_stop_signal(rig):
    """No NOTIFY_SOCKET and no journal (a JOURNAL_STREAM naming another file, as a login shell may pass on, is no
    journal): the process started is the daemon itself, nothing goes to stdout or to a notification socket,
    every record is one line on stderr, and SIGTERM ends it, after the drain, by SIGTERM."""
    rig.configure_ports(PORTS)
    notify = NotifyListener(rig.tmp / "unused-notify")
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env["JOURNAL_STREAM"] = "1:1"
    config = rig.write_config()
    daemon = Daemon(rig.ns.exec_argv(str(rig.binary), "--config", str(config)), env, notify, rig.tmp / "fg.log",
                    rig.binary)
    rig.daemons.append(daemon)
    daemon.wait_log(r" notice Ready: ")
    assert daemon.pid == daemon.proc.pid
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == -signal.SIGTERM
    lines = daemon.log_lines()
    assert any("Every accepted update is in Redis; exiting" in line for line in lines), lines[-5:]
    assert all(LOG_LINE.match(line) for line in lines), [line for line in lines if not LOG_LINE.match(line)][:5]
    assert daemon.stdout() == ""
    assert notify.assignments() == []


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL", "supervisorctl-stop"])
def test_portsyncd_as_a_program_of_the_swss_container(rig, container, how):
    started = time.monotonic()
    rig.configure_ports(PORTS)
    container.start()

    # 1. dependent-startup starts portsyncd, and orchagent only once portsyncd is RUNNING.
    container.wait_state("portsyncd", "RUNNING")
    container.wait_state("orchagent", "RUNNING")
    status = container.ctl("status")
    container.wait_event("PROCESS_STATE_RUNNING", "orchagent")
    running = [e["process"] for e in container.events() if e["event"] == "PROCESS_STATE_RUNNING"]
    assert running.index("portsyncd") < running.index("orchagent"), running
    became_running = container.log_index("success: portsyncd entered RUNNING state")
    assert became_running < container.log_index("spawned: 'orchagent'"), container.supervisord_log()

    # 2. In the foreground, without systemd: the process supervisord watches is portsyncd itself, with neither
    # NOTIFY_SOCKET nor JOURNAL_STREAM, and its records reach syslog one line each.
    pid = container.pid("portsyncd")
    assert os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(rig.binary)
    environment = dict(item.split(b"=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if item)
    assert b"NOTIFY_SOCKET" not in environment and b"JOURNAL_STREAM" not in environment
    assert environment.get(b"SUPERVISOR_PROCESS_NAME") == b"portsyncd"

    # 3. The Redis contract with orchagent: it consumed every port and PortConfigDone count=N ...
    def consumed():
        keys = [entry["key"] for entry in container.consumed()]
        return keys if "PortConfigDone" in keys else Miss(keys)

    keys = wait_for(consumed, timeout=15, what="the orchagent stand-in to consume PortConfigDone")
    assert sorted(keys) == sorted(PORTS + ["PortConfigDone"]), keys
    assert decode_hash(rig.appl.hgetall(b"PORT_TABLE:PortConfigDone")) == {"count": str(len(PORTS))}

    # ... then the host interfaces appear, as orchagent has SAI make them: STATE_DB state=ok for each, and
    # PortInitDone lanes=0, consumed by orchagent as well.
    rig.add_ports(PORTS)
    rig.wait_state_matches_kernel(PORTS)
    for name in PORTS:
        assert rig.state_row(name)["state"] == "ok"
    wait_for(lambda: decode_hash(rig.appl.hgetall(b"PORT_TABLE:PortInitDone")) == {"lanes": "0"}, timeout=10,
             what="APPL_DB PORT_TABLE:PortInitDone lanes=0 (consumed by the orchagent stand-in)")

    # syslog(3) from supervisord: tagged `supervisord`, user.info (14) whatever the record's own level.
    records = container.syslog.program_records("portsyncd")
    assert any("PortConfigDone" in line for _, _, line in records), records[-5:]
    assert {(priority, tag) for priority, tag, _ in records} == {(14, "supervisord")}

    # 4. supervisord's own stop (supervisorctl stop, or the container stopping): STOPPED, not an exit.
    if how == "supervisorctl-stop":
        container.ctl("stop", "portsyncd")
        container.wait_state("portsyncd", "STOPPED")
        container.log_index("stopped: portsyncd (terminated by SIGTERM)")
        assert [e["event"] for e in container.events() if e["process"] == "portsyncd"] == ["PROCESS_STATE_RUNNING"]
        lines = container.syslog.program_lines("portsyncd")
        assert any("Every accepted update is in Redis; exiting" in line for line in lines), lines[-5:]
        print(f"\n--- supervisorctl status while both ran:\n{status}"
              f"--- supervisorctl status after supervisorctl stop portsyncd:\n{container.ctl('status')}"
              f"--- {time.monotonic() - started:.1f} s")
        return

    # 5. An exit: SONiC's critical-process rule sees it (PROCESS_STATE_EXITED, expected 0), and supervisord does
    # not restart portsyncd (autorestart=false).
    signum = signal.Signals[how]
    os.kill(pid, signum)

    exits = container.wait_event("PROCESS_STATE_EXITED", "portsyncd")
    assert exits == [{"event": "PROCESS_STATE_EXITED", "process": "portsyncd", "group": "portsyncd",
                      "from_state": "RUNNING", "pid": pid, "expected": 0, "critical_exit": True}], exits
    # supervisord decides a restart in the main-loop pass after the one that reaped the child; each supervisorctl
    # answer below comes from a later pass than the exit the listener recorded.
    for _ in range(2):
        state, detail = container.status()["portsyncd"]
        assert state == "EXITED", (state, detail)
    assert not any("spawned: 'portsyncd'" in line for line in container.supervisord_log()[became_running:])
    assert [e for e in container.events() if e["process"] == "portsyncd"][-1]["event"] == "PROCESS_STATE_EXITED"
    assert container.status()["orchagent"][0] == "RUNNING"

    # Everything portsyncd wrote reached syslog one record per line, the stop too: on SIGTERM it drains its
    # writes first, then ends by the signal, as SONiC's portsyncd (no handler) ends.
    container.log_index(f"exited: portsyncd (terminated by {how}; not expected)")
    lines = container.syslog.program_lines("portsyncd")
    assert lines and all(LOG_LINE.match(line) for line in lines), [l for l in lines if not LOG_LINE.match(l)][:5]
    if signum == signal.SIGTERM:
        assert any("Every accepted update is in Redis; exiting" in line for line in lines), lines[-5:]

    print(f"\n--- supervisorctl status while both ran:\n{status}"
          f"--- supervisorctl status after {how}:\n{container.ctl('status')}"
          f"--- listener's record of the exit: {json.dumps(exits[0])}\n"
          f"--- {time.monotonic() - started:.1f} s")

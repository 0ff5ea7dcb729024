"""The configuration file as a path: no file content may crash the daemon, and a file that cannot be read is an
error naming the path and the reason, at start-up, for --check-config and on reload (the running configuration
stays). Only the default path, /etc/sonic/portsyncd.conf, may be missing: then the defaults are in use, and the log
says so.

The documents `[[[ broken`, `[[[` and `a = 1 / [x] / [[[` made toml++ (the C++ parser behind TOMLKit, used before)
fail an assertion and abort (exit 134); they are plain syntax errors now. Tests that need the default path run in a
private mount namespace whose /etc is an overlay, so that /etc/sonic can be made empty or hold a broken link
without touching the host."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import run, wait_for
from test_supervisor import metrics

CRASHERS = [
    ("[[[ broken", "[[[ broken\n", 1, 3),
    ("[[[", "[[[", 1, 3),
    ("[[[ after a table", "a = 1\n[x]\n[[[\n", 3, 3),
]


def check_config(binary, path):
    result = run([str(binary), "--config", str(path), "--check-config"], check=False)
    return result.returncode, result.stderr.decode(errors="replace")


@pytest.mark.parametrize("case,text,line,column", CRASHERS, ids=[c[0] for c in CRASHERS])
def test_check_config_of_a_document_that_crashed_toml_plus_plus(rig, case, text, line, column):
    """--check-config: exit 1 with file:line:col and a syntax error, not SIGABRT (134)."""
    path = rig.write_config(text=text)
    status, stderr = check_config(rig.binary, path)
    assert status == 1, (case, status, stderr)
    assert f"{path}:{line}:{column}: syntax error: Error while parsing array-of-tables header" in stderr, stderr


def test_start_with_a_document_that_crashed_toml_plus_plus(rig):
    """Starting the daemon with `[[[ broken`: exit 1 before READY, file:line:col on stderr."""
    path = rig.write_config(text="[log]\nlevel = \"notice\"\n[[[ broken\n")
    daemon = rig.start(config_path=path, wait_ready=False)
    assert daemon.wait_exit(15) == 1, daemon.stderr()
    assert "READY=1" not in daemon.notify.assignments()
    assert f"{path}:3:3: syntax error" in daemon.stderr()


def unreadable_paths(tmp: Path):
    """(case, path, what stderr must say) for each way a named path can fail to be a readable file."""
    dangling = tmp / "dangling.conf"
    dangling.symlink_to(tmp / "nowhere.conf")
    loop_a, loop_b = tmp / "loop-a.conf", tmp / "loop-b.conf"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    directory = tmp / "directory.conf"
    directory.mkdir()
    fifo = tmp / "fifo.conf"
    os.mkfifo(fifo)
    return [
        ("missing", tmp / "missing.conf", "No such file or directory"),
        ("missing directory", tmp / "no-such-dir" / "portsyncd.conf", "No such file or directory"),
        ("dangling link", dangling, f"a symbolic link to {tmp / 'nowhere.conf'} that leads to nothing "
                                    "(No such file or directory)"),
        ("link loop", loop_a, "Too many levels of symbolic links"),
        ("directory", directory, "Is a directory"),
        ("fifo", fifo, "not a regular file"),
    ]


def test_check_config_of_paths_that_are_not_readable_files(rig):
    """--check-config --config PATH: a missing file, a dangling link, a loop of links, a directory or a FIFO is an
    error: exit 1, `PATH: cannot read the file: REASON` (strerror's text where there is an errno)."""
    for case, path, reason in unreadable_paths(rig.tmp):
        status, stderr = check_config(rig.binary, path)
        assert status == 1, (case, status, stderr)
        assert f"portsyncd: invalid configuration: {path}: cannot read the file: {reason}\n" in stderr, (case, stderr)


def test_check_config_of_a_file_without_permission(rig):
    """A file the process may not read (run as nobody): exit 1 with "Permission denied"."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    directory = Path(tempfile.mkdtemp(prefix="psd-perm-"))
    try:
        directory.chmod(0o755)
        path = directory / "portsyncd.conf"
        path.write_text("[log]\nlevel = \"info\"\n")
        path.chmod(0o600)
        result = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(rig.binary), "--config",
                      str(path), "--check-config"], check=False)
        stderr = result.stderr.decode(errors="replace")
        if "error while loading shared libraries" in stderr or ("Permission denied" in stderr and str(path) not in stderr):
            pytest.skip(f"the binary cannot run as nobody here: {stderr.strip()}")
        assert result.returncode == 1, stderr
        assert f"{path}: cannot read the file: Permission denied" in stderr, stderr
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_start_with_a_named_path_that_is_missing_or_a_dangling_link(rig):
    """Starting with --config PATH where nothing is, or a link to nothing: exit 1 before READY, no defaults."""
    dangling = rig.tmp / "dangling.conf"
    dangling.symlink_to(rig.tmp / "nowhere.conf")
    for path, reason in [(rig.tmp / "missing.conf", "No such file or directory"),
                         (dangling, "that leads to nothing")]:
        daemon = rig.start(config_path=path, wait_ready=False)
        assert daemon.wait_exit(15) == 1, daemon.stderr()
        assert "READY=1" not in daemon.notify.assignments()
        assert re.search(re.escape(f"{path}: cannot read the file: ") + ".*" + re.escape(reason), daemon.stderr())
        assert rig.state.dbsize() == 0 and rig.appl.dbsize() == 0


def start_watched(rig):
    """A daemon on a configuration that differs from the defaults (the rig's), with a metrics file."""
    path = rig.write_config({"telemetry": {"metrics_file": str(rig.tmp / "portsyncd.prom")}})
    daemon = rig.start(config_path=path)
    prom = rig.tmp / "portsyncd.prom"
    wait_for(lambda: prom.exists() and metrics(prom).get(("portsyncd_config_last_reload_successful", ())) == 1,
             what="config_last_reload_successful 1")
    return daemon, path, prom


def assert_refused_then_old_config_kept(rig, daemon, path, prom, valid, expected):
    """After a SIGHUP on a bad `path`: reload_failed with `expected`, the metric at 0, the daemon alive; then the
    valid text back gives "no change", so the old configuration (not the defaults) was kept all along."""
    daemon.signal(signal.SIGHUP)
    line = daemon.wait_log(r"Reload refused, keeping the old configuration: ")
    assert expected in line, line
    assert "EVENT=reload_failed" in line and f"CONFIG_FILE={path}" in line, line
    wait_for(lambda: metrics(prom).get(("portsyncd_config_last_reload_successful", ())) == 0,
             what="config_last_reload_successful 0")
    assert daemon.alive
    assert not any("Configuration reloaded" in entry for entry in daemon.log_lines())
    if path.is_symlink():
        path.unlink()
    path.write_text(valid)
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"Configuration reloaded: no change")
    wait_for(lambda: metrics(prom).get(("portsyncd_config_last_reload_successful", ())) == 1,
             what="config_last_reload_successful back to 1")
    rig.seed_appl("Ethernet0")
    rig.add_port("Ethernet0")
    rig.wait_state_matches_kernel(["Ethernet0"])


def test_reload_of_a_document_that_crashed_toml_plus_plus_keeps_the_old_config(rig):
    """A running daemon whose file is saved with `[[[ broken` and reloaded (SIGHUP) keeps running on its old
    configuration: reload_failed with file:line:col, config_last_reload_successful 0."""
    daemon, path, prom = start_watched(rig)
    valid = path.read_text()
    temporary = path.with_name("edit.tmp")
    temporary.write_text(valid + "[[[ broken\n")
    temporary.rename(path)
    line = len(valid.splitlines()) + 1
    assert_refused_then_old_config_kept(rig, daemon, path, prom, valid, f"{path}:{line}:3: syntax error: ")


def test_reload_of_a_file_turned_dangling_link_keeps_the_old_config(rig):
    """The file replaced by a link to nothing: the reload is refused with the reason, the old configuration stays
    (the defaults are not applied)."""
    daemon, path, prom = start_watched(rig)
    valid = path.read_text()
    path.unlink()
    path.symlink_to(rig.tmp / "nowhere.conf")
    assert_refused_then_old_config_kept(
        rig, daemon, path, prom, valid,
        f"{path}: cannot read the file: a symbolic link to {rig.tmp / 'nowhere.conf'} that leads to nothing")


def test_reload_of_a_deleted_named_file_keeps_the_old_config(rig):
    """The named file deleted: the reload is refused ("No such file or directory"), the old configuration stays."""
    daemon, path, prom = start_watched(rig)
    valid = path.read_text()
    path.unlink()
    assert_refused_then_old_config_kept(
        rig, daemon, path, prom, valid, f"{path}: cannot read the file: No such file or directory")


# --- The default path, in a private mount namespace.


@pytest.fixture
def private_etc(rig):
    """An argv prefix that runs a command where /etc is an overlay and /etc/sonic an empty tmpfs; the command is
    preceded by `SETUP` (a shell snippet run in /etc/sonic)."""
    # In the rig's directory, removed after its daemons are stopped.
    upper = rig.tmp / "etc-overlay"
    (upper / "up").mkdir(parents=True)
    (upper / "work").mkdir()
    script = ('mount -t overlay psd-etc -o "lowerdir=/etc,upperdir=$1/up,workdir=$1/work" /etc && '
              'mkdir -p /etc/sonic && mount -t tmpfs psd-sonic /etc/sonic && (cd /etc/sonic && eval "$2") && '
              'shift 2 && exec "$@"')

    def argv(setup, *command):
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(upper), setup,
                *command]

    probe = subprocess.run(argv("true", "true"), capture_output=True, timeout=20)
    if probe.returncode != 0:
        pytest.skip(f"no overlay mount in a private namespace here: {probe.stderr.decode(errors='replace')}")
    return argv


def test_check_config_without_a_file_at_the_default_path_uses_the_defaults(rig, private_etc):
    """No --config and no /etc/sonic/portsyncd.conf: exit 0, "the defaults are in use". The same when the default
    path is named (the unit file names it): only a missing file at the default path means the defaults."""
    for args in ([], ["--config", "/etc/sonic/portsyncd.conf"]):
        result = run(private_etc("true", str(rig.binary), "--check-config", *args), check=False)
        stderr = result.stderr.decode(errors="replace")
        assert result.returncode == 0, (args, stderr)
        assert "portsyncd: /etc/sonic/portsyncd.conf: no such file; the defaults are in use" in stderr, stderr


@pytest.mark.parametrize("case,setup,reason", [
    ("dangling link", "ln -s /nowhere portsyncd.conf",
     "a symbolic link to /nowhere that leads to nothing (No such file or directory)"),
    ("link loop", "ln -s portsyncd.conf portsyncd.conf", "Too many levels of symbolic links"),
    ("directory", "mkdir portsyncd.conf", "Is a directory"),
])
def test_check_config_of_a_default_path_that_is_not_a_readable_file(rig, private_etc, case, setup, reason):
    """The default path may only be missing: a dangling link, a loop or a directory there is an error (exit 1)."""
    result = run(private_etc(setup, str(rig.binary), "--check-config"), check=False)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1, (case, stderr)
    assert f"/etc/sonic/portsyncd.conf: cannot read the file: {reason}" in stderr, (case, stderr)


def test_daemon_without_a_file_at_the_default_path_logs_that_the_defaults_are_in_use(rig, private_etc):
    """The daemon with no arguments and no file: READY, and the log says the defaults are in use, at start-up and
    on a reload (which then changes nothing)."""
    rig.configure_ports(["Ethernet0"])
    setup = ('mount -t tmpfs psd-run /run && mkdir -p /run/redis/sonic-db && '
             f'cp {rig.db_config_path} /run/redis/sonic-db/database_config.json')
    daemon = rig.start(argv=rig.ns.exec_argv(*private_etc(setup, str(rig.binary))))
    line = daemon.wait_log(r"No configuration file at /etc/sonic/portsyncd\.conf; the defaults are in use")
    assert "EVENT=config_defaults" in line and "CONFIG_FILE=/etc/sonic/portsyncd.conf" in line, line
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"Configuration reloaded: no change")
    assert sum("the defaults are in use" in entry for entry in daemon.log_lines()) == 2
    assert daemon.alive

"""Checks on portsyncd.service: systemd accepts it, its sandbox scores well, and it keeps the
settings the daemon depends on (sd_notify, watchdog, reload, hardening).

`systemd-analyze verify` refuses a unit whose ExecStart= binary is missing and, by default, one whose
Documentation= man page is not installed. So the unit is verified inside a throwaway root that holds
the unit, executable stubs for the commands it runs and a copy of the host's own system units (for the
default dependencies, sysinit.target and friends), and man pages are not looked up:

    systemd-analyze verify --man=no --root=ROOT ROOT/etc/systemd/system/portsyncd.service

The unit has to live inside ROOT: given a path outside it, systemd 252 answers "Unit ... not found".
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT_REL = "portsyncd.service"
UNIT = REPO / UNIT_REL
UNIT_NAME = "portsyncd.service"
MAX_EXPOSURE = 2.0
# Where the host keeps the units shipped with systemd (Debian 12: /usr/lib; older split-usr: /lib).
HOST_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze not found on PATH; install the `systemd` package, which provides it")
    return path


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, encoding="utf-8", timeout=120)


def _stub(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


def _make_root(base: Path, unit_text: str, *, stubs: bool = True) -> Path:
    """A minimal file-system root for `verify --root=`; returns the unit's path inside it."""
    host_units = next((d for d in HOST_UNIT_DIRS if (d / "sysinit.target").exists()), None)
    if host_units is None:
        pytest.fail(f"no systemd unit directory with sysinit.target among {[str(d) for d in HOST_UNIT_DIRS]}")
    shutil.copytree(host_units, base / "usr/lib/systemd/system", symlinks=True)
    if stubs:
        for command in ("/usr/bin/portsyncd", "/bin/kill"):
            _stub(base / command.lstrip("/"))
    unit = base / "etc/systemd/system" / UNIT_NAME
    unit.parent.mkdir(parents=True)
    unit.write_text(unit_text)
    return unit


def _verify(systemd_analyze: str, root: Path, unit: Path) -> subprocess.CompletedProcess[str]:
    return _run([systemd_analyze, "verify", "--man=no", f"--root={root}", str(unit)])


# --- 1. systemd-analyze verify -------------------------------------------------------------------------


def test_verify_prints_nothing_and_succeeds(systemd_analyze: str, tmp_path: Path) -> None:
    unit = _make_root(tmp_path, UNIT.read_text())
    result = _verify(systemd_analyze, tmp_path, unit)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), (
        f"systemd-analyze verify rc={result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


def test_verify_setup_does_report_problems(systemd_analyze: str, tmp_path: Path) -> None:
    """Guards test 1: in this root, verify still flags a missing binary and a bad setting."""
    broken = UNIT.read_text().replace("[Service]\n", "[Service]\nProtectSystem=bananas\n", 1)
    assert broken != UNIT.read_text()
    unit = _make_root(tmp_path, broken, stubs=False)
    result = _verify(systemd_analyze, tmp_path, unit)
    output = result.stdout + result.stderr
    assert "/usr/bin/portsyncd is not executable" in output, output
    assert "bananas" in output, output
    assert result.returncode != 0, output


# --- 2. systemd-analyze security --------------------------------------------------------------------------


def test_security_exposure_is_at_most_2(systemd_analyze: str) -> None:
    result = _run([systemd_analyze, "security", "--offline=true", UNIT_REL])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    match = re.search(rf"Overall exposure level for {re.escape(UNIT_NAME)}: (\d+(?:\.\d+)?)", output)
    assert match is not None, f"no overall exposure level in:\n{output}"
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{output}"


# --- 3. Required settings ----------------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections to keys to every assigned value, in order (systemd allows a key to repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):  # continuation: the backslash becomes a space
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"line {number}: not `key=value` inside a section: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    assert not pending, "unit ends in a continuation line"
    return sections


def effective_list(values: list[str]) -> list[str]:
    """A list setting's items: assignments accumulate, an empty one resets."""
    items: list[str] = []
    for value in values:
        items = [] if value == "" else items + value.split()
    return items


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text())


@pytest.fixture(scope="module")
def service(unit: dict[str, dict[str, list[str]]]) -> dict[str, list[str]]:
    assert "Service" in unit, "no [Service] section"
    return unit["Service"]


def single(service: dict[str, list[str]], key: str) -> str:
    values = service.get(key)
    assert values, f"{key}= is not set"
    return values[-1]


def test_sections_and_install(unit: dict[str, dict[str, list[str]]]) -> None:
    assert set(unit) == {"Unit", "Service", "Install"}, set(unit)
    assert "man:portsyncd(8)" in unit["Unit"].get("Documentation", [])
    assert "network.target" in effective_list(unit["Unit"].get("After", []))
    assert unit["Install"].get("WantedBy") == ["multi-user.target"]


def test_notify_watchdog_restart(service: dict[str, list[str]]) -> None:
    assert single(service, "Type") == "notify"
    assert single(service, "NotifyAccess") == "main"
    watchdog = single(service, "WatchdogSec")
    assert re.fullmatch(r"[1-9]\d*(ms|s|min)?", watchdog), f"WatchdogSec={watchdog} does not enable the watchdog"
    assert single(service, "Restart") == "on-failure"


def test_swift_backtracer_is_off(service: dict[str, list[str]]) -> None:
    assignments = [word for value in service.get("Environment", []) for word in shlex.split(value)]
    assert "SWIFT_BACKTRACE=enable=no" in assignments, assignments


def test_exec_start_and_reload(service: dict[str, list[str]]) -> None:
    assert service.get("ExecStart") == ["/usr/bin/portsyncd --config /etc/sonic/portsyncd.conf"]
    reload = service.get("ExecReload", [])
    check = [i for i, cmd in enumerate(reload) if cmd.split()[:1] == ["/usr/bin/portsyncd"] and "--check-config" in cmd.split()]
    hup = [i for i, cmd in enumerate(reload) if cmd.split() == ["/bin/kill", "-HUP", "$MAINPID"]]
    assert check and hup, f"ExecReload= needs `portsyncd --check-config` and `kill -HUP $MAINPID`: {reload}"
    assert max(check) < min(hup), f"--check-config must run before the SIGHUP: {reload}"
    assert "--config /etc/sonic/portsyncd.conf" in reload[check[0]], reload[check[0]]


def test_hardening(service: dict[str, list[str]]) -> None:
    assert single(service, "ProtectSystem") == "strict"
    assert single(service, "NoNewPrivileges") == "yes"
    assert effective_list(service.get("CapabilityBoundingSet", [])) == ["CAP_NET_ADMIN"]
    families = effective_list(service.get("RestrictAddressFamilies", []))
    assert sorted(families) == sorted(["AF_NETLINK", "AF_UNIX", "AF_INET", "AF_INET6"]), families
    allow = [v for v in service.get("SystemCallFilter", []) if not v.startswith("~")]
    assert any("@system-service" in v.split() for v in allow), service.get("SystemCallFilter")


def test_stays_in_host_network_namespace(service: dict[str, list[str]]) -> None:
    for key in ("PrivateNetwork", "PrivateUsers", "NetworkNamespacePath"):
        assert service.get(key, ["no"])[-1] in ("no", "false", "0", "off"), f"{key}= would hide the host's links"

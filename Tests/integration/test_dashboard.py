"""The dashboard (`/`, Sources/PortSyncHTTP/Resources/index.html) in a real browser: Debian's headless Chromium,
started inside the rig's network namespace and driven over the DevTools protocol (a WebSocket made from the
namespace with `netns_connect`), against the real daemon.

Chromium must be installed (`make deps` installs Debian's `chromium`); without it the test fails and says so.
The screenshot it takes is left in Tests/artifacts/dashboard.png.
"""
import base64
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest
from websockets.sync.client import connect as ws_connect

from conftest import REPO_ROOT, activity, netns_connect, wait_for
from test_http import Api

ARTIFACT = REPO_ROOT / "Tests" / "artifacts" / "dashboard.png"
DEVTOOLS_PORT = 9222
# The product's bound: a port change is on the dashboard within 2 s of the kernel's.
DISPLAY_BOUND_S = 2.0


class Chromium:
    """Headless Chromium in a network namespace, with its DevTools endpoint on the namespace's loopback."""

    def __init__(self, rig):
        binary = shutil.which("chromium")
        if binary is None:
            pytest.fail("chromium is not installed: the dashboard test needs Debian's `chromium` package "
                        "(`make deps` installs it; or `apt-get install chromium`)", pytrace=False)
        self.ns = rig.ns.name
        self.profile = rig.tmp / "chromium-profile"
        argv = rig.ns.exec_argv(
            binary, "--headless=new", "--no-sandbox", f"--remote-debugging-port={DEVTOOLS_PORT}",
            f"--user-data-dir={self.profile}", "--window-size=1280,860", "--hide-scrollbars", "--no-first-run",
            "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
            "--disable-dev-shm-usage", "about:blank")
        self.stderr_lines: list[str] = []
        # Its own process group, so that the browser and every helper process it forks go together.
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in iter(self.proc.stderr.readline, b""):
            self.stderr_lines.append(raw.decode(errors="replace").rstrip("\n"))
            activity()

    def wait_devtools(self):
        def listening():
            if self.proc.poll() is not None:
                raise AssertionError(f"chromium exited with {self.proc.returncode}: {self.stderr_lines[-10:]}")
            return any("DevTools listening on ws://" in line for line in self.stderr_lines)
        wait_for(listening, timeout=30, what="chromium's DevTools endpoint")

    def page_websocket_url(self) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", DEVTOOLS_PORT, timeout=10)
        conn.sock = netns_connect(self.ns, DEVTOOLS_PORT)
        conn.request("GET", "/json/list")
        targets = json.loads(conn.getresponse().read())
        conn.close()
        pages = [t for t in targets if t.get("type") == "page"]
        assert pages, targets
        return pages[0]["webSocketDebuggerUrl"]

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.reader.join(timeout=5)


class DevTools:
    """A DevTools protocol session on one page target."""

    def __init__(self, ns, url):
        port = int(re.search(r":(\d+)/", url).group(1))
        self.ws = ws_connect(url, sock=netns_connect(ns, port), open_timeout=10, max_size=64 << 20).__enter__()
        self.ids = itertools.count(1)

    def call(self, method, timeout=10.0, **params):
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == ident:
                assert "error" not in message, (method, message["error"])
                return message.get("result", {})

    def evaluate(self, expression, timeout=10.0):
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                           returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def close(self):
        self.ws.close()


@pytest.fixture
def chromium(rig):
    browser = Chromium(rig)
    yield browser
    browser.close()


CELL_STATE = "(document.getElementById('port-Ethernet0') || {dataset: {}}).dataset.state || null"

# Resolves with Ethernet0's state as soon as it is no longer "up", or with the current state after 100 ms: one DOM
# poll, waiting in the page (a MutationObserver) rather than in the test.
STATE_CHANGE = """
new Promise(resolve => {
  const state = () => { const cell = document.getElementById('port-Ethernet0'); return cell ? cell.dataset.state : null; };
  if (state() !== 'up') { resolve(state()); return; }
  const observer = new MutationObserver(() => { if (state() !== 'up') { observer.disconnect(); resolve(state()); } });
  observer.observe(document.getElementById('ports'), {subtree: true, childList: true, attributes: true});
  setTimeout(() => { observer.disconnect(); resolve(state()); }, 100);
})
"""


def test_dashboard_shows_a_port_going_down_within_two_seconds(rig, chromium):
    """The dashboard, loaded by headless Chromium from the daemon, shows a cell per port from the SSE snapshot
    (Ethernet0 "up"); `ip link set Ethernet0 down` turns that cell's state to "admin-down" within 2 s (the DOM
    polled until a 2 s deadline from the `ip` command), its text says so, and the connection badge reads "live".
    A screenshot of the page is saved to Tests/artifacts/dashboard.png."""
    daemon = rig.start(config={"alerts": {"port_down_after_ms": 1000},
                               "channels": {"bar_intervals_ms": [1000], "stats_interval_ms": 200}})
    api = Api(rig, daemon)
    ports = [f"Ethernet{4 * i}" for i in range(8)]
    rig.add_synced_ports(ports)
    rig.ns.batch([f"link set dev {rig.peers[b'Ethernet12']} down", "link set dev Ethernet20 down",
                  "link set dev Ethernet24 mtu 9100"])
    # Alerts raised and bars closed before the page connects: the page asks for them once its stream is synced.
    wait_for(lambda: sorted(a["subject"] for a in api.json("/v1/alerts")["active"]) == ["Ethernet12", "Ethernet20"],
             timeout=10, what="port_down alerts for Ethernet12 and Ethernet20")
    wait_for(lambda: len(api.json("/v1/ports/Ethernet0/bars")["bars"]) >= 2, timeout=10, what="two closed bars")
    chromium.wait_devtools()
    page = DevTools(rig.ns.name, chromium.page_websocket_url())
    try:
        page.call("Page.enable")
        page.call("Page.navigate", url=f"http://127.0.0.1:{api.port}/")
        wait_for(lambda: page.evaluate(CELL_STATE) == "up", timeout=15, what="the Ethernet0 cell, up")
        wait_for(lambda: page.evaluate("document.querySelectorAll('#ports .port').length") == len(ports),
                 what="a cell per port")
        assert page.evaluate("document.getElementById('connection').textContent") == "live"
        wait_for(lambda: page.evaluate("document.getElementById('alerts').textContent").count("port_down") == 2,
                 what="both alerts in the page's alert list")
        assert "Ethernet20" in page.evaluate("document.getElementById('alerts').textContent")
        wait_for(lambda: page.evaluate("document.querySelectorAll('#port-Ethernet0 svg').length") == 1,
                 what="Ethernet0's sparkline from its recent bars")

        started = time.monotonic()
        rig.ns.ip("link", "set", "dev", "Ethernet0", "down")
        while True:
            state = page.evaluate(STATE_CHANGE)
            elapsed = time.monotonic() - started
            if state == "admin-down":
                break
            assert elapsed < DISPLAY_BOUND_S, \
                f"Ethernet0's cell still {state!r} {elapsed:.2f} s after `ip link set Ethernet0 down`"
        assert elapsed < DISPLAY_BOUND_S, f"the change took {elapsed:.2f} s to show"
        print(f"dashboard: Ethernet0's cell changed {elapsed * 1000:.0f} ms after the `ip` command")
        text = page.evaluate("document.getElementById('port-Ethernet0').textContent")
        assert "down/down" in text, text
    finally:
        saved = screenshot(page)  # also when the test fails, to see why
        page.close()
    assert saved, "no screenshot"


def screenshot(page):
    """Saves the page as Tests/artifacts/dashboard.png; whether a PNG was saved (never raises: it also runs while
    a failure propagates)."""
    try:
        shot = page.call("Page.captureScreenshot", format="png")
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        ARTIFACT.write_bytes(base64.b64decode(shot["data"]))
        return ARTIFACT.read_bytes().startswith(b"\x89PNG")
    except Exception:  # noqa: BLE001 - the caller asserts the result
        return False

"""A surge on thousands of real ports (the small version of scripts/scale.py, which runs 8192): every port taken
down by one `ip -batch`, then brought up by another, twice. Nothing may be lost: STATE_DB equals the kernel for
every port after each phase and APPL_DB keeps every port; the event bus's view of every port (`/v1/ports`, what a
new stream subscriber's snapshot is made of) equals the kernel too, because a full intake coalesces each port's
events to its latest instead of dropping them; and alert flood control holds: with `flap_raise = 1` each port's
first link-down raises `port_flapping` and its second one is a suppressed repeat, so every port's alert is active
(`/v1/alerts`), no port's is raised twice on the stream, and the raises the stream did not carry were held back
by `alerts.flood_limit` and counted.

Two sizes: 1024 ports with the bus's intake buffers raised, and 4096 ports with the shipped sizes (there the
intake coalesces). No wall time is asserted. With a debug build the first case takes about 6 s, the second
about 25 s."""
import pytest

from conftest import APPL_DB, Miss, port_name, wait_for
from test_channels import Events, disable_ipv6
from test_http import Api

def view_mismatches(api, rig, names) -> list:
    links = rig.links()
    view = {p["name"]: p for p in api.json("/v1/ports")}
    bad = []
    for name in names:
        link = links[name.encode()]
        entry = view.get(name, {})
        want = ("up" if link.admin_up else "down", "up" if link.running else "down", link.mtu, link.ifindex)
        got = (entry.get("admin"), entry.get("oper"), entry.get("mtu"), entry.get("ifindex"))
        if got != want:
            bad.append((name, got, want))
    return bad


@pytest.mark.parametrize("ports,bus", [(1024, "raised"), (4096, "shipped")],
                         ids=["1024-ports-raised-bus-buffers", "4096-ports-shipped-bus-buffers"])
def test_surge_of_every_port_down_then_up_loses_nothing(rig, ports, bus):
    disable_ipv6(rig)  # bringing thousands of veths down with IPv6 on costs the kernel minutes
    names = [port_name(i) for i in range(ports)]
    events = {"client_buffer_capacity": 100000}  # the test's own stream is never cut as slow
    if bus == "raised":
        events.update(high_capacity=100000, medium_capacity=100000)
    config = {"alerts": {"flap_raise": 1, "flap_clear": 0}, "events": events,
              "http": {"port": 0, "sse_heartbeat_ms": 1000}}
    daemon = rig.cold_start(names, config=config)
    api = Api(rig, daemon)

    def check_view(what):
        def agrees():
            bad = view_mismatches(api, rig, names)
            return True if not bad else Miss((len(bad), bad[:2]))

        wait_for(agrees, timeout=60, what=what)

    rig.add_ports(names)
    rig.wait_state_matches_kernel(names, timeout=120)
    check_view("the channels to know every port (/v1/ports)")
    alerts = Events(api, "?events=alert_raised,alert_cleared,port_health")
    try:
        wait_for(lambda: any(e[1] == "sync" for e in alerts.snapshot()), what="the alert stream's sync")
        for cycle in (1, 2):
            for state in ("down", "up"):
                rig.ns.batch([f"link set dev {name} {state}" for name in names])
                rig.wait_state_matches_kernel(names, timeout=120)  # the Redis side
                check_view(f"/v1/ports to equal the kernel after every port went {state} ({cycle})")
        appl = rig.db(APPL_DB)
        assert sum(appl.exists(f"PORT_TABLE:{name}") for name in names) == ports
        assert daemon.alive

        # Every port's alert is active; on the stream, no port's alert is raised twice (repeats suppressed), and
        # what the stream did not carry was held back by flood control and counted, not lost.
        def all_active():
            active = [a["subject"] for a in api.json("/v1/alerts")["active"] if a["rule"] == "port_flapping"]
            return sorted(active) == sorted(names) or Miss(f"{len(active)} active")

        wait_for(all_active, timeout=30, what="port_flapping active for every port")

        def accounted():
            raised = {}
            for event in alerts.of("alert_raised"):
                assert event["data"]["rule"] == "port_flapping", event
                raised[event["port"]] = raised.get(event["port"], 0) + 1
            text = api.get("/metrics")[2].decode()
            held = sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
                       if line.startswith('portsyncd_alert_events_held_total{rule="port_flapping"}'))
            total = sum(raised.values()) + held
            return (raised, held) if total == ports else Miss(f"{sum(raised.values())} raised + {held} held")

        raised, held = wait_for(accounted, timeout=30, what="every raise on the stream or held back")
        assert max(raised.values()) == 1, {p: n for p, n in raised.items() if n > 1}  # repeats suppressed
        assert set(raised) <= set(names)
        assert alerts.of("alert_cleared") == []
        assert alerts.ended is None, alerts.ended
        print(f"surge of {ports} ports: {len(raised)} alert_raised on the stream, {held} held by flood control")
    finally:
        alerts.close()

"""A surge on thousands of real ports (the small version of scripts/scale.py, which runs 8192): every port taken
down by one `ip -batch`, then brought up by another, twice. Nothing may be lost: STATE_DB equals the kernel for
every port after each phase and APPL_DB keeps every port; the event bus's view of every port (`/v1/ports`, what a
new stream subscriber's snapshot is made of) equals the kernel too; and alert flood control holds: with
`flap_raise = 1` each port's first link-down raises `port_flapping` once and its second one is a suppressed
repeat, so the stream carries exactly one `alert_raised` per port.

Two sizes. 1024 ports with the bus's intake buffers raised, so that the test asserts what the daemon does with
every event rather than what a loaded 2-core machine happens to drop. 4096 ports with the shipped buffer sizes:
there the stream view is known to go stale (see STALE_VIEW), which makes that case an expected failure; its Redis
side is still asserted strictly before the view is looked at. No wall time is asserted. With a debug build the
first case takes about 6 s, the second about 25 s."""
import pytest

from conftest import APPL_DB, Miss, port_name, wait_for
from test_channels import Events, disable_ipv6
from test_http import Api

STALE_VIEW = (
    "daemon bug: the event bus's intake drops port_state events in a surge and nothing publishes them again, so "
    "/v1/ports and every new subscriber's snapshot keep a wrong state for those ports until each changes again. "
    "The channel worker (ChannelWorker.drain/publish) publishes a whole drain's outputs at once; with thousands of "
    "ports that is thousands of high-priority events against events.high_capacity (1000), and EventBus.publish "
    "drops what does not fit (portsyncd_events_dropped_total{priority=\"high\"}). Alert events share that lane "
    "and are lost the same way. STATE_DB is not affected.")


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
    stale = []  # (what, ports the view has wrong) where the shipped buffers lost events

    def check_view(what):
        if stale:
            return  # the shipped buffers already lost events: the view is known to be wrong from here on
        def agrees():
            bad = view_mismatches(api, rig, names)
            return True if not bad else Miss((len(bad), bad[:2]))

        try:
            wait_for(agrees, timeout=5 if bus == "shipped" else 60, what=what)
        except AssertionError as error:
            if bus != "shipped":
                raise
            stale.append(str(error)[:300])

    rig.add_ports(names)
    rig.wait_state_matches_kernel(names, timeout=120)
    check_view("the channels to know every port (/v1/ports)")
    alerts = Events(api, "?events=alert_raised,alert_cleared,port_health")
    try:
        wait_for(lambda: any(e[1] == "sync" for e in alerts.snapshot()), what="the alert stream's sync")
        for cycle in (1, 2):
            for state in ("down", "up"):
                rig.ns.batch([f"link set dev {name} {state}" for name in names])
                rig.wait_state_matches_kernel(names, timeout=120)  # the Redis side: strict in both cases
                check_view(f"/v1/ports to equal the kernel after every port went {state} ({cycle})")
        appl = rig.db(APPL_DB)
        assert sum(appl.exists(f"PORT_TABLE:{name}") for name in names) == ports
        assert daemon.alive

        def raised_per_port():
            counts = {}
            for event in alerts.of("alert_raised"):
                assert event["data"]["rule"] == "port_flapping", event
                counts[event["port"]] = counts.get(event["port"], 0) + 1
            return counts if len(counts) >= ports else Miss(f"{len(counts)} ports raised")

        try:
            raised = wait_for(raised_per_port, what="port_flapping raised for every port",
                              timeout=5 if bus == "shipped" else 30)
        except AssertionError as error:
            if bus != "shipped":
                raise
            stale.append(str(error)[:300])
            raised = {}
            for event in alerts.of("alert_raised"):
                raised[event["port"]] = raised.get(event["port"], 0) + 1
        assert max(raised.values()) == 1, {p: n for p, n in raised.items() if n > 1}  # flood control
        assert set(raised) <= set(names)
        assert alerts.of("alert_cleared") == []
        assert alerts.ended is None, alerts.ended
        if stale:
            pytest.xfail(f"{STALE_VIEW} Here: {' | '.join(stale)}")
        assert sorted(raised) == sorted(names)
    finally:
        alerts.close()

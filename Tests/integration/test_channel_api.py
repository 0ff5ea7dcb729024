"""The channels' HTTP side against the real daemon: counter bars per port and length, active alerts from rules
written in the file, the channel workers' figures, and a reload that re-shards the workers and changes the rules
while ports keep their state."""
import signal

from conftest import wait_for
from test_http import Api

RULES = """
[[alerts.rules]]
name = "link_lost"
condition = "oper_down"
severity = "critical"
raise = 0.5
"""


def channels_config(workers=3):
    return {"channels": {"bar_intervals_ms": [1000, 2000], "stats_interval_ms": 200, "workers": workers}}


def start_with_rules(rig, ports, workers=3, rules=RULES):
    rig.configure_ports(ports)
    path = rig.write_config(channels_config(workers))
    path.write_text(path.read_text() + rules)
    daemon = rig.start(config_path=path)
    rig.orchagent_pop()
    rig.add_synced_ports(ports)
    return daemon, path


def test_bars_per_port_and_length(rig):
    """`/v1/ports/{name}/bars` answers each configured length (the shortest by default) with closed bars in time
    order; an unconfigured length is 400 and an unknown port 404."""
    daemon, _ = start_with_rules(rig, ["Ethernet0", "Ethernet4"])
    api = Api(rig, daemon)
    answer = wait_for(lambda: (a := api.json("/v1/ports/Ethernet0/bars")) and len(a["bars"]) >= 2 and a,
                      timeout=15, what="two closed 1 s bars of Ethernet0")
    assert answer["port"] == "Ethernet0" and answer["interval_ms"] == 1000
    bars = answer["bars"]
    assert all(bar["interval_us"] == 1_000_000 for bar in bars)
    assert [bar["start_us"] for bar in bars] == sorted(bar["start_us"] for bar in bars)
    assert all(bar["end_us"] - bar["start_us"] == 1_000_000 for bar in bars)
    longer = wait_for(lambda: (a := api.json("/v1/ports/Ethernet4/bars?interval_ms=2000")) and a["bars"] and a,
                      timeout=15, what="a closed 2 s bar of Ethernet4")
    assert longer["interval_ms"] == 2000 and longer["bars"][0]["interval_us"] == 2_000_000
    status, _, body = api.get("/v1/ports/Ethernet0/bars?interval_ms=5000")
    assert status == 400 and b"1000, 2000" in body
    assert api.get("/v1/ports/Ethernet0/bars?interval_ms=abc")[0] == 400
    assert api.get("/v1/ports/Ethernet404/bars")[0] == 404


def test_rule_from_the_file_raises_and_clears_an_alert(rig):
    """A `[[alerts.rules]]` rule (oper down for 0.5 s, critical): taking the port's peer down raises it once, on the
    stream, in `/v1/alerts` and in the metrics; bringing it back clears it everywhere."""
    daemon, _ = start_with_rules(rig, ["Ethernet0", "Ethernet4"])
    api = Api(rig, daemon)
    stream = api.sse("?events=alert_raised,alert_cleared")
    stream.until(lambda e: e[1] == "sync")
    rig.ns.ip("link", "set", "dev", "Ethernet0", "down")
    _, kind, raised = stream.until(lambda e: e[1] == "alert_raised")[-1]
    assert raised["port"] == "Ethernet0"
    assert raised["data"]["rule"] == "link_lost" and raised["data"]["condition"] == "oper_down"
    assert raised["data"]["severity"] == "critical" and raised["data"]["subject"] == "Ethernet0"
    active = api.json("/v1/alerts")["active"]
    assert [(a["rule"], a["subject"], a["severity"]) for a in active] == [("link_lost", "Ethernet0", "critical")]
    metrics = api.get("/metrics")[2].decode()
    assert 'portsyncd_alerts_active{rule="link_lost",severity="critical"} 1' in metrics
    daemon.wait_log(r"Alert link_lost raised for Ethernet0 .*PORT=Ethernet0")
    rig.ns.ip("link", "set", "dev", "Ethernet0", "up")
    _, _, cleared = stream.until(lambda e: e[1] == "alert_cleared")[-1]
    assert cleared["port"] == "Ethernet0" and cleared["data"]["rule"] == "link_lost"
    stream.close()
    assert api.json("/v1/alerts")["active"] == []


def test_reload_reshards_workers_and_changes_rules(rig):
    """A reload from 1 worker to 4 moves every port to its new worker with its bars; rules added by the same
    reload take effect; a rule with an unknown condition is refused at its line, keeping the running rules."""
    ports = [f"Ethernet{4 * i}" for i in range(8)]
    daemon, path = start_with_rules(rig, ports, workers=1, rules="")
    api = Api(rig, daemon)
    wait_for(lambda: len(api.json("/v1/ports/Ethernet0/bars")["bars"]) >= 2, timeout=15,
             what="two closed bars before the reload")
    before = api.json("/v1/ports/Ethernet0/bars")["bars"]
    figures = api.json("/v1/channels")
    assert [s["index"] for s in figures["shards"]] == [0] and figures["shards"][0]["ports"] == len(ports)

    changed = rig.write_config(channels_config(workers=4))
    path.write_text(changed.read_text() + RULES)
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"Channels re-sharded from 1 to 4 workers \(8 ports\)")
    figures = api.json("/v1/channels")
    assert [s["index"] for s in figures["shards"]] == [0, 1, 2, 3]
    assert sum(s["ports"] for s in figures["shards"]) == len(ports)
    after = api.json("/v1/ports/Ethernet0/bars")["bars"]
    assert after[:len(before)] == before, "the bars moved with the port"
    rig.ns.ip("link", "set", "dev", "Ethernet4", "down")
    wait_for(lambda: [a["subject"] for a in api.json("/v1/alerts")["active"]] == ["Ethernet4"], timeout=10,
             what="the reloaded rule's alert for Ethernet4")

    path.write_text(changed.read_text() + RULES.replace('"oper_down"', '"link_down"'))
    daemon.signal(signal.SIGHUP)
    line = daemon.wait_log(r"alerts.rules\[0\]: rule \"link_lost\": condition \"link_down\" is not one of")
    assert f"{path}:" in line
    assert [a["rule"] for a in api.json("/v1/alerts")["active"]] == ["link_lost"]
    assert len(api.json("/v1/channels")["shards"]) == 4

"""A hung Redis (SIGSTOP: the socket stays open, nothing is answered) is reported from what Redis does, not from
the socket: a write unanswered for longer than redis.stall_threshold_ms (1 s, the shipped default) makes Redis
"stalled" in /v1/health/ready (503, with the age), STATUS= and the metrics; the watchdog keeps being fed (a hung
Redis is not a hung daemon); once Redis answers, everything clears and STATE_DB equals the kernel."""
import json
import signal
import time

from conftest import wait_for
from test_http import Api


def test_a_stopped_redis_is_stalled_then_recovers_with_nothing_lost(rig):
    daemon = rig.start(env={"WATCHDOG_USEC": "2000000"})
    api = Api(rig, daemon)
    names = ["Ethernet0", "Ethernet4"]
    rig.add_synced_ports(names)
    assert api.get("/v1/health/ready")[0] == 200
    watchdog_before = daemon.notify.count("WATCHDOG=1")
    rig.redis.proc.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        rig.ns.batch([f"link set dev {names[0]} down", f"link set dev {names[1]} mtu 1400"])
        wait_for(lambda: api.get("/v1/health/ready")[0] == 503, timeout=10, what="ready 503 with Redis stopped")
        print(f"Redis SIGSTOP -> ready 503: {(time.monotonic() - stopped) * 1000:.0f} ms")
        health = json.loads(api.get("/v1/health/ready")[2])
        redis_component = health["components"]["redis"]
        assert not redis_component["ok"] and redis_component["reason"].startswith("stalled: a write unanswered for")
        assert health["components"]["workers"]["ok"]
        wait_for(lambda: any(a.startswith("STATUS=") and "redis stalled (a write unanswered for" in a
                             for a in daemon.notify.assignments()), what="STATUS= saying Redis is stalled")
        daemon.wait_log(r"Redis has not answered a write for \d+ ms .* EVENT=redis_stalled")
        metrics = api.get("/metrics")[2].decode()
        assert "portsyncd_redis_stalled 1" in metrics
        assert "portsyncd_redis_stalls_total 1" in metrics
        # A hung Redis is not a hung daemon: the watchdog is still fed.
        wait_for(lambda: daemon.notify.count("WATCHDOG=1") >= watchdog_before + 2, what="WATCHDOG=1 while stalled")
    finally:
        rig.redis.proc.send_signal(signal.SIGCONT)
    daemon.wait_log(r"Redis stall over after \d+ ms EVENT=redis_recovered")
    wait_for(lambda: api.get("/v1/health/ready")[0] == 200, what="ready 200 again")
    rig.wait_state_matches_kernel(names)
    metrics = api.get("/metrics")[2].decode()
    assert "portsyncd_redis_stalled 0" in metrics and "portsyncd_redis_stalls_total 1" in metrics
    assert daemon.alive

#!/usr/bin/env bash
# `make run`: a self-contained demo of portsyncd doing its real job.
#
# A private redis-server (keyspace notifications on, as SONiC runs it), SONiC's database_config.json pointing at
# it, CONFIG_DB seeded with 8 ports, a network namespace, and portsyncd in the foreground in that namespace.
# After portsyncd says READY=1 the script plays orchagent: it consumes APPL_DB PORT_TABLE the way SONiC's
# consumer does, then creates the 8 host interfaces (veth pairs Ethernet0…Ethernet28) and flaps one, so you
# see portsyncd sync each. Ctrl-C stops everything and cleans up.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${PORTSYNCD_BIN:-$top/.build/debug/portsyncd}
work=$(mktemp -d /tmp/portsyncd-demo.XXXXXX)
ns=portsyncd-demo-$$
redis_pid= daemon_pid= listener_pid=

cleanup() {
    trap - EXIT INT TERM
    [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
    [ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
    rm -rf "$work"
    echo "demo: stopped and cleaned up"
}
trap cleanup EXIT INT TERM

say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }

redis-server --port 0 --unixsocket "$work/redis.sock" --unixsocketperm 700 --save '' --appendonly no \
    --notify-keyspace-events AKE --databases 100 --daemonize no --logfile "$work/redis.log" &
redis_pid=$!
rcli() { redis-cli -s "$work/redis.sock" "$@"; }
for _ in $(seq 100); do rcli ping >/dev/null 2>&1 && break; sleep 0.05; done

cat > "$work/database_config.json" <<JSON
{
  "INSTANCES": {"redis": {"hostname": "127.0.0.1", "port": 6379, "unix_socket_path": "$work/redis.sock"}},
  "DATABASES": {
    "APPL_DB": {"id": 0, "separator": ":", "instance": "redis"},
    "ASIC_DB": {"id": 1, "separator": ":", "instance": "redis"},
    "COUNTERS_DB": {"id": 2, "separator": ":", "instance": "redis"},
    "LOGLEVEL_DB": {"id": 3, "separator": ":", "instance": "redis"},
    "CONFIG_DB": {"id": 4, "separator": "|", "instance": "redis"},
    "FLEX_COUNTER_DB": {"id": 5, "separator": ":", "instance": "redis"},
    "STATE_DB": {"id": 6, "separator": "|", "instance": "redis"},
    "APPL_STATE_DB": {"id": 14, "separator": ":", "instance": "redis"}
  },
  "VERSION": "1.0"
}
JSON
cat > "$work/portsyncd.conf" <<TOML
[redis]
database_config = "$work/database_config.json"
TOML

say "seeding CONFIG_DB with 8 ports (Ethernet0 … Ethernet28)"
for i in 0 1 2 3 4 5 6 7; do
    p=$((i * 4))
    rcli -n 4 hset "PORT|Ethernet$p" lanes "$((p * 2)),$((p * 2 + 1))" alias "etp$((i + 1))" speed 100000 \
        mtu 9100 admin_status up index "$i" >/dev/null
done

ip netns add "$ns"
ip -n "$ns" link set lo up  # the HTTP API (127.0.0.1 inside the namespace) is reached through it
python3 "$top/scripts/notify-listen.py" "$work/notify.sock" --until-ready > "$work/notify.log" &
listener_pid=$!
for _ in $(seq 100); do [ -S "$work/notify.sock" ] && break; sleep 0.05; done

say "starting portsyncd in network namespace $ns"
# In its own session, so that Ctrl-C reaches only this script, which then stops portsyncd with SIGTERM.
NOTIFY_SOCKET="$work/notify.sock" setsid ip netns exec "$ns" "$bin" --config "$work/portsyncd.conf" &
daemon_pid=$!
wait "$listener_pid" || { echo "demo: portsyncd did not become ready" >&2; exit 1; }
listener_pid=
say "portsyncd is READY ($(grep -o 'STATUS=[^|]*' "$work/notify.log" | tail -1))"

consume() { rcli -n 0 eval "$(cat "$top/scripts/consume-port-table.lua")" 3 PORT_TABLE_KEY_SET PORT_TABLE: PORT_TABLE_DEL_SET 8192 _ >/dev/null; }
say "playing orchagent: consuming APPL_DB PORT_TABLE"
consume
say "creating host interfaces Ethernet0 … Ethernet28 (veth pairs)"
for i in 0 1 2 3 4 5 6 7; do
    p=$((i * 4))
    ip -n "$ns" link add "Ethernet$p" mtu 9100 type veth peer name "peer$p"
    ip -n "$ns" link set "peer$p" up
    ip -n "$ns" link set "Ethernet$p" up
done
for _ in $(seq 100); do consume; [ "$(rcli -n 0 hget PORT_TABLE:PortInitDone lanes)" = "0" ] && break; sleep 0.05; done
say "APPL_DB PortInitDone lanes=$(rcli -n 0 hget PORT_TABLE:PortInitDone lanes); STATE_DB now has:"
for i in 0 1 2 3 4 5 6 7; do
    p=$((i * 4))
    printf '  PORT_TABLE|Ethernet%-3s %s\n' "$p" "$(rcli -n 6 hgetall "PORT_TABLE|Ethernet$p" | paste -sd' ')"
done
say "taking Ethernet4 down and up again"
ip -n "$ns" link set Ethernet4 down
ip -n "$ns" link set Ethernet4 up
say "portsyncd keeps running; try: ip -n $ns link set Ethernet0 down   (Ctrl-C to stop)"
say "watch it live: ip netns exec $ns curl -sN http://127.0.0.1:9470/v1/sse/events?events=port_state"
wait "$daemon_pid"

#!/usr/bin/env bash
# `make bench`: release builds, several runs each, medians in one table; the table is also written as JSON to
# .bench/latest.json. Numbers are medians because this kind of machine is noisy. The pipeline rows come from the
# Benchmarks/ package (ordo-one/benchmark, release build): per run, the median of its iterations of 1000 messages.
# The Redis writer rows: `portsyncd-bench redis-writer` (the real PortStateWriter, pipelined, into a private
# redis-server on a unix socket) in HSET-equivalents per second, next to `redis-benchmark -P 64 -t hset` against the
# same server as the reference.
# The channel rows: `portsyncd-bench channels` (see Sources/portsyncd-bench/ChannelBench.swift). Latency is from the
# offer to the real ChannelWorker to a subscriber's take from the real EventBus, paced at 10 000 link events/s round
# robin over the ports (every one a state change with counters); CPU times are the thread's own (CLOCK_THREAD_CPUTIME_ID)
# on a simulated clock, every port with a full bar history; RSS per port is the growth over a fresh process.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
runs=${BENCH_RUNS:-5}
swift build -c release --product portsyncd >/dev/null
swift build -c release --product portsyncd-bench >/dev/null
mkdir -p .bench
decoder=$(.build/release/portsyncd-bench Tests/PortSyncCoreTests/Fixtures "$runs")
redis_dir=$(mktemp -d /tmp/portsyncd-bench-redis.XXXXXX)
redis-server --port 0 --unixsocket "$redis_dir/redis.sock" --unixsocketperm 700 --save "" --appendonly no \
    --databases 100 --daemonize yes --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log"
trap 'kill "$(cat "$redis_dir/redis.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$redis_dir"' EXIT
for _ in $(seq 100); do
    redis-cli -s "$redis_dir/redis.sock" ping >/dev/null 2>&1 && break
    sleep 0.05
done
writer=""
for _ in $(seq "$runs"); do
    redis-cli -s "$redis_dir/redis.sock" flushall >/dev/null
    reference=$(redis-benchmark -s "$redis_dir/redis.sock" -P 64 -n 1000000 -q -t hset | tr '\r' '\n' \
        | grep -o 'HSET: [0-9.]* requests per second' | tail -n 1 | awk '{print $2}')
    redis-cli -s "$redis_dir/redis.sock" flushall >/dev/null
    sync_mode=$(.build/release/portsyncd-bench redis-writer "$redis_dir/redis.sock" 1024 500000 1024 sync)
    async_mode=$(.build/release/portsyncd-bench redis-writer "$redis_dir/redis.sock" 1024 500000 1024 async)
    writer+="{\"reference_hset_per_s\": ${reference:-0}, \"sync\": $sync_mode, \"async\": $async_mode}"$'\n'
done
kill "$(cat "$redis_dir/redis.pid")" 2>/dev/null || true
channels=""
for _ in $(seq "$runs"); do
    channels+=$(.build/release/portsyncd-bench channels latency 8192 10000 12)$'\n'
done
channels_large=$(.build/release/portsyncd-bench channels latency 100000 10000 12)
channels_unpaced=""
for _ in $(seq "$runs"); do
    channels_unpaced+=$(.build/release/portsyncd-bench channels latency 8192 0 5)$'\n'
done
channel_events=""
for _ in $(seq "$runs"); do
    channel_events+=$(.build/release/portsyncd-bench channels events 8192 200000)$'\n'
done
channel_ticks=$(.build/release/portsyncd-bench channels ticks 8192 "$runs")
channel_ticks_large=$(.build/release/portsyncd-bench channels ticks 100000 "$runs")
latency=""
for _ in $(seq "$runs"); do
    latency+=$(python3 scripts/bench_latency.py --bin .build/release/portsyncd --toggles "${BENCH_TOGGLES:-400}")$'\n'
done
clients=""
for _ in $(seq "$runs"); do
    clients+=$(python3 scripts/bench_latency.py --bin .build/release/portsyncd --toggles 800 --interval-ms 50 \
        --clients "${BENCH_CLIENTS:-1000}")$'\n'
done
storm=""
for _ in $(seq "$runs"); do
    storm+=$(python3 scripts/bench_latency.py --bin .build/release/portsyncd --toggles 200 --storm)$'\n'
done
startup=""
for _ in $(seq "$runs"); do
    startup+=$(python3 scripts/bench_startup.py --bin .build/release/portsyncd --ports 8192)$'\n'
done
# Optional (BENCH_SCALE=1): 8192 real ports and a surge (scripts/scale.py), one run only: it takes about 2 min.
scale=""
if [ -n "${BENCH_SCALE:-}" ]; then
    scale=$(python3 scripts/scale.py --binary .build/release/portsyncd --ports "${BENCH_SCALE_PORTS:-8192}" --json) \
        || echo "scale.py ended with status $? (its figures say why)" >&2
fi
rm -rf .bench/pipeline
for run in $(seq "$runs"); do
    out=.bench/pipeline/run-$run
    mkdir -p "$out"
    if ! (cd Benchmarks && swift package --allow-writing-to-directory "../$out" benchmark --no-progress --quiet \
        --format jmh --path "../$out") >"$out/log" 2>&1; then
        cat "$out/log" >&2
        exit 1
    fi
done
SCALE_RESULT="$scale" python3 - "$decoder" "$latency" "$startup" "$storm" "$writer" "$clients" "$channels" "$channels_large" \
    "$channels_unpaced" "$channel_events" "$channel_ticks" "$channel_ticks_large" \
    .bench/pipeline/run-*/Current_run.jmh.json <<'PY'
import json, statistics, sys, platform, os
def lines(text): return [json.loads(l) for l in text.splitlines() if l.strip()]
channels, channels_large, channels_unpaced, channel_events, channel_ticks, channel_ticks_large = (
    lines(text) for text in sys.argv[7:13])
del sys.argv[7:13]
decoder = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
latency = [json.loads(l) for l in sys.argv[2].splitlines() if l.strip()]
startup = [json.loads(l) for l in sys.argv[3].splitlines() if l.strip()]
storm = [json.loads(l) for l in sys.argv[4].splitlines() if l.strip()]
writer = [json.loads(l) for l in sys.argv[5].splitlines() if l.strip()]
for run in writer:
    run["sync_hset_per_s"] = run["sync"]["writer_hset_per_s"]
    run["async_hset_per_s"] = run["async"]["writer_hset_per_s"]
    run["ratio"] = run["sync_hset_per_s"] / run["reference_hset_per_s"] if run["reference_hset_per_s"] else 0
clients = [json.loads(l) for l in sys.argv[6].splitlines() if l.strip()]
del sys.argv[4:7]
def stage_medians(path):
    # JMH export of one run: each iteration is 1000 messages, so µs per iteration are ns per message and
    # allocations per iteration are thousandths of allocations per message.
    run = {}
    for entry in json.load(open(path)):
        name = entry["benchmark"].rsplit(".", 1)[-1]
        metrics = entry["secondaryMetrics"]
        run[name] = {"ns_per_message": metrics["Time (wall clock)"]["scorePercentiles"]["50.0"],
                     "allocations_per_message": metrics["Malloc (total)"]["scorePercentiles"]["50.0"] / 1000}
    pipeline = run["pipeline_to_hand-off,_100_000_ports"]
    return {"prefilter_ns": run["prefilter"]["ns_per_message"], "extract_ns": run["extract"]["ns_per_message"],
            "validate_ns": run["validate"]["ns_per_message"],
            "handoff_ns": run["hand-off,_100_000_ports"]["ns_per_message"],
            "pipeline_messages_per_s": 1e9 / pipeline["ns_per_message"],
            "pipeline_allocations": pipeline["allocations_per_message"],
            "handoff_allocations": run["hand-off,_100_000_ports"]["allocations_per_message"]}
pipeline = [stage_medians(path) for path in sys.argv[4:]]
def med(rows, key): return statistics.median(r[key] for r in rows)
table = [
    ("decoder, ns/message", med(decoder, "decode_ns_per_message")),
    ("decoder + SONiC filter, ns/message", med(decoder, "decode_filter_ns_per_message")),
    ("kernel → STATE_DB (daemon latency) p50, µs", med(latency, "daemon_latency_p50_us")),
    ("kernel → STATE_DB (daemon latency) p99, µs", med(latency, "daemon_latency_p99_us")),
    ("ip command → STATE_DB (end to end) p50, µs", med(latency, "end_to_end_p50_us")),
    ("ip command → STATE_DB (end to end) p99, µs", med(latency, "end_to_end_p99_us")),
    ("with %d stream clients: bus → socket p50, µs" % clients[0]["readers"], med(clients, "bus_to_socket_p50_us")),
    ("with %d stream clients: bus → socket p99, µs" % clients[0]["readers"], med(clients, "bus_to_socket_p99_us")),
    ("  floor: a C loop writing to as many sockets, p99, µs", med(clients, "floor_write_to_socket_p99_us")),
    ("  bus → socket p99 / floor p99", med(clients, "bus_to_socket_p99_over_floor")),
    ("  bus → read by the one-thread client, p99, µs", med(clients, "bus_to_read_p99_us")),
    ("  daemon RSS with the clients connected, MiB", med(clients, "daemon_rss_mib")),
    ("  daemon peak RSS, MiB", med(clients, "daemon_peak_rss_mib")),
    ("with them: kernel → STATE_DB p99, µs", med(clients, "daemon_latency_p99_us")),
    ("kernel → STATE_DB p99 with / without clients", med(clients, "daemon_latency_p99_us")
     / med(latency, "daemon_latency_p99_us")),
    ("clients that never read, cut as slow (of 10)", med(clients, "closed_slow")),
    ("with them: readers still connected at the end", med(clients, "readers_connected")),
    ("with them: port_state events per reader, min", med(clients, "events_per_reader_min")),
    ("with them: the stream clients' own CPU time, s", med(clients, "clients_cpu_s")),
    ("during a storm: storm link changes/s", med(storm, "storm_changes_per_s")),
    ("during a storm: kernel → STATE_DB p50, µs", med(storm, "daemon_latency_p50_us")),
    ("during a storm: kernel → STATE_DB p99, µs", med(storm, "daemon_latency_p99_us")),
    ("8192 ports in CONFIG_DB → READY=1, s", med(startup, "ready_s")),
    ("8192 ports: CPU time to READY=1, s", med(startup, "cpu_s")),
    ("8192 ports: RSS at READY=1, MiB", med(startup, "rss_mib")),
    ("prefilter, ns/message", med(pipeline, "prefilter_ns")),
    ("extract, ns/message", med(pipeline, "extract_ns")),
    ("validate, ns/message", med(pipeline, "validate_ns")),
    ("hand-off (offer + take), ns/message", med(pipeline, "handoff_ns")),
    ("pipeline to hand-off, one core, messages/s", med(pipeline, "pipeline_messages_per_s")),
    ("pipeline to hand-off: allocations/message", med(pipeline, "pipeline_allocations")),
    ("  of which in the hand-off: allocations/message", med(pipeline, "handoff_allocations")),
    ("Redis writer (sync), HSET-equivalents/s", med(writer, "sync_hset_per_s")),
    ("Redis writer (async), HSET-equivalents/s", med(writer, "async_hset_per_s")),
    ("redis-benchmark -P 64 HSET (reference), /s", med(writer, "reference_hset_per_s")),
    ("Redis writer (sync) / reference", med(writer, "ratio")),
    ("channels, 10 k events/s, 8192 ports: p50, µs", med(channels, "p50_us")),
    ("channels, 10 k events/s, 8192 ports: p99, µs", med(channels, "p99_us")),
    ("channels, 10 k events/s, 8192 ports: p99.9, µs", med(channels, "p999_us")),
    ("channels, 10 k events/s, 8192 ports: max, µs", med(channels, "max_us")),
    ("channels, 10 k events/s: process CPU/event, µs", med(channels, "cpu_us_per_event")),
    ("channels, 10 k events/s, 100 000 ports: p99, µs", med(channels_large, "p99_us")),
    ("channels, 10 k events/s, 100 000 ports: max, µs", med(channels_large, "max_us")),
    ("channels unpaced, 8192 ports: events/s", med(channels_unpaced, "events_per_s")),
    ("channels: PortChannels.link, ns/event", med(channel_events, "link_ns_per_event")),
    ("channels: port_state JSON, ns/event", med(channel_events, "json_ns_per_port_state")),
    ("bars of 8192 ports closed: tick CPU, ms", med(channel_ticks, "close_tick_cpu_ms")),
    ("bars of 100 000 ports closed: tick CPU, ms", med(channel_ticks_large, "close_tick_cpu_ms")),
    ("tick closing nothing, 8192 ports: CPU, µs", 1000 * med(channel_ticks, "idle_tick_cpu_ms")),
    ("tick closing nothing, 100 000 ports: CPU, µs", 1000 * med(channel_ticks_large, "idle_tick_cpu_ms")),
    ("statistics of 8192 ports: CPU per dump, ms", med(channel_ticks, "stats_sample_cpu_ms")),
    ("statistics of 100 000 ports: CPU per dump, ms", med(channel_ticks_large, "stats_sample_cpu_ms")),
    ("100 000 ports, 60 bars each: RSS/port, KiB",
     med(channel_ticks_large, "rss_bytes_per_port_full_history") / 1024),
]
scale = json.loads(os.environ["SCALE_RESULT"]) if os.environ.get("SCALE_RESULT", "").strip() else None
if scale and not scale.get("error"):
    first_down = next(p for p in scale["surge"] if p["phase"] == "down #1")
    first_up = next(p for p in scale["surge"] if p["phase"] == "up #1")
    n = scale["ports"]
    table += [
        ("%d real ports (1 run): READY=1, s" % n, scale["ready_s"]),
        ("  RSS with every port synced, MiB", scale["synced"]["rss_mib"]),
        ("  idle CPU, % of one core", scale["idle_cpu_percent"]),
        ("  every port down: until STATE_DB final, s", first_down["state_db_s"]),
        ("  every port up: until STATE_DB final, s", first_up["state_db_s"]),
        ("  STATE_DB rows lost after the surge", scale["final_state_db_lost"]),
        ("  ports the stream view has wrong after it", scale["final_view_stale"]),
        ("  bus intake drops (high) in the surge", scale["metrics"]["bus_intake_dropped"]["high"]),
        ("  RSS after the surge, MiB", scale["after_surge"]["rss_mib"]),
    ]
print(f"{'measure (median of %d runs)' % len(latency):<48} {'value':>10}")
for name, value in table:
    print(f"{name:<48} {value:>10.3f}" if value < 10 else f"{name:<48} {value:>10.1f}")
if scale and scale.get("error"):
    print(f"scale.py: {scale['error']}")
result = {"runs": len(latency), "cpus": os.cpu_count(), "kernel": platform.release(),
          "results": {name: value for name, value in table}, "raw": {"decoder": decoder, "latency": latency, "startup": startup, "storm": storm, "pipeline": pipeline, "redis_writer": writer, "clients": clients,
                  "channels": {"paced": channels, "paced_100k": channels_large, "unpaced": channels_unpaced,
                               "events": channel_events, "ticks": channel_ticks, "ticks_100k": channel_ticks_large}, "scale": scale}}
with open(".bench/latest.json", "w") as f:
    json.dump(result, f, indent=2)
print("written to .bench/latest.json")
PY

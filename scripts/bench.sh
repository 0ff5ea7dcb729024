#!/usr/bin/env bash
# `make bench`: release builds, several runs each, medians in one table; the table is also written as JSON to
# .bench/latest.json. Numbers are medians because this kind of machine is noisy.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
runs=${BENCH_RUNS:-5}
swift build -c release --product portsyncd >/dev/null
swift build -c release --product portsyncd-bench >/dev/null
mkdir -p .bench
decoder=$(.build/release/portsyncd-bench Tests/PortSyncCoreTests/Fixtures "$runs")
latency=""
for _ in $(seq "$runs"); do
    latency+=$(python3 scripts/bench_latency.py --bin .build/release/portsyncd --toggles "${BENCH_TOGGLES:-400}")$'\n'
done
startup=""
for _ in $(seq "$runs"); do
    startup+=$(python3 scripts/bench_startup.py --bin .build/release/portsyncd --ports 8192)$'\n'
done
python3 - "$decoder" "$latency" "$startup" <<'PY'
import json, statistics, sys, platform, os
decoder = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
latency = [json.loads(l) for l in sys.argv[2].splitlines() if l.strip()]
startup = [json.loads(l) for l in sys.argv[3].splitlines() if l.strip()]
def med(rows, key): return statistics.median(r[key] for r in rows)
table = [
    ("decoder, ns/message", med(decoder, "decode_ns_per_message")),
    ("decoder + SONiC filter, ns/message", med(decoder, "decode_filter_ns_per_message")),
    ("kernel → STATE_DB (daemon latency) p50, µs", med(latency, "daemon_latency_p50_us")),
    ("kernel → STATE_DB (daemon latency) p99, µs", med(latency, "daemon_latency_p99_us")),
    ("ip command → STATE_DB (end to end) p50, µs", med(latency, "end_to_end_p50_us")),
    ("ip command → STATE_DB (end to end) p99, µs", med(latency, "end_to_end_p99_us")),
    ("8192 ports in CONFIG_DB → READY=1, s", med(startup, "ready_s")),
    ("8192 ports: CPU time to READY=1, s", med(startup, "cpu_s")),
    ("8192 ports: RSS at READY=1, MiB", med(startup, "rss_mib")),
]
print(f"{'measure (median of %d runs)' % len(latency):<48} {'value':>10}")
for name, value in table:
    print(f"{name:<48} {value:>10.3f}" if value < 10 else f"{name:<48} {value:>10.1f}")
result = {"runs": len(latency), "cpus": os.cpu_count(), "kernel": platform.release(),
          "results": {name: value for name, value in table}, "raw": {"decoder": decoder, "latency": latency, "startup": startup}}
with open(".bench/latest.json", "w") as f:
    json.dump(result, f, indent=2)
print("written to .bench/latest.json")
PY

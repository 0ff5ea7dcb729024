#!/usr/bin/env bash
# `make fuzz` (and the end of `make test`): coverage-guided fuzzing of what portsyncd parses from outside, with the
# harnesses of the Fuzz/ package (libFuzzer + AddressSanitizer, debug build):
#   FuzzConfig          the configuration file's bytes → ConfigDecoder.decode (a Config or a positioned ConfigError)
#   FuzzNetlink         a netlink datagram → NetlinkDecoder and the pipeline's stages, with their invariants
#   FuzzDatabaseConfig  SONiC's database_config.json → SonicDatabaseConfig.parse
# Usage: scripts/fuzz.sh [seconds]   (default 60: half to the config, a third to netlink, the rest to the
# database config; one after another). Each runs on a copy of its seed corpus (Fuzz/Corpus/) in a temporary
# directory: nothing is written into the repository. Prints one row per fuzzer and exits non-zero if any of them
# found a crash, a leak, a timeout or ran out of memory; the reproducers are then kept in the directory it names.
# FUZZ_TARGETS="FuzzNetlink ..." runs only those; FUZZ_JOBS sets the build's parallelism.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
total=${1:-60}
if ! [[ $total =~ ^[0-9]+$ ]] || ((total < 3)); then
    echo "usage: scripts/fuzz.sh [seconds ≥ 3]" >&2
    exit 2
fi
SWIFT=${SWIFT:-swift}
targets=${FUZZ_TARGETS:-FuzzConfig FuzzNetlink FuzzDatabaseConfig}

build=(build -c debug --package-path Fuzz --scratch-path Fuzz/.build -Xswiftc -sanitize=fuzzer,address)
[[ -n ${FUZZ_JOBS:-} ]] && build+=(--jobs "$FUZZ_JOBS")
started=$SECONDS
echo "fuzz: building the harnesses (swift ${build[*]})"
if ! build_log=$("$SWIFT" "${build[@]}" 2>&1); then
    # A build directory left from before a change of the main package's dependencies can fail to build: once more
    # from scratch.
    echo "fuzz: the build failed; once more from a clean Fuzz/.build"
    rm -rf Fuzz/.build
    if ! build_log=$("$SWIFT" "${build[@]}" 2>&1); then
        grep -v 'ld.gold: warning: Cannot export local symbol' <<<"$build_log" | tail -n 40 >&2
        exit 1
    fi
fi
bin=$("$SWIFT" "${build[@]}" --show-bin-path)
echo "fuzz: built in $((SECONDS - started)) s"

work=$(mktemp -d /tmp/portsyncd-fuzz.XXXXXX)
failed=0
failures=0
trap '((failed)) || rm -rf "$work"' EXIT

# Per fuzzer: its seconds, seed corpus, -max_len and other flags.
plan() {
    case $1 in
    FuzzConfig) echo "$((total / 2)) config 4096 -dict=$top/Fuzz/Corpus/toml.dict" ;;
    FuzzNetlink) echo "$((total / 3)) netlink 8192" ;;
    FuzzDatabaseConfig) echo "$((total - total / 2 - total / 3)) dbconfig 4096 -dict=$top/Fuzz/Corpus/json.dict" ;;
    esac
}
for target in $targets; do
    [[ -n $(plan "$target") ]] || { echo "fuzz: unknown fuzzer $target" >&2 && exit 2; }
done

rows=()
for target in $targets; do
    read -r seconds corpus max_len extra <<<"$(plan "$target")"
    dir=$work/$target
    mkdir -p "$dir/corpus" "$dir/artifacts"
    cp Fuzz/Corpus/"$corpus"/* "$dir/corpus/"
    seeds=$(find "$dir/corpus" -type f | wc -l)
    echo "fuzz: $target for $seconds s on $seeds seeds"
    status=0
    # The Swift runtime's backtracer would catch the signals first: libFuzzer reports and saves the input itself.
    SWIFT_BACKTRACE=enable=no "$bin/$target" "$dir/corpus" -max_total_time="$seconds" -max_len="$max_len" \
        -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" $extra \
        >"$dir/log" 2>&1 || status=$?
    # Absent when the fuzzer stopped early (a crash among the seeds): then they stay empty.
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -n 1)
    initial=$(sed -n 's/^#[0-9]*[[:space:]]*INITED cov: \([0-9]*\).*/\1/p' "$dir/log" | head -n 1)
    final=$(sed -n 's/^#[0-9]*[[:space:]].* cov: \([0-9]*\).*/\1/p' "$dir/log" | tail -n 1)
    findings=$(find "$dir/artifacts" -type f | wc -l)
    if ((status != 0)) || ((findings > 0)); then
        failed=1
        failures=$((failures + 1))
        ((findings > 0)) || findings="exit $status"
        echo "fuzz: $target FAILED (exit $status); its log and reproducers are in $dir:" >&2
        grep -E 'ERROR: |invariant broken|Fatal error|SUMMARY|Test unit written' "$dir/log" | head -n 20 >&2 || true
        for artifact in "$dir"/artifacts/*; do
            [[ -e $artifact ]] && echo "  reproduce: $bin/$target $artifact" >&2
        done
    fi
    rows+=("$(printf '%-20s %10s %8s %11s %6s %s' "$target" "${runs:-?}" "${speed:-?}" \
        "${initial:-?}->${final:-?}" "+$((${final:-0} - ${initial:-0}))" "$findings")")
done

printf '\n%-20s %10s %8s %11s %6s %s\n' fuzzer runs execs/s coverage new crashes
printf '%s\n' "${rows[@]}"
# The closing line: fuzzers that ran their time without a finding, and those that did not.
echo "fuzz: $((${#rows[@]} - failures)) passed, $failures failed"
if ((failed)); then
    echo "fuzz: FAILED; logs and reproducers in $work" >&2
    exit 1
fi

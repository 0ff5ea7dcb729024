#!/usr/bin/env bash
# `make test-systemd`: the Debian package under a real systemd, booted in a throw-away container.
#
# A tiny root file system shares the host's /usr through an overlay (the host's /usr is never written), gets a
# copy of /etc and an overlay of the host's dpkg database (so dpkg checks the package's Depends against what
# is really installed), and is booted with `systemd-nspawn --boot --private-network`. Inside it the .deb is
# installed with dpkg, a redis-server unit plays SONiC's database container, and portsyncd.service is driven
# with systemctl. Each check prints PASS or FAIL; any FAIL makes the script exit 1. Everything it creates
# (the root, the container's cgroups, nspawn's state under /run/systemd/nspawn) is removed on exit.
#
# Usage: scripts/test-systemd.sh [PACKAGE.deb]    (default: the one `make deb` builds)
#
# The small predicates defined inside checks are called through wait_until, which shellcheck cannot see.
# shellcheck disable=SC2317
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
started=$EPOCHREALTIME
version=$(sed -n 's/.*static let string = "\(.*\)".*/\1/p' Sources/PortSyncRuntime/Version.swift)
deb=$(realpath "${1:-dist/portsyncd_${version}_$(dpkg --print-architecture).deb}")
[ -f "$deb" ] || { echo "test-systemd: $deb not found; run make deb first" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "test-systemd: must run as root" >&2; exit 1; }

work=$(mktemp -d /tmp/portsyncd-systemd.XXXXXX)
root=$work/root
machine=portsyncd-test-$$
cgroups=()          # cgroup directories made for the container, removed on exit
nspawn_pid='' leader=''
failures=0

# ---------------------------------------------------------------------------------------------------------
# Clean-up: halt the container (SIGTERM to nspawn asks its systemd to power off), then remove what is left.

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP PIPE
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" 2>/dev/null || true
        wait_until 20 "" sh -c "! kill -0 $nspawn_pid 2>/dev/null" || {
            echo "test-systemd: the container did not halt within 20 s; killing it" >&2
            [ -n "$leader" ] && kill -KILL "$leader" 2>/dev/null
            kill -KILL "$nspawn_pid" 2>/dev/null || true
        }
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    local dir
    for dir in "${cgroups[@]}"; do
        if [ -d "$dir" ]; then find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
    done
    # nspawn leaves these behind when /run is not a tmpfs; the parents go only if nothing else is in them.
    rm -rf "/run/systemd/nspawn/propagate/$machine" "/run/systemd/nspawn/unix-export/$machine"
    for dir in propagate unix-export locks incoming ''; do rmdir "/run/systemd/nspawn/$dir" 2>/dev/null || true; done
    case $work in /tmp/portsyncd-systemd.*) rm -rf "$work" ;; esac
    printf 'test-systemd: %s in %.1f s' "$([ $status -eq 0 ] && echo passed || echo FAILED)" "$(elapsed_since "$started")"
    # Set by `make test-systemd`: the whole target, with its dependencies and `make deb`.
    [ -n "${TEST_SYSTEMD_STARTED:-}" ] && printf '; make test-systemd: %.1f s' "$(elapsed_since "$TEST_SYSTEMD_STARTED")"
    echo
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

# ---------------------------------------------------------------------------------------------------------
# Helpers

elapsed_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

# wait_until SECONDS WHAT COMMAND...: polls COMMAND until it succeeds; on timeout says what it awaited.
wait_until() {
    local deadline what=$2
    deadline=$(awk -v now="$EPOCHREALTIME" -v t="$1" 'BEGIN { printf "%.3f", now + t }')
    shift 2
    until "$@" >/dev/null 2>&1; do
        if awk -v now="$EPOCHREALTIME" -v d="$deadline" 'BEGIN { exit !(now >= d) }'; then
            [ -n "$what" ] && echo "    timed out waiting for $what" >&2
            return 1
        fi
        sleep 0.05
    done
}

# ct COMMAND...: runs COMMAND inside the container (all its namespaces, a clean environment).
ct() {
    nsenter --target "$leader" --all \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER=cat "$@"
}
rcli() { local db=$1; shift; ct redis-cli -s /run/redis/redis.sock -n "$db" "$@"; }
prop() { ct systemctl show --value -p "$1" portsyncd.service; }
# A point in the journal, and the entries since then. A time, not a cursor: journalctl 252 with
# --after-cursor and a match (such as -u) skips the first matching entry.
journal_mark() { echo "@$EPOCHREALTIME"; }
journal_after() { local since=$1; shift; ct journalctl --no-pager -q --since="$since" "$@"; }

say() { echo "    $*"; }
fail() { echo "    $*" >&2; return 1; }
# expect WHAT ACTUAL WANTED
expect() { [ "$2" = "$3" ] || fail "$1 is '$2', expected '$3'"; }

# check NAME FUNCTION: runs one named check and prints PASS or FAIL with its time.
check() {
    local name=$1 t0=$EPOCHREALTIME
    echo "--- $name"
    if "$2"; then
        printf 'PASS %s (%.2f s)\n' "$name" "$(elapsed_since "$t0")"
    else
        printf 'FAIL %s (%.2f s)\n' "$name" "$(elapsed_since "$t0")"
        failures=$((failures + 1))
    fi
}

# ---------------------------------------------------------------------------------------------------------
# The container

make_root() {
    mkdir -p "$root"/{usr/lib,dev,proc,sys,run,tmp,var/tmp,var/log,var/lib/dpkg,root,mnt/package}
    ln -s usr/bin "$root/bin"; ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"; ln -s usr/sbin "$root/sbin"
    ln -s ../run "$root/var/run"
    # nspawn looks for os-release before it mounts the /usr overlay over this copy.
    cp /usr/lib/os-release "$root/usr/lib/os-release"
    cp -a /etc/. "$root/etc/"
    # No host service, mount or leftover portsyncd in the container: only what the package and the test add.
    rm -rf "$root/etc/systemd/system" "$root/etc/sonic" "$root/etc/systemd/network"
    mkdir -p "$root/etc/systemd/system"
    : > "$root/etc/fstab"
    systemd-id128 new > "$root/etc/machine-id"
    echo "$machine" > "$root/etc/hostname"
    mkdir -p "$work/usr-upper" "$work/dpkg-upper"
}

# With no systemd on the host (this VM, CI), nspawn cannot register the container: it is started inside
# cgroups of its own (--keep-unit), which the clean-up removes. On a host booted with systemd, nspawn
# registers it with systemd-machined as usual.
boot() {
    local register=(--register=no --keep-unit) hierarchy t0=$EPOCHREALTIME
    if [ -d /run/systemd/system ]; then
        register=()
    elif [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
        cgroups=("/sys/fs/cgroup/$machine")
    else
        for hierarchy in systemd unified; do
            [ -d "/sys/fs/cgroup/$hierarchy" ] && cgroups+=("/sys/fs/cgroup/$hierarchy/$machine")
        done
    fi
    (
        for dir in "${cgroups[@]}"; do mkdir "$dir" && echo "$BASHPID" > "$dir/cgroup.procs"; done
        exec systemd-nspawn --quiet --directory="$root" --machine="$machine" "${register[@]}" \
            --overlay=/usr:"$work/usr-upper":/usr --overlay=/var/lib/dpkg:"$work/dpkg-upper":/var/lib/dpkg \
            --bind-ro="$(dirname "$deb")":/mnt/package --private-network --console=pipe --boot
    ) < /dev/null > "$work/console.log" 2>&1 &
    nspawn_pid=$!
    # The container's PID 1 is nspawn's child whose PID is 1 in its own namespace.
    find_leader() {
        local child
        kill -0 "$nspawn_pid" || return 2
        for child in $(pgrep -P "$nspawn_pid"); do
            if grep -qE '^NSpid:.*[[:space:]]1$' "/proc/$child/status"; then leader=$child; return 0; fi
        done
        return 1
    }
    wait_until 20 "the container's PID 1" find_leader || { cat "$work/console.log" >&2; return 1; }
    booted() { case $(ct systemctl is-system-running) in running | degraded) return 0 ;; *) return 1 ;; esac; }
    wait_until 60 "the container to finish booting" booted || { cat "$work/console.log" >&2; return 1; }
    say "systemd $(ct systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p') booted in the container" \
        "in $(elapsed_since "$t0") s ($(ct systemctl is-system-running))"
}

# ---------------------------------------------------------------------------------------------------------
# The checks

check_install() {
    local name
    name=$(basename "$deb")
    ct dpkg -i "/mnt/package/$name" > "$work/dpkg.log" 2>&1 || {
        cat "$work/dpkg.log" >&2
        fail "dpkg -i failed"
        return 1
    }
    # shellcheck disable=SC2016  # ${Status} is dpkg-query's field, not the shell's
    expect "dpkg status" "$(ct dpkg-query -W -f='${Status}' portsyncd)" "install ok installed" || return 1
    expect "unit file" "$(prop FragmentPath)" /lib/systemd/system/portsyncd.service || return 1
    # Installing enables and starts nothing.
    expect "is-enabled" "$(ct systemctl is-enabled portsyncd.service || true)" disabled || return 1
    expect "is-active" "$(ct systemctl is-active portsyncd.service || true)" inactive || return 1
    # No Swift toolchain in the container: the binary runs on the Depends alone.
    ct test ! -e /opt/swift || fail "/opt/swift is visible in the container" || return 1
    expect "portsyncd --version" "$(ct portsyncd --version)" "$version" || return 1
    say "installed $name with dpkg; unit disabled and inactive; portsyncd $version runs without a toolchain"
}

# SONiC's database container: a redis-server on /var/run/redis/redis.sock, the database map, CONFIG_DB ports.
start_redis() {
    ct sh -c 'cat > /etc/systemd/system/sonic-redis.service' <<'UNIT'
[Unit]
Description=Redis as in SONiC's database container (test only)
[Service]
Type=notify
RuntimeDirectory=redis redis/sonic-db
RuntimeDirectoryPreserve=yes
ExecStart=/usr/bin/redis-server --supervised systemd --port 0 --unixsocket /run/redis/redis.sock \
    --unixsocketperm 777 --save "" --appendonly no --notify-keyspace-events AKE --databases 100 \
    --loglevel warning --logfile ""
UNIT
    ct systemctl daemon-reload
    ct systemctl start sonic-redis.service
    ct sh -c 'cat > /var/run/redis/sonic-db/database_config.json' <<'JSON'
{
  "INSTANCES": {"redis": {"hostname": "127.0.0.1", "port": 6379, "unix_socket_path": "/var/run/redis/redis.sock"}},
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
    local i p
    for i in 0 1 2 3 4 5 6 7; do
        p=$((i * 4))
        rcli 4 hset "PORT|Ethernet$p" lanes "$((p * 2)),$((p * 2 + 1))" alias "etp$((i + 1))" speed 100000 \
            mtu 9100 admin_status up index "$i" >/dev/null
    done
    say "redis-server up as sonic-redis.service; CONFIG_DB has $(rcli 4 keys 'PORT|*' | wc -l) ports"
}

# Test-only settings, all outside the package's files: a drop-in lowering WatchdogSec to 2 s, so check d does not
# wait 10 s. The configuration file is the package's, with its defaults: the restart of check d must rejoin the
# running switch with them (nothing brought down), not only with adopt_existing_interfaces.
configure() {
    ct mkdir -p /etc/systemd/system/portsyncd.service.d
    printf '[Service]\nWatchdogSec=2s\n' | ct sh -c 'cat > /etc/systemd/system/portsyncd.service.d/50-test.conf'
    ct grep -q '^adopt_existing_interfaces = false$' /etc/sonic/portsyncd.conf
    ct systemctl daemon-reload
}

check_a_start_returns_when_ready() {
    local t0=$EPOCHREALTIME
    ct systemctl start portsyncd.service || fail "systemctl start failed" || return 1
    local took state sub status
    took=$(elapsed_since "$t0")
    # Read at once: Type=notify means start returned only after READY=1.
    state=$(prop ActiveState) sub=$(prop SubState) status=$(prop StatusText)
    say "systemctl start returned in $took s: $state/$sub, StatusText=$status"
    expect ActiveState "$state" active || return 1
    expect SubState "$sub" running || return 1
    [[ $status == ready* ]] || fail "StatusText does not begin with 'ready'" || return 1
    expect WatchdogUSec "$(prop WatchdogUSec)" 2s || return 1
    # What systemd had to say about the unit's settings in this container (informational).
    ct journalctl --no-pager -q _PID=1 -o cat | grep -i 'portsyncd' | grep -viE 'Starting|Started' \
        | sed 's/^/      systemd: /' || true
}

state_field() { rcli 6 hget "PORT_TABLE|$1" "$2"; }
state_is() { [ "$(state_field "$1" "$2")" = "$3" ]; }

check_b_port_sync_and_journal() {
    # Play orchagent: consume APPL_DB PORT_TABLE, as SONiC does before it creates the host interfaces.
    rcli 0 eval "$(cat scripts/consume-port-table.lua)" 3 PORT_TABLE_KEY_SET PORT_TABLE: PORT_TABLE_DEL_SET 8192 _ \
        >/dev/null || return 1
    expect "APPL_DB PORT_TABLE:Ethernet0 lanes" "$(rcli 0 hget PORT_TABLE:Ethernet0 lanes)" 0,1 || return 1
    ct ip link add Ethernet0 mtu 9100 type veth peer name peer0 || return 1
    ct ip link set peer0 up || return 1
    ct ip link set Ethernet0 up || return 1
    ct ip link add Ethernet4 mtu 9100 type veth peer name peer4 || return 1
    ct ip link set peer4 up || return 1
    ct ip link set Ethernet4 up || return 1
    wait_until 10 "STATE_DB PORT_TABLE|Ethernet0 state ok" state_is Ethernet0 state ok || return 1
    wait_until 10 "STATE_DB admin_status up" state_is Ethernet0 admin_status up || return 1
    wait_until 10 "STATE_DB netdev_oper_status up" state_is Ethernet0 netdev_oper_status up || return 1
    say "STATE_DB PORT_TABLE|Ethernet0: $(rcli 6 hgetall 'PORT_TABLE|Ethernet0' | paste -sd' ')"
    # The records are structured: the fields, not the text, find them.
    has_fields() {
        local record
        record=$(ct journalctl --no-pager _SYSTEMD_UNIT=portsyncd.service PORT=Ethernet0 EVENT=newlink -o export)
        grep -q '^IFINDEX=[0-9]' <<<"$record" && grep -q '^TRACE_ID=' <<<"$record" \
            && grep -q '^SYSLOG_IDENTIFIER=portsyncd$' <<<"$record"
    }
    wait_until 10 "journal records with PORT=Ethernet0 EVENT=newlink IFINDEX= TRACE_ID=" has_fields || return 1
    local lines
    lines=$(ct journalctl --no-pager -q -u portsyncd PORT=Ethernet0 -o cat | wc -l)
    [ "$lines" -gt 0 ] || fail "journalctl -u portsyncd PORT=Ethernet0 finds nothing" || return 1
    say "journalctl -u portsyncd PORT=Ethernet0: $lines lines, e.g.:"
    ct journalctl --no-pager -u portsyncd PORT=Ethernet0 EVENT=newlink -n 1 -o verbose \
        | grep -E '^    (MESSAGE|PORT|IFINDEX|EVENT|TRACE_ID|PRIORITY)=' | sed 's/^ */      /'
}

check_c_reload() {
    local pid mark
    pid=$(prop MainPID)
    mark=$(journal_mark)
    ct sed -i 's/^level = "notice"$/level = "info"/' /etc/sonic/portsyncd.conf || return 1
    ct systemctl reload portsyncd.service || fail "systemctl reload of a valid file failed" || return 1
    # The daemon also reloads by itself when the file is saved (inotify), and says so first ("The configuration
    # file changed"); one "Configuration reloaded" more than those is the one systemctl reload's SIGHUP caused.
    by_signal() {
        local lines
        lines=$(journal_after "$mark" -u portsyncd -o cat)
        grep -q '^Configuration reloaded: changed log.level' <<<"$lines" \
            && [ "$(grep -c '^Configuration reloaded' <<<"$lines")" -gt "$(grep -c '^The configuration file changed' <<<"$lines")" ]
    }
    wait_until 10 "'Configuration reloaded: changed log.level', and a reload by SIGHUP, in the journal" by_signal \
        || return 1
    say "valid file: systemctl reload succeeded; the journal says:"
    journal_after "$mark" -u portsyncd -o cat | grep -E '^(Configuration reloaded|The configuration file changed)' \
        | sed 's/^/      /'

    # A syntax error: the unit's ExecReload= (--check-config) fails the reload, the daemon keeps its config.
    # The file is repaired afterwards whatever happened, so that the next checks start from a valid one.
    local broken=0
    reload_broken_file "$pid" || broken=1
    ct sed -i 's/^level = "info$/level = "info"/' /etc/sonic/portsyncd.conf || return 1
    ct systemctl reload portsyncd.service || fail "systemctl reload of the repaired file failed" || return 1
    expect MainPID "$(prop MainPID)" "$pid" || return 1
    return $broken
}

reload_broken_file() {
    local pid=$1 mark rc=0
    mark=$(journal_mark)
    ct sed -i 's/^level = "info"$/level = "info/' /etc/sonic/portsyncd.conf || return 1
    ct systemctl reload portsyncd.service 2>/dev/null || rc=$?
    [ "$rc" -ne 0 ] || fail "systemctl reload of a broken file succeeded" || return 1
    say "broken file: systemctl reload exited $rc"
    expect ActiveState "$(prop ActiveState)" active || return 1
    expect MainPID "$(prop MainPID)" "$pid" || return 1
    refused() { journal_after "$mark" -u portsyncd -o cat | grep -q "keeping the old configuration"; }
    wait_until 15 "the daemon to log that it keeps the old configuration" refused || {
        journal_after "$mark" -u portsyncd -o short-monotonic | tail -20 >&2
        return 1
    }
    journal_after "$mark" -u portsyncd -o verbose | grep -E '^    (MESSAGE|EVENT|CONFIG_[A-Z]*)=' | sed 's/^ */      /'
    say "StatusText: $(prop StatusText)"
}

kernel_flags() { ct cat /sys/class/net/Ethernet0/flags; }

check_d_watchdog_restart() {
    local pid restarts t0 mark new flags
    pid=$(prop MainPID) restarts=$(prop NRestarts) mark=$(journal_mark)
    expect "STATE_DB admin_status before" "$(state_field Ethernet0 admin_status)" up || return 1
    t0=$EPOCHREALTIME
    ct kill -STOP "$pid" || return 1
    say "SIGSTOP to MainPID $pid (NRestarts=$restarts); Ethernet0 set down while it is stopped"
    ct ip link set Ethernet0 down || return 1
    restarted() {
        [ "$(prop NRestarts)" = $((restarts + 1)) ] && new=$(prop MainPID) && [ "$new" != 0 ] && [ "$new" != "$pid" ] \
            && [ "$(prop SubState)" = running ] && [[ $(prop StatusText) == ready* ]]
    }
    wait_until 30 "a restart by the watchdog and READY of the new process" restarted || {
        journal_after "$mark" -u portsyncd -o short-monotonic | tail -20 >&2
        return 1
    }
    new=$(prop MainPID)
    say "new MainPID $new ready $(elapsed_since "$t0") s after the SIGSTOP; NRestarts=$(prop NRestarts)"
    journal_after "$mark" -u portsyncd -o cat | grep -E 'Watchdog timeout|Main process exited|Scheduled restart' \
        | sed 's/^/      /'
    journal_after "$mark" -u portsyncd -o cat | grep -q 'Watchdog timeout' || fail "no 'Watchdog timeout' in the journal" \
        || return 1
    # The kernel has Ethernet0 down (IFF_UP 0x1 and IFF_RUNNING 0x40 clear); Redis must say the same.
    flags=$(kernel_flags)
    (((flags & 0x41) == 0)) || fail "kernel flags of Ethernet0 are $flags, expected down" || return 1
    wait_until 10 "STATE_DB admin_status down" state_is Ethernet0 admin_status down || return 1
    wait_until 10 "STATE_DB netdev_oper_status down" state_is Ethernet0 netdev_oper_status down || return 1
    expect "STATE_DB state" "$(state_field Ethernet0 state)" ok || return 1
    expect "APPL_DB PORT_TABLE:Ethernet0 lanes" "$(rcli 0 hget PORT_TABLE:Ethernet0 lanes)" 0,1 || return 1
    # A restart on a running switch, with the shipped defaults, is a rejoin: nothing brought down.
    ct journalctl --no-pager -q _SYSTEMD_UNIT=portsyncd.service _PID="$new" EVENT=start KIND=rejoin -o cat | grep -q . \
        || fail "the new process $new did not rejoin (no EVENT=start KIND=rejoin)" || return 1
    (($(ct cat /sys/class/net/Ethernet4/flags) & 0x1)) || fail "Ethernet4 was brought down by the restart" || return 1
    wait_until 10 "STATE_DB Ethernet4 admin_status up" state_is Ethernet4 admin_status up || return 1
    # Written by the new process: its own journal line for Ethernet0.
    ct journalctl --no-pager -q _SYSTEMD_UNIT=portsyncd.service _PID="$new" PORT=Ethernet0 -o cat | grep -q . \
        || fail "no journal line about Ethernet0 from the new process $new" || return 1
    say "kernel flags $flags; STATE_DB PORT_TABLE|Ethernet0: $(rcli 6 hgetall 'PORT_TABLE|Ethernet0' | paste -sd' ')"
}

# The coupling with SONiC's swss: no unit dependency (swss.service runs a container whose restart flushes APPL_DB);
# the daemon follows the flush itself. Here swss's restart is played by FLUSHDB of APPL_DB.
check_d2_swss_restart_flushes_appl_db() {
    local pid t0 mark
    pid=$(prop MainPID) mark=$(journal_mark) t0=$EPOCHREALTIME
    rcli 0 flushdb >/dev/null || return 1
    pending() { [ "$(rcli 0 hget _PORT_TABLE:PortConfigDone count)" = 8 ]; }
    wait_until 5 "PortConfigDone written again after the flush" pending || return 1
    say "FLUSHDB of APPL_DB -> PortConfigDone count=8 again in $(elapsed_since "$t0") s, same MainPID"
    expect "MainPID" "$(prop MainPID)" "$pid" || return 1
    journal_after "$mark" _SYSTEMD_UNIT=portsyncd.service EVENT=appl_db_flushed -o cat | grep -q . \
        || fail "no EVENT=appl_db_flushed in the journal" || return 1
    # As orchagent would after a swss restart: consume the copy; syncd then re-creates the host interfaces.
    rcli 0 eval "$(cat scripts/consume-port-table.lua)" 3 PORT_TABLE_KEY_SET PORT_TABLE: PORT_TABLE_DEL_SET 8192 _ \
        >/dev/null || return 1
    ct ip link del Ethernet0 || return 1
    ct ip link add Ethernet0 mtu 9100 type veth peer name peer0 || return 1
    ct ip link set peer0 up || return 1
    ct ip link set Ethernet0 up || return 1
    wait_until 10 "STATE_DB Ethernet0 state ok from the new netdev" state_is Ethernet0 state ok || return 1
    wait_until 10 "STATE_DB Ethernet0 admin_status up" state_is Ethernet0 admin_status up || return 1
}

check_e_stop() {
    local t0 took mark pid
    pid=$(prop MainPID) mark=$(journal_mark) t0=$EPOCHREALTIME
    ct systemctl stop portsyncd.service || fail "systemctl stop failed" || return 1
    took=$(elapsed_since "$t0")
    say "systemctl stop returned in $took s (TimeoutStopSec=$(prop TimeoutStopUSec))"
    # Result=success: neither a timeout (SIGKILL) nor a non-zero exit; ExecMainStatus is the exit status.
    expect Result "$(prop Result)" success || return 1
    expect ExecMainStatus "$(prop ExecMainStatus)" 0 || return 1
    expect ActiveState "$(prop ActiveState)" inactive || return 1
    awk -v t="$took" 'BEGIN { exit !(t < 8) }' || fail "the stop took $took s, not under the 8 s TimeoutStopSec" \
        || return 1
    journal_after "$mark" _SYSTEMD_UNIT=portsyncd.service _PID="$pid" -o cat | sed 's/^/      /' | grep -v SNAPSHOT
    journal_after "$mark" _SYSTEMD_UNIT=portsyncd.service _PID="$pid" -o cat | grep -q 'exiting' \
        || fail "portsyncd ($pid) did not log its exit"
}

check_purge() {
    ct dpkg --purge portsyncd > "$work/dpkg.log" 2>&1 || {
        cat "$work/dpkg.log" >&2
        fail "dpkg --purge failed"
        return 1
    }
    local path
    for path in /usr/bin/portsyncd /lib/systemd/system/portsyncd.service /etc/sonic/portsyncd.conf \
        /usr/share/man/man8/portsyncd.8.gz /usr/share/doc/portsyncd; do
        ct test ! -e "$path" || fail "$path is still there after the purge" || return 1
    done
    expect LoadState "$(prop LoadState)" not-found || return 1
    say "purged: binary, unit, configuration file, manual page and documentation gone; systemd forgot the unit"
}

# ---------------------------------------------------------------------------------------------------------

echo "test-systemd: $(basename "$deb") under systemd in a container ($work)"
make_root
boot
check "install (dpkg -i enables and starts nothing)" check_install
start_redis
configure
check "a. systemctl start returns once READY" check_a_start_returns_when_ready
check "b. a new veth Ethernet0 reaches STATE_DB and the journal's fields" check_b_port_sync_and_journal
check "c. systemctl reload: a valid change applies, a broken file is refused" check_c_reload
check "d. a stall: the watchdog restarts it and Redis follows the kernel" check_d_watchdog_restart
check "d2. swss restarted (APPL_DB flushed): the cold start runs again in the same process" \
    check_d2_swss_restart_flushes_appl_db
check "e. systemctl stop exits 0 within TimeoutStopSec" check_e_stop
check "purge (dpkg --purge leaves nothing behind)" check_purge
if [ "$failures" -ne 0 ]; then
    echo "test-systemd: $failures check(s) failed" >&2
    exit 1
fi

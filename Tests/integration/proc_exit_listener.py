"""A supervisord event listener standing in for SONiC's supervisor-proc-exit-listener (test_container.py).

It speaks supervisord's event listener protocol (READY, one event, RESULT 2 OK) and appends every event it gets
as one JSON line to the --record file: the event name, the process, its group, the state it left, its pid and,
for PROCESS_STATE_EXITED, the `expected` flag. SONiC's listener reads /etc/supervisor/critical_processes
(`program:<name>` or `group:<name>` lines) and treats an exit as a critical-process exit when the process is
listed and `expected` is 0; it then terminates supervisord, so the whole container restarts. This one records
the same verdict (`critical_exit`) and terminates nothing, so a test can also see what supervisord itself does
after the exit.

Usage: proc_exit_listener.py --critical-processes FILE --record FILE
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def critical_names(path: Path) -> tuple[set, set]:
    programs, groups = set(), set()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        kind, _, name = line.strip().partition(":")
        (programs if kind.strip() == "program" else groups).add(name.strip())
    return programs, groups


def tokens(line: bytes) -> dict:
    return dict(token.split(":", 1) for token in line.decode().split())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--critical-processes", type=Path, required=True)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    programs, groups = critical_names(args.critical_processes)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        stdout.write(b"READY\n")
        stdout.flush()
        header_line = stdin.readline()
        if not header_line:
            return 0
        header = tokens(header_line)
        payload = stdin.read(int(header["len"]))
        first, _, _ = payload.partition(b"\n")
        body = tokens(first)
        entry = {
            "event": header["eventname"],
            "process": body.get("processname"),
            "group": body.get("groupname"),
            "from_state": body.get("from_state"),
            "pid": int(body["pid"]) if "pid" in body else None,
        }
        if header["eventname"] == "PROCESS_STATE_EXITED":
            entry["expected"] = int(body["expected"])
            entry["critical_exit"] = (entry["process"] in programs or entry["group"] in groups) and entry[
                "expected"
            ] == 0
        with args.record.open("a") as record:
            record.write(json.dumps(entry) + "\n")
        stdout.write(b"RESULT 2\nOK")
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main())

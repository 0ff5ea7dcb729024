"""`portsyncd-watch`: print portsyncd's events as they happen, one per line (readable, or JSON with --json).

Connection steps (attempts, fallbacks, backoff) go to stderr, prefixed with `portsyncd-watch:`; events go to
stdout. SIGINT and SIGTERM stop it with status 0; an answer no retry can fix (HTTP 400, 401, 403) ends it with
status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from typing import Optional, Sequence

from .client import TRANSPORTS, Event, FatalError, PortsyncClient


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="portsyncd-watch",
        description="Watch portsyncd's port events: WebSocket, else SSE, else polling /v1/ports; reconnects "
                    "with exponential backoff (1 s to 60 s) and resumes after the last event it got.")
    p.add_argument("url", nargs="?", default=os.environ.get("PORTSYNCD_URL", "http://127.0.0.1:9470"),
                   help="the daemon's HTTP API (default: $PORTSYNCD_URL or http://127.0.0.1:9470)")
    p.add_argument("--events", type=_list, metavar="TYPE,...",
                   help="event types to receive, e.g. port_state,port_deleted (default: all)")
    p.add_argument("--ports", type=_list, metavar="PATTERN,...",
                   help="port names, a trailing * for a prefix, e.g. Ethernet0,Ethernet4* (default: all)")
    p.add_argument("--token", default=os.environ.get("PORTSYNCD_TOKEN"),
                   help="bearer token (default: $PORTSYNCD_TOKEN)")
    p.add_argument("--json", action="store_true", help="one JSON event per line")
    p.add_argument("--transports", type=_list, default=list(TRANSPORTS), metavar="T,...",
                   help="transports in the order tried (default: ws,sse,poll)")
    p.add_argument("--last-event-id", help="resume after this event id")
    p.add_argument("--poll-interval", type=float, default=2.0, metavar="S",
                   help="seconds between two polls of /v1/ports (default 2)")
    p.add_argument("--quiet", "-q", action="store_true", help="no connection messages on stderr")
    return p


def readable(event: Event) -> str:
    """One line for a person: time, type, port and what changed."""
    millis = event.time_ms if event.time_ms is not None else time.time() * 1000
    stamp = time.strftime("%H:%M:%S", time.localtime(millis / 1000))
    data = event.data
    if event.type == "port_state":
        text = f"admin {data.get('admin')}, oper {data.get('oper')}, mtu {data.get('mtu')}"
        if data.get("carrier_changes") is not None:
            text += f", carrier changes {data['carrier_changes']}"
    elif event.type == "sync":
        text = f"snapshot complete ({data.get('ports')} ports); live events follow"
    elif event.type == "reset":
        text = f"{data.get('reason')}: port view dropped, new snapshot follows (epoch {data.get('epoch')})"
    elif event.type == "shutdown":
        text = f"daemon stopping ({data.get('reason')})"
    elif event.type == "port_deleted":
        text = "deleted"
    elif event.type == "counter_bar" and isinstance(data.get("rx_bps"), dict):
        text = (f"rx {data['rx_bps'].get('close')} bps, tx {(data.get('tx_bps') or {}).get('close')} bps, "
                f"drops {data.get('drops')}, errors {data.get('errors')}")
    else:
        text = json.dumps(data, sort_keys=True)
    port = f" {event.port:<14}" if event.port else ""
    return f"{stamp} {event.type:<15}{port} {text} [{event.transport}]"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    if not args.quiet:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("portsyncd-watch: %(message)s"))
        logger = logging.getLogger("portsyncd_client")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        client = PortsyncClient(args.url, events=args.events, ports=args.ports, token=args.token,
                                transports=args.transports, last_event_id=args.last_event_id,
                                poll_interval=args.poll_interval)
    except ValueError as error:
        print(f"portsyncd-watch: {error}", file=sys.stderr)
        return 2

    def stop(signum, frame):  # noqa: ARG001 - signal handler signature
        client.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for event in client:
            line = json.dumps(event.to_dict(), sort_keys=True) if args.json else readable(event)
            print(line, flush=True)
    except FatalError as error:
        print(f"portsyncd-watch: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

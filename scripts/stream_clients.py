#!/usr/bin/env python3
"""Many stream clients against one portsyncd, for `bench_latency.py --clients N` (run inside the daemon's network
namespace). Half of the readers use SSE, half WebSocket; `--deaf` more connect over SSE with a tiny receive buffer
and never read. Each reader records, for every `port_state` event, the time from the kernel message's receipt by
the daemon (`received_us`, CLOCK_MONOTONIC) to the event's arrival here (the same clock): bus → socket latency.

Prints `ready` once every reader has its `sync`; on a line on stdin (or EOF) it stops and prints one JSON object:
readers connected, events received, p50/p99/max of the latency in µs, and the daemon's count of clients closed
as `slow`."""
import argparse
import asyncio
import json
import socket
import sys
import time
import urllib.request

from websockets.asyncio.client import connect

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--clients", type=int, default=1000)
parser.add_argument("--deaf", type=int, default=10)
args = parser.parse_args()

latencies: list[float] = []
received = 0


def record(event: dict):
    global received
    received += 1
    data = event.get("data", {})
    if event.get("type") == "port_state" and "received_us" in data:
        latencies.append(time.monotonic_ns() / 1000 - data["received_us"])


async def sse_reader(synced: asyncio.Event, stop: asyncio.Event):
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
    writer.write(b"GET /v1/sse/events?events=port_state HTTP/1.1\r\nHost: bench\r\n\r\n")
    await writer.drain()
    data_line = None
    while not stop.is_set():
        line = await reader.readline()
        if not line:
            return
        if line.startswith(b"data: "):
            data_line = line[6:]
        elif line == b"\n" and data_line is not None:
            event = json.loads(data_line)
            data_line = None
            if event["type"] == "sync":
                synced.set()
            elif synced.is_set():
                record(event)
    writer.close()


async def ws_reader(synced: asyncio.Event, stop: asyncio.Event):
    async with connect(f"ws://127.0.0.1:{args.port}/v1/ws/events?events=port_state", max_size=None,
                       compression=None) as ws:
        while not stop.is_set():
            event = json.loads(await ws.recv())
            if event["type"] == "sync":
                synced.set()
            elif synced.is_set():
                record(event)


def deaf_client() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", args.port))
    sock.sendall(b"GET /v1/sse/events HTTP/1.1\r\nHost: bench\r\n\r\n")
    return sock


def slow_closed() -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{args.port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith('portsyncd_stream_clients_closed_total{reason="slow"}'):
            return int(float(line.split()[-1]))
    return 0


async def main():
    stop = asyncio.Event()
    synced = [asyncio.Event() for _ in range(args.clients)]
    tasks = [asyncio.create_task((sse_reader if i % 2 == 0 else ws_reader)(synced[i], stop))
             for i in range(args.clients)]
    deaf = [deaf_client() for _ in range(args.deaf)]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in synced)), timeout=120)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    ordered = sorted(latencies)

    def pick(p):
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 1) if ordered else None

    print(json.dumps({"readers": args.clients, "deaf": args.deaf, "events": received,
                      "bus_to_socket_p50_us": pick(50), "bus_to_socket_p99_us": pick(99),
                      "bus_to_socket_max_us": round(ordered[-1], 1) if ordered else None,
                      "closed_slow": slow_closed()}), flush=True)
    for sock in deaf:
        sock.close()


asyncio.run(main())

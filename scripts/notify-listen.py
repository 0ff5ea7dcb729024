#!/usr/bin/env python3
"""A stand-in for systemd's notification socket: binds a unix datagram socket, prints each message it gets
(one line per message, newlines inside a message shown as ' | '), and exits 0 when it sees READY=1 if
--until-ready is given (it keeps printing otherwise)."""
import argparse
import os
import socket
import sys

parser = argparse.ArgumentParser()
parser.add_argument("path")
parser.add_argument("--until-ready", action="store_true")
parser.add_argument("--quiet", action="store_true")
args = parser.parse_args()

if os.path.exists(args.path):
    os.unlink(args.path)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(args.path)
os.chmod(args.path, 0o777)
print("listening", flush=True)
while True:
    data = sock.recv(65536).decode(errors="replace")
    if not args.quiet:
        print(data.replace("\n", " | "), flush=True)
    if args.until_ready and "READY=1" in data.split("\n"):
        sys.exit(0)

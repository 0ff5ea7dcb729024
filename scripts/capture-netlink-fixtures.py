#!/usr/bin/env python3
"""Captures real RTM_NEWLINK/RTM_DELLINK datagrams from the kernel, for the decoder's test fixtures.

Run as root. It makes a throw-away network namespace, listens on RTMGRP_LINK inside it, makes link changes
with `ip`, and writes each datagram the kernel sent, byte for byte, to Tests/PortSyncCoreTests/Fixtures/.
Also one RTM_GETLINK dump reply (multipart, up to NLMSG_DONE)."""
import os
import socket
import struct
import subprocess
import sys

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "PortSyncCoreTests", "Fixtures")
NS = f"psd-capture-{os.getpid()}"


def ip(*args):
    subprocess.run(["ip", "-n", NS, *args], check=True)


def in_netns(fn):
    # setns for this process: open the namespace file and enter it (CLONE_NEWNET = 0x40000000).
    import ctypes
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(f"/var/run/netns/{NS}", os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    os.close(fd)
    return fn()


def drain(sock):
    datagrams = []
    sock.settimeout(0.3)
    while True:
        try:
            datagrams.append(sock.recv(65536))
        except socket.timeout:
            return datagrams


def main():
    os.makedirs(OUT, exist_ok=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        def capture():
            events = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            events.bind((0, 1))  # RTMGRP_LINK
            steps = [
                ("veth-create", ["link", "add", "Ethernet0", "mtu", "9100", "type", "veth", "peer", "name", "peer0"]),
                ("admin-up", ["link", "set", "Ethernet0", "up"]),
                ("peer-up", ["link", "set", "peer0", "up"]),
                ("admin-down", ["link", "set", "Ethernet0", "down"]),
                ("mtu-change", ["link", "set", "Ethernet0", "mtu", "1500"]),
                ("portchannel-create", ["link", "add", "PortChannel0001", "type", "veth", "peer", "name", "pcpeer"]),
                ("bridge-enslave", ["link", "add", "Bridge", "type", "bridge"]),
                ("bridge-master", ["link", "set", "Ethernet0", "master", "Bridge"]),
                ("bridge-release", ["link", "set", "Ethernet0", "nomaster"]),
                ("veth-delete", ["link", "del", "Ethernet0"]),
            ]
            for name, args in steps:
                ip(*args)
                for index, datagram in enumerate(drain(events)):
                    with open(os.path.join(OUT, f"{name}-{index}.bin"), "wb") as f:
                        f.write(datagram)
            ip("link", "add", "Ethernet4", "type", "veth", "peer", "name", "Ethernet8")
            drain(events)
            request = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            request.bind((0, 0))
            # nlmsghdr + rtgenmsg(AF_UNSPEC) padded to 4 bytes
            message = struct.pack("=IHHII", 20, 18, 0x301, 42, 0) + struct.pack("=Bxxx", 0)
            request.send(message)
            dump = b""
            index = 0
            while True:
                datagram = request.recv(65536)
                with open(os.path.join(OUT, f"dump-{index}.bin"), "wb") as f:
                    f.write(datagram)
                index += 1
                dump += datagram
                if struct.unpack_from("=H", datagram, 4)[0] == 3:  # NLMSG_DONE
                    break
        pid = os.fork()
        if pid == 0:
            try:
                in_netns(capture)
                os._exit(0)
            except Exception as error:  # noqa: BLE001 - report and fail the child
                print(error, file=sys.stderr)
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            sys.exit("capture failed")
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)
    print("fixtures written to", os.path.abspath(OUT))


if __name__ == "__main__":
    main()

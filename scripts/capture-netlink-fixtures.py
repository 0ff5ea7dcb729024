#!/usr/bin/env python3
"""Captures real rtnetlink datagrams from the kernel, for the decoder's test fixtures.

Run as root. It makes a throw-away network namespace, listens inside it, makes changes with `ip`, and writes each
datagram the kernel sent, byte for byte, as `<step>-<n>.bin`. Three sets, one per argument:

* `links` (the default): RTM_NEWLINK/RTM_DELLINK heard on RTMGRP_LINK, to Tests/PortSyncCoreTests/Fixtures/,
  and one RTM_GETLINK dump reply (multipart, up to NLMSG_DONE).
* `groups`: everything a socket joined to the link, neighbour, IPv4/IPv6 address and route groups hears while a
  port gets addresses, routes and neighbours (RTM_NEWADDR, RTM_NEWROUTE, RTM_NEWNEIGH and their deletes among
  link messages), plus an RTM_GETADDR dump reply, to Fixtures/groups/ (statement 13's test).
* `portchannel`: the life of a `PortChannel9` veth (create, up, carrier, down, delete) on RTMGRP_LINK, to
  Fixtures/portchannel/. A kernel without the team driver cannot make a team link; statement 16's test
  rewrites the IFLA_INFO_KIND of these real datagrams from "veth" to "team" (same length)."""
import os
import socket
import struct
import subprocess
import sys

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "Tests", "PortSyncCoreTests", "Fixtures")
OUT = FIXTURES
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


RTMGRP_LINK = 0x1
RTMGRP_NEIGH = 0x4
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400


def listen(groups):
    events = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    events.bind((0, groups))
    return events


def record(events, out, steps):
    """Runs each step's `ip` commands, then writes every datagram heard as `<step>-<n>.bin` in `out`."""
    for name, commands in steps:
        for args in commands:
            ip(*args)
        for index, datagram in enumerate(drain(events)):
            with open(os.path.join(out, f"{name}-{index}.bin"), "wb") as f:
                f.write(datagram)


def dump(request_type, out, name, sequence):
    """Sends one dump request (rtgenmsg AF_UNSPEC) and writes each datagram of the reply, up to NLMSG_DONE."""
    request = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    request.bind((0, 0))
    # nlmsghdr + rtgenmsg(AF_UNSPEC) padded to 4 bytes
    request.send(struct.pack("=IHHII", 20, request_type, 0x301, sequence, 0) + struct.pack("=Bxxx", 0))
    index = 0
    while True:
        datagram = request.recv(65536)
        with open(os.path.join(out, f"{name}-{index}.bin"), "wb") as f:
            f.write(datagram)
        index += 1
        if struct.unpack_from("=H", datagram, 4)[0] == 3:  # NLMSG_DONE
            return


def capture_links():
    events = listen(RTMGRP_LINK)
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
    record(events, OUT, [(name, [args]) for name, args in steps])
    ip("link", "add", "Ethernet4", "type", "veth", "peer", "name", "Ethernet8")
    drain(events)
    dump(18, OUT, "dump", 42)  # RTM_GETLINK


def capture_groups():
    out = os.path.join(FIXTURES, "groups")
    os.makedirs(out, exist_ok=True)
    events = listen(RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR
                    | RTMGRP_IPV6_ROUTE)
    # No IPv6 link-local address (its duplicate address detection would make the capture depend on timing).
    record(events, out, [
        ("port-create", [["link", "add", "Ethernet0", "mtu", "9100", "type", "veth", "peer", "name", "peer0"],
                         ["link", "set", "Ethernet0", "addrgenmode", "none"],
                         ["link", "set", "peer0", "addrgenmode", "none"]]),
        ("port-up", [["link", "set", "peer0", "up"], ["link", "set", "Ethernet0", "up"]]),
        ("addr-add", [["addr", "add", "192.0.2.1/24", "dev", "Ethernet0"]]),
        ("route-add", [["route", "add", "198.51.100.0/24", "via", "192.0.2.2", "dev", "Ethernet0"]]),
        ("neigh-add", [["neigh", "add", "192.0.2.2", "lladdr", "02:00:00:00:00:02", "dev", "Ethernet0"]]),
        ("addr6-add", [["addr", "add", "2001:db8::1/64", "dev", "Ethernet0", "nodad"]]),
    ])
    dump(22, out, "addr-dump", 43)  # RTM_GETADDR: NEWADDR replies, several to a datagram
    record(events, out, [
        ("route-del", [["route", "del", "198.51.100.0/24"]]),
        ("neigh-del", [["neigh", "del", "192.0.2.2", "dev", "Ethernet0"]]),
        ("addr-del", [["addr", "del", "192.0.2.1/24", "dev", "Ethernet0"]]),
        ("mtu-change", [["link", "set", "Ethernet0", "mtu", "1400"]]),
        ("port-delete", [["link", "del", "Ethernet0"]]),
    ])


def capture_portchannel():
    out = os.path.join(FIXTURES, "portchannel")
    os.makedirs(out, exist_ok=True)
    events = listen(RTMGRP_LINK)
    record(events, out, [
        ("create", [["link", "add", "PortChannel9", "mtu", "9100", "type", "veth", "peer", "name", "pc9peer"]]),
        ("admin-up", [["link", "set", "PortChannel9", "up"]]),
        ("carrier-up", [["link", "set", "pc9peer", "up"]]),
        ("admin-down", [["link", "set", "PortChannel9", "down"]]),
        ("delete", [["link", "del", "PortChannel9"]]),
    ])


SETS = {"links": capture_links, "groups": capture_groups, "portchannel": capture_portchannel}


def main():
    which = sys.argv[1:] or ["links"]
    if any(name not in SETS for name in which):
        sys.exit(f"usage: {sys.argv[0]} [{'|'.join(SETS)}]...")
    os.makedirs(OUT, exist_ok=True)
    for name in which:
        capture_in_new_netns(SETS[name])
    print("fixtures written under", os.path.abspath(FIXTURES))


def capture_in_new_netns(capture):
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
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


if __name__ == "__main__":
    main()

import CMnl
import Glibc
import PortSyncCore

/// A NETLINK_ROUTE socket opened through libmnl. The wrapper is the only place that sees `mnl_socket`.
final class NetlinkSocket {
    private let socket: OpaquePointer
    let portID: UInt32

    var fileDescriptor: Int32 { mnl_socket_get_fd(self.socket) }

    /// Opens a socket, bound to `groups` (`RTMGRP_LINK` for events, 0 for requests).
    init(groups: UInt32) throws(SystemError) {
        guard let socket = mnl_socket_open(NETLINK_ROUTE) else { throw SystemError.current("mnl_socket_open") }
        guard mnl_socket_bind(socket, groups, pid_t(bitPattern: cmnl_autopid())) == 0 else {
            let error = SystemError.current("mnl_socket_bind")
            mnl_socket_close(socket)
            throw error
        }
        self.socket = socket
        self.portID = mnl_socket_get_portid(socket)
    }

    deinit { mnl_socket_close(self.socket) }

    func setNonBlocking() throws(SystemError) {
        let fd = self.fileDescriptor
        let flags = fcntl(fd, F_GETFL)
        try Syscall.blocking("fcntl(O_NONBLOCK)") { Int(fcntl(fd, F_SETFL, flags | O_NONBLOCK)) }
    }

    /// Asks for a receive buffer of `bytes`: `SO_RCVBUFFORCE` (needs CAP_NET_ADMIN, passes `rmem_max`), else
    /// `SO_RCVBUF`. Returns the size the kernel reports (it doubles the request) and whether it was forced.
    func setReceiveBuffer(bytes: Int) -> (effective: Int, forced: Bool) {
        var size = Int32(clamping: bytes)
        let length = socklen_t(MemoryLayout<Int32>.size)
        var forced = setsockopt(self.fileDescriptor, SOL_SOCKET, SO_RCVBUFFORCE, &size, length) == 0
        if !forced {
            forced = false
            _ = setsockopt(self.fileDescriptor, SOL_SOCKET, SO_RCVBUF, &size, length)
        }
        var effective: Int32 = 0
        var effectiveLength = length
        _ = getsockopt(self.fileDescriptor, SOL_SOCKET, SO_RCVBUF, &effective, &effectiveLength)
        return (Int(effective), forced)
    }

    /// One datagram into `buffer`; `.wouldBlock` when none is queued. `ENOBUFS` throws: events were lost.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> ReadResult {
        try Syscall.nonBlocking("recv") { recv(self.fileDescriptor, buffer.baseAddress, buffer.count, 0) }
    }

    /// The libmnl handle, for the request code in this file.
    fileprivate var handle: OpaquePointer { self.socket }

    func send(_ message: [UInt8]) throws(SystemError) {
        try Syscall.blocking("mnl_socket_sendto") {
            message.withUnsafeBytes { buffer in mnl_socket_sendto(self.socket, buffer.baseAddress, buffer.count) }
        }
    }

    /// Sets a receive timeout on a request socket, so a kernel that never answers cannot hang start-up.
    func setReceiveTimeout(milliseconds: Int) {
        var timeout = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        _ = setsockopt(self.fileDescriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }
}

/// Requests to the kernel on their own socket: the `RTM_GETLINK` dump and bringing a link down.
final class NetlinkRequester {
    private let socket: NetlinkSocket
    private var sequence: UInt32
    private var buffer: [UInt8]

    init() throws(SystemError) {
        self.socket = try NetlinkSocket(groups: 0)
        self.socket.setReceiveTimeout(milliseconds: 5000)
        self.sequence = UInt32(truncatingIfNeeded: MonotonicClock.nowMicroseconds())
        self.buffer = [UInt8](repeating: 0, count: max(cmnl_socket_buffer_size(), 32768))
    }

    enum RequestError: Error, CustomStringConvertible {
        case system(SystemError)
        case kernel(errno: Int32)
        case malformed(NetlinkDecodeError)

        var description: String {
            switch self {
            case .system(let error): error.description
            case .kernel(let errno): "kernel refused: \(String(cString: strerror(errno))) (errno \(errno))"
            case .malformed(let error): "malformed reply: \(error)"
            }
        }
    }

    private func receive() throws(SystemError) -> Int {
        let socket = self.socket
        return try Syscall.blocking("mnl_socket_recvfrom") {
            self.buffer.withUnsafeMutableBytes { raw in
                mnl_socket_recvfrom(socket.handle, raw.baseAddress, raw.count)
            }
        }
    }

    /// Dumps every link (`RTM_GETLINK`, `NLM_F_DUMP`, `AF_UNSPEC`) and returns the reply datagrams up to
    /// `NLMSG_DONE`. Replies with another sequence number or port id are dropped.
    func dumpLinks() throws(RequestError) -> [[UInt8]] {
        self.sequence &+= 1
        let sequence = self.sequence
        // nlmsghdr + struct rtgenmsg (one byte, padded to 4).
        var request = NetlinkRequestBuilder(
            type: NetlinkMessageType.getLink, flags: NetlinkMessageFlags.request | NetlinkMessageFlags.dump,
            sequence: sequence)
        request.append(bytes: [UInt8(AF_UNSPEC), 0, 0, 0])
        do { try self.socket.send(request.bytes) } catch { throw .system(error) }
        var datagrams: [[UInt8]] = []
        while true {
            let count: Int
            do { count = try self.receive() } catch { throw .system(error) }
            let datagram = Array(self.buffer[0..<count])
            var finished = false
            var failure: RequestError?
            var ours = false
            datagram.withUnsafeBytes { raw in
                NetlinkDecoder.forEach(in: raw) { item in
                    switch item {
                    case .link(let link) where link.sequence == sequence && link.portID == self.socket.portID:
                        ours = true
                    case .done(let doneSequence, let portID)
                    where doneSequence == sequence && portID == self.socket.portID:
                        finished = true
                    case .error(let code, let errorSequence) where errorSequence == sequence && code != 0:
                        failure = .kernel(errno: -code)
                    default:
                        break
                    }
                }
            }
            if let failure { throw failure }
            if ours { datagrams.append(datagram) }
            if finished { return datagrams }
        }
    }

    /// Brings link `ifindex` administratively down (`RTM_NEWLINK` with `IFF_UP` cleared), the netlink form of
    /// `ip link set <name> down`, and waits for the kernel's acknowledgement.
    func setLinkDown(ifindex: Int32) throws(RequestError) {
        self.sequence &+= 1
        let sequence = self.sequence
        var request = NetlinkRequestBuilder(
            type: NetlinkMessageType.newLink, flags: NetlinkMessageFlags.request | NetlinkMessageFlags.ack,
            sequence: sequence)
        // struct ifinfomsg: family, pad, type, index, flags = 0, change = IFF_UP.
        request.append(bytes: [UInt8(AF_UNSPEC), 0, 0, 0])
        request.append(int32: ifindex)
        request.append(uint32: 0)
        request.append(uint32: InterfaceFlags.up.rawValue)
        do { try self.socket.send(request.bytes) } catch { throw .system(error) }
        while true {
            let count: Int
            do { count = try self.receive() } catch { throw .system(error) }
            var result: Int32?
            self.buffer.withUnsafeBytes { raw in
                NetlinkDecoder.forEach(in: UnsafeRawBufferPointer(rebasing: raw[0..<count])) { item in
                    if case .error(let code, let errorSequence) = item, errorSequence == sequence { result = code }
                }
            }
            if let result {
                if result != 0 { throw .kernel(errno: -result) }
                return
            }
        }
    }
}

/// Builds one netlink request message in native byte order.
struct NetlinkRequestBuilder {
    private(set) var bytes: [UInt8] = []

    init(type: UInt16, flags: UInt16, sequence: UInt32) {
        self.append(uint32: 0)  // nlmsg_len, set in `bytes` below
        self.append(uint16: type)
        self.append(uint16: flags)
        self.append(uint32: sequence)
        self.append(uint32: 0)  // nlmsg_pid: the kernel fills it in
    }

    mutating func append(bytes: [UInt8]) {
        self.bytes.append(contentsOf: bytes)
        let length = UInt32(self.bytes.count)
        withUnsafeBytes(of: length) { raw in
            for index in 0..<4 { self.bytes[index] = raw[index] }
        }
    }
    mutating func append(uint16 value: UInt16) { self.append(bytes: withUnsafeBytes(of: value) { Array($0) }) }
    mutating func append(uint32 value: UInt32) { self.append(bytes: withUnsafeBytes(of: value) { Array($0) }) }
    mutating func append(int32 value: Int32) { self.append(bytes: withUnsafeBytes(of: value) { Array($0) }) }
}

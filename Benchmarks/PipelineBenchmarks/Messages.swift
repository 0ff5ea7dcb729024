import Foundation
import PortSyncCore

/// Netlink messages held in one contiguous buffer, built once before measuring, and read in place.
struct MessageBatch {
    /// Every message's bytes, back to back (each starting on a 4-byte boundary, as netlink aligns them).
    private(set) var bytes: [UInt8] = []
    /// Where each message (or datagram) is in `bytes`, in the order a benchmark reads them.
    private(set) var ranges: [Range<Int>] = []

    var count: Int { self.ranges.count }

    /// Appends one message or datagram.
    mutating func append(_ message: [UInt8]) {
        let start = self.bytes.count
        self.bytes.append(contentsOf: message)
        self.ranges.append(start..<self.bytes.count)
        let padding = NetlinkLayout.align(message.count) - message.count
        self.bytes.append(contentsOf: repeatElement(0, count: padding))
    }

    /// The same messages, listed over and over up to `count` entries (the bytes are not copied again).
    func repeated(to count: Int) -> MessageBatch {
        var batch = MessageBatch()
        batch.bytes = self.bytes
        batch.ranges = (0..<count).map { self.ranges[$0 % self.ranges.count] }
        return batch
    }

    /// Calls `body` with each message of `range` (indexes into `ranges`), in order.
    @inline(__always)
    func forEach(in range: Range<Int>, _ body: (UnsafeRawBufferPointer) -> Void) {
        self.bytes.withUnsafeBytes { raw in
            for index in range {
                body(UnsafeRawBufferPointer(rebasing: raw[self.ranges[index]]))
            }
        }
    }
}

/// The kernel datagrams captured by `scripts/capture-netlink-fixtures.py` for the decoder's unit tests.
enum Fixtures {
    /// `Tests/PortSyncCoreTests/Fixtures` of the portsyncd package, found from this file's place in the tree.
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // PipelineBenchmarks
        .deletingLastPathComponent()  // Benchmarks
        .deletingLastPathComponent()  // the portsyncd package
        .appendingPathComponent("Tests/PortSyncCoreTests/Fixtures")

    /// Every captured datagram, by file name.
    static func datagrams() -> [[UInt8]] {
        let files = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
        let datagrams = files.filter { $0.pathExtension == "bin" }.sorted { $0.path < $1.path }
            .compactMap { try? Data(contentsOf: $0) }.map { [UInt8]($0) }
        precondition(!datagrams.isEmpty, "no .bin fixtures in \(directory.path)")
        return datagrams
    }

    /// Every message of every captured datagram, one entry each, framed as the receive stage frames them:
    /// `RTM_NEWLINK` and `RTM_DELLINK` of `Ethernet*`, `PortChannel*` and other interfaces, and `NLMSG_DONE`.
    static func messages(where include: (UnsafeRawBufferPointer) -> Bool = { _ in true }) -> MessageBatch {
        var batch = MessageBatch()
        for datagram in self.datagrams() {
            datagram.withUnsafeBytes { raw in
                NetlinkDecoder.forEachMessage(in: raw) { framed in
                    if case .success(let message) = framed, include(message) { batch.append(Array(message)) }
                }
            }
        }
        return batch
    }
}

/// Builds `RTM_NEWLINK` messages with the attributes portsyncd reads, integers in host byte order as netlink
/// carries them.
enum LinkMessageBuilder {
    /// `IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_MULTICAST | IFF_LOWER_UP`: an interface up with its carrier.
    static let upFlags: UInt32 = 0x1_1043

    /// An `RTM_NEWLINK` for `name`: `IFLA_IFNAME`, `IFLA_MTU`, `IFLA_OPERSTATE`, `IFLA_ADDRESS`,
    /// `IFLA_CARRIER_CHANGES` and `IFLA_LINKINFO` with `IFLA_INFO_KIND`, as a single-message datagram.
    static func newLink(name: String, ifindex: Int32, flags: UInt32 = upFlags, mtu: UInt32 = 9100) -> [UInt8] {
        let address: [UInt8] = [
            0x02, 0x42, 0xAC, UInt8(truncatingIfNeeded: ifindex >> 8), UInt8(truncatingIfNeeded: ifindex), 0x01,
        ]
        var payload = self.bytes(UInt16(0)) + self.bytes(UInt16(1)) + self.bytes(ifindex) + self.bytes(flags)
        payload += self.bytes(UInt32(0xFFFF_FFFF))
        payload += self.attribute(LinkAttribute.ifname, Array(name.utf8) + [0])
        payload += self.attribute(LinkAttribute.mtu, self.bytes(mtu))
        payload += self.attribute(LinkAttribute.operstate, [6])  // IF_OPER_UP
        payload += self.attribute(LinkAttribute.address, address)
        payload += self.attribute(LinkAttribute.carrierChanges, self.bytes(UInt32(2)))
        payload += self.attribute(
            LinkAttribute.linkinfo, self.attribute(LinkAttribute.infoKind, Array("veth".utf8) + [0]))
        let length = UInt32(NetlinkLayout.messageHeader + payload.count)
        return self.bytes(length) + self.bytes(NetlinkMessageType.newLink) + self.bytes(UInt16(0))
            + self.bytes(UInt32(0)) + self.bytes(UInt32(0)) + payload
    }

    private static func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }

    /// An `nlattr` with its payload, padded to 4 bytes.
    private static func attribute(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let length = NetlinkLayout.attributeHeader + payload.count
        let padding = NetlinkLayout.align(length) - length
        return self.bytes(UInt16(length)) + self.bytes(type) + payload + [UInt8](repeating: 0, count: padding)
    }
}

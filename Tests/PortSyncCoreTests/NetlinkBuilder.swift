import PortSyncCore

/// Builds netlink datagrams by hand, with every length explicit, so tests can make exactly the malformation they
/// mean. Integers are in host byte order, as netlink carries them.
enum NetlinkBuilder {
    static func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }

    /// Zero bytes up to the next multiple of 4.
    static func padded(_ bytes: [UInt8]) -> [UInt8] {
        bytes + [UInt8](repeating: 0, count: NetlinkLayout.align(bytes.count) - bytes.count)
    }

    /// An `nlattr`: `nla_len` (default: header plus payload), `nla_type`, payload, then padding to 4 bytes.
    static func attribute(_ type: UInt16, _ payload: [UInt8], length: Int? = nil) -> [UInt8] {
        let length = length ?? (NetlinkLayout.attributeHeader + payload.count)
        return self.padded(self.bytes(UInt16(truncatingIfNeeded: length)) + self.bytes(type) + payload)
    }

    static func name(_ name: String) -> [UInt8] {
        self.attribute(LinkAttribute.ifname, Array(name.utf8) + [0])
    }

    static func mtu(_ mtu: UInt32) -> [UInt8] { self.attribute(LinkAttribute.mtu, self.bytes(mtu)) }

    static func master(_ master: UInt32) -> [UInt8] { self.attribute(LinkAttribute.master, self.bytes(master)) }

    /// `IFLA_LINKINFO` holding one `IFLA_INFO_KIND`.
    static func linkInfo(kind: String, type: UInt16 = LinkAttribute.linkinfo) -> [UInt8] {
        self.attribute(type, self.attribute(LinkAttribute.infoKind, Array(kind.utf8) + [0]))
    }

    /// An `ifinfomsg` (family `AF_UNSPEC`), cut to `length` bytes when given.
    static func ifinfo(ifindex: Int32, flags: UInt32, length: Int? = nil) -> [UInt8] {
        let full: [UInt8] =
            [0, 0] + self.bytes(UInt16(1)) + self.bytes(ifindex) + self.bytes(flags)
            + self.bytes(UInt32(0xFFFF_FFFF))
        return Array(full.prefix(length ?? full.count))
    }

    /// An `nlmsghdr` followed by `payload`; `length` overrides `nlmsg_len`.
    static func message(
        type: UInt16, flags: UInt16 = 0, sequence: UInt32 = 0, portID: UInt32 = 0, payload: [UInt8],
        length: Int? = nil
    ) -> [UInt8] {
        let length = length ?? (NetlinkLayout.messageHeader + payload.count)
        return self.bytes(UInt32(truncatingIfNeeded: length)) + self.bytes(type) + self.bytes(flags)
            + self.bytes(sequence) + self.bytes(portID) + payload
    }

    /// A stable ifindex for a name: distinct names get distinct ifindexes, as from the kernel (one ifindex under
    /// two names is a rename).
    static func ifindex(for name: String) -> Int32 {
        Int32(
            truncatingIfNeeded: name.utf8.reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 }
                & 0x7fff_ffff)
    }

    /// An `RTM_NEWLINK` (or `RTM_DELLINK`) with the given attributes.
    static func link(
        type: UInt16 = NetlinkMessageType.newLink, sequence: UInt32 = 0, ifindex: Int32 = 7,
        flags: UInt32 = 0, attributes: [[UInt8]]
    ) -> [UInt8] {
        self.message(
            type: type, sequence: sequence,
            payload: self.ifinfo(ifindex: ifindex, flags: flags) + attributes.flatMap { $0 })
    }
}

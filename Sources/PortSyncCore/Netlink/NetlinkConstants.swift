/// Netlink and rtnetlink numbers used by the decoder.
///
/// They are the kernel's UAPI values (`linux/netlink.h`, `linux/rtnetlink.h`, `linux/if_link.h`), spelled out
/// here so that the pure core needs no C module. They are part of the kernel ABI and never change.
public enum NetlinkMessageType {
    public static let noop: UInt16 = 1
    public static let error: UInt16 = 2
    public static let done: UInt16 = 3
    public static let overrun: UInt16 = 4
    public static let newLink: UInt16 = 16
    public static let delLink: UInt16 = 17
    public static let getLink: UInt16 = 18
}

/// `nlmsghdr.nlmsg_flags` bits.
public enum NetlinkMessageFlags {
    public static let request: UInt16 = 0x1
    public static let multi: UInt16 = 0x2
    public static let ack: UInt16 = 0x4
    public static let dump: UInt16 = 0x300
}

/// `IFLA_*` attribute types of an `ifinfomsg`.
public enum LinkAttribute {
    public static let address: UInt16 = 1
    public static let ifname: UInt16 = 3
    public static let mtu: UInt16 = 4
    public static let master: UInt16 = 10
    public static let operstate: UInt16 = 16
    public static let linkinfo: UInt16 = 18
    public static let stats64: UInt16 = 23
    public static let carrierChanges: UInt16 = 35
    /// `IFLA_INFO_KIND`, nested in `IFLA_LINKINFO`.
    public static let infoKind: UInt16 = 1
}

/// Sizes of the fixed netlink structures.
public enum NetlinkLayout {
    /// `sizeof(struct nlmsghdr)`
    public static let messageHeader = 16
    /// `sizeof(struct ifinfomsg)`
    public static let ifinfo = 16
    /// `sizeof(struct nlattr)`
    public static let attributeHeader = 4
    /// `IFNAMSIZ`: a name and its NUL must fit.
    public static let ifnamsiz = 16
    /// `MAX_ADDR_LEN`
    public static let maxAddressLength = 32
    /// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`
    public static let attributeFlagsMask: UInt16 = 0xC000

    /// `NLMSG_ALIGN` / `NLA_ALIGN`: round up to 4 bytes.
    @inlinable
    public static func align(_ length: Int) -> Int { (length &+ 3) & ~3 }
}

/// `ifi_flags` bits of a link (`net/if.h`).
public struct InterfaceFlags: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `IFF_UP`: administratively up.
    public static let up = InterfaceFlags(rawValue: 0x1)
    public static let broadcast = InterfaceFlags(rawValue: 0x2)
    public static let loopback = InterfaceFlags(rawValue: 0x8)
    /// `IFF_RUNNING`: operationally up. SONiC's `netdev_oper_status` follows this bit.
    public static let running = InterfaceFlags(rawValue: 0x40)
    public static let multicast = InterfaceFlags(rawValue: 0x1000)
    /// `IFF_LOWER_UP`: carrier. SONiC deliberately does not use it.
    public static let lowerUp = InterfaceFlags(rawValue: 0x10000)
}

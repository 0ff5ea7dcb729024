/// One decoded `RTM_NEWLINK` or `RTM_DELLINK` message, with every attribute portsyncd uses.
///
/// A value type of fixed size with no heap storage, so the hot path can build one per kernel message without
/// allocating.
public struct LinkMessage: Sendable, Hashable {
    public enum Kind: Sendable, Hashable, Codable {
        case newLink
        case delLink
    }

    public var kind: Kind
    /// `nlmsg_seq` (0 for multicast events, the request's for dump replies).
    public var sequence: UInt32
    /// `nlmsg_pid`
    public var portID: UInt32
    public var ifindex: Int32
    public var flags: InterfaceFlags
    /// `IFLA_IFNAME`; `nil` when absent.
    public var name: InterfaceName?
    /// `IFLA_MTU`
    public var mtu: UInt32?
    /// `IFLA_MASTER`, 0 when absent (as SONiC reads it).
    public var master: UInt32
    /// `IFLA_LINKINFO` / `IFLA_INFO_KIND` (for example `veth`, `team`).
    public var linkKind: InterfaceName?
    /// `IFLA_CARRIER_CHANGES`
    public var carrierChanges: UInt32?
    /// `IFLA_OPERSTATE` (logged only: SONiC uses `IFF_RUNNING`).
    public var operState: UInt8?
    /// `IFLA_ADDRESS`
    public var address: HardwareAddress?
    /// `IFLA_STATS64`, kept for the channels.
    public var stats: LinkStatistics?

    public init(
        kind: Kind, sequence: UInt32 = 0, portID: UInt32 = 0, ifindex: Int32, flags: InterfaceFlags,
        name: InterfaceName?, mtu: UInt32? = nil, master: UInt32 = 0, linkKind: InterfaceName? = nil,
        carrierChanges: UInt32? = nil, operState: UInt8? = nil, address: HardwareAddress? = nil,
        stats: LinkStatistics? = nil
    ) {
        self.kind = kind
        self.sequence = sequence
        self.portID = portID
        self.ifindex = ifindex
        self.flags = flags
        self.name = name
        self.mtu = mtu
        self.master = master
        self.linkKind = linkKind
        self.carrierChanges = carrierChanges
        self.operState = operState
        self.address = address
        self.stats = stats
    }

    /// `IFF_UP`
    public var isAdminUp: Bool { self.flags.contains(.up) }
    /// `IFF_RUNNING` (SONiC's oper status, not `IFF_LOWER_UP`).
    public var isOperUp: Bool { self.flags.contains(.running) }
}

/// The main counters of `struct rtnl_link_stats64`.
public struct LinkStatistics: Sendable, Hashable, Codable {
    public var rxPackets: UInt64
    public var txPackets: UInt64
    public var rxBytes: UInt64
    public var txBytes: UInt64
    public var rxErrors: UInt64
    public var txErrors: UInt64
    public var rxDropped: UInt64
    public var txDropped: UInt64

    public init(
        rxPackets: UInt64 = 0, txPackets: UInt64 = 0, rxBytes: UInt64 = 0, txBytes: UInt64 = 0,
        rxErrors: UInt64 = 0, txErrors: UInt64 = 0, rxDropped: UInt64 = 0, txDropped: UInt64 = 0
    ) {
        self.rxPackets = rxPackets
        self.txPackets = txPackets
        self.rxBytes = rxBytes
        self.txBytes = txBytes
        self.rxErrors = rxErrors
        self.txErrors = txErrors
        self.rxDropped = rxDropped
        self.txDropped = txDropped
    }
}

/// A link-layer address (`IFLA_ADDRESS`, at most `MAX_ADDR_LEN` = 32 bytes), held inline up to 8 bytes and
/// truncated-with-length beyond (only Ethernet's 6 are ever printed).
public struct HardwareAddress: Sendable, Hashable, CustomStringConvertible {
    private var storage: UInt64 = 0
    public private(set) var count: Int = 0

    public init(bytes: some Collection<UInt8>) {
        var index = 0
        for byte in bytes.prefix(8) {
            self.storage |= UInt64(byte) << (UInt64(index) * 8)
            index += 1
        }
        self.count = min(bytes.count, 8)
    }

    /// An address from raw bytes (the first 8 kept), read as one word when there are 8 or more.
    @inline(__always)
    init(raw bytes: UnsafeRawBufferPointer) {
        if bytes.count >= 8 {
            self.storage = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        } else {
            for index in 0..<bytes.count { self.storage |= UInt64(bytes[index]) << (UInt64(index) * 8) }
        }
        self.count = min(bytes.count, 8)
    }

    public var bytes: [UInt8] { (0..<self.count).map { UInt8(truncatingIfNeeded: self.storage >> (UInt64($0) * 8)) } }

    /// `aa:bb:cc:dd:ee:ff`
    public var description: String {
        self.bytes.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }
}

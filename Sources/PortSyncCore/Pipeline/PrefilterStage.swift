/// The prefilter stage: decides on the raw message, before any attribute is decoded or any `String` built.
///
/// It reads the header's type, the ifindex and the `IFLA_IFNAME` bytes in place: only `RTM_NEWLINK` and
/// `RTM_DELLINK` (statement 13), names starting `Ethernet` or `PortChannel` (14), and not an old interface (28).
/// Everything else is ignored here at the cost of a header read and an attribute walk.
public struct PrefilterStage: Sendable {
    /// Interfaces present at a cold start (statement 22).
    public var oldInterfaces: Set<Int32>

    public init(oldInterfaces: Set<Int32> = []) { self.oldInterfaces = oldInterfaces }

    public enum Verdict: Sendable, Hashable {
        case pass
        case ignore(LinkVerdict.IgnoreReason)
        /// Not a link message at all (`NLMSG_DONE`, `NLMSG_ERROR`, another rtnetlink type).
        case notLink
    }

    /// `message` is one whole netlink message (header included) whose `nlmsg_len` has been checked.
    public func check(_ message: UnsafeRawBufferPointer) -> Verdict {
        guard message.count >= NetlinkLayout.messageHeader else { return .notLink }
        let type = message.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        guard type == NetlinkMessageType.newLink || type == NetlinkMessageType.delLink else { return .notLink }
        // A truncated ifinfomsg or attribute is left to the extract stage, which names the error.
        guard message.count >= NetlinkLayout.messageHeader + NetlinkLayout.ifinfo else { return .pass }
        let ifindex = message.loadUnaligned(fromByteOffset: NetlinkLayout.messageHeader + 4, as: Int32.self)
        var offset = NetlinkLayout.messageHeader + NetlinkLayout.ifinfo
        while offset + NetlinkLayout.attributeHeader <= message.count {
            let length = Int(message.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let attribute =
                message.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self) & ~NetlinkLayout.attributeFlagsMask
            guard length >= NetlinkLayout.attributeHeader, offset + length <= message.count else { return .pass }
            if attribute == LinkAttribute.ifname {
                let name = UnsafeRawBufferPointer(
                    rebasing: message[(offset + NetlinkLayout.attributeHeader)..<(offset + length)])
                guard Self.hasPortPrefix(name) else { return .ignore(.notAPort) }
                return self.oldInterfaces.contains(ifindex) ? .ignore(.oldInterface) : .pass
            }
            offset += NetlinkLayout.align(length)
        }
        return .ignore(.noName)
    }

    @inline(__always)
    static func hasPortPrefix(_ name: UnsafeRawBufferPointer) -> Bool {
        Self.hasPrefix(name, "Ethernet") || Self.hasPrefix(name, "PortChannel")
    }

    @inline(__always)
    static func hasPrefix(_ bytes: UnsafeRawBufferPointer, _ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard bytes.count >= count else { return false }
        return prefix.withUTF8Buffer { expected in
            for index in 0..<count where bytes[index] != expected[index] { return false }
            return true
        }
    }
}

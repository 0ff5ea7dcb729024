import PortSyncCore
import Testing

/// The decoder on hand-built messages: each malformation gives its precise `NetlinkDecodeError`.
@Suite("NetlinkDecoder: hand-built messages")
struct NetlinkDecoderMalformedTests {
    typealias B = NetlinkBuilder

    /// The single item of a datagram holding one link message with `attributes` (after a valid name).
    static func decodeOne(_ attributes: [[UInt8]], withName: Bool = true) -> NetlinkItem? {
        let items = NetlinkDecoder.decode(B.link(attributes: (withName ? [B.name("Ethernet0")] : []) + attributes))
        return items.count == 1 ? items[0] : nil
    }

    @Test("A well-formed hand-built message decodes to every field")
    func wellFormed() throws {
        let bytes = B.link(
            type: NetlinkMessageType.delLink, sequence: 9, ifindex: 12, flags: 0x41,
            attributes: [
                B.name("Ethernet12"), B.mtu(9100), B.master(4), B.linkInfo(kind: "veth"),
                B.attribute(LinkAttribute.carrierChanges, B.bytes(UInt32(5))),
                B.attribute(LinkAttribute.operstate, [6]),
                B.attribute(LinkAttribute.address, [2, 0, 0, 0, 0, 0x0C]),
                B.attribute(LinkAttribute.stats64, (1...8).flatMap { B.bytes(UInt64($0)) }),
            ])
        let expected = LinkMessage(
            kind: .delLink, sequence: 9, ifindex: 12, flags: [.up, .running], name: InterfaceName("Ethernet12"),
            mtu: 9100, master: 4, linkKind: InterfaceName("veth"), carrierChanges: 5, operState: 6,
            address: HardwareAddress(bytes: [2, 0, 0, 0, 0, 0x0C]),
            stats: LinkStatistics(
                rxPackets: 1, txPackets: 2, rxBytes: 3, txBytes: 4, rxErrors: 5, txErrors: 6, rxDropped: 7,
                txDropped: 8))
        #expect(NetlinkDecoder.decode(bytes) == [.link(expected)])
        #expect(HardwareAddress(bytes: [2, 0, 0, 0, 0, 0x0C]).description == "02:00:00:00:00:0c")
    }

    @Test("nla_len below 4")
    func attributeLengthBelowHeader() {
        let attribute: [UInt8] = B.bytes(UInt16(3)) + B.bytes(LinkAttribute.mtu)
        #expect(
            Self.decodeOne([attribute])
                == .malformed(.badAttributeLength(attribute: LinkAttribute.mtu, length: 3, remaining: 4)))
    }

    @Test("nla_len past the end of the message")
    func attributeLengthPastEnd() {
        let attribute = B.attribute(LinkAttribute.mtu, B.bytes(UInt32(1500)), length: 20)
        #expect(
            Self.decodeOne([attribute])
                == .malformed(.badAttributeLength(attribute: LinkAttribute.mtu, length: 20, remaining: 8)))
    }

    @Test("Trailing bytes too short for an attribute header")
    func trailingPartialAttribute() {
        // nlmsg_len covers two stray bytes after the name.
        let bytes = B.message(
            type: NetlinkMessageType.newLink,
            payload: B.ifinfo(ifindex: 1, flags: 0) + B.name("Ethernet0") + [0xAA, 0xBB])
        #expect(
            NetlinkDecoder.decode(bytes) == [.malformed(.badAttributeLength(attribute: 0, length: 2, remaining: 2))])
    }

    @Test("IFLA_IFNAME without its NUL, empty, and longer than 15 bytes")
    func badNames() {
        let ifname = LinkAttribute.ifname
        #expect(
            Self.decodeOne([B.attribute(ifname, Array("Ethernet0".utf8))], withName: false)
                == .malformed(.invalidAttribute(attribute: ifname, reason: .missingTerminator)))
        #expect(
            Self.decodeOne([B.attribute(ifname, [0])], withName: false)
                == .malformed(.invalidAttribute(attribute: ifname, reason: .emptyName)))
        #expect(
            Self.decodeOne([B.attribute(ifname, [])], withName: false)
                == .malformed(.invalidAttribute(attribute: ifname, reason: .missingTerminator)))
        #expect(
            Self.decodeOne([B.name("Ethernet01234567")], withName: false)
                == .malformed(.invalidAttribute(attribute: ifname, reason: .nameTooLong)))
        // 15 bytes is the longest name the kernel allows, and it is accepted.
        guard case .link(let message) = Self.decodeOne([B.name("Ethernet0123456")], withName: false) else {
            Issue.record("a 15-byte name was rejected")
            return
        }
        #expect(message.name?.string == "Ethernet0123456")
    }

    @Test("IFLA_IFNAME twice, even the same name: the prefilter judged the first, so the message is refused")
    func repeatedName() {
        let ifname = LinkAttribute.ifname
        for second in ["Bridge", "Ethernet0", "Ethernet4"] {
            #expect(
                Self.decodeOne([B.name(second)])
                    == .malformed(.invalidAttribute(attribute: ifname, reason: .repeated)), "\(second)")
        }
    }

    @Test("Fixed-size attributes of the wrong size")
    func wrongSizes() {
        #expect(
            Self.decodeOne([B.attribute(LinkAttribute.mtu, [0xDC, 0x05])])
                == .malformed(.invalidAttribute(attribute: LinkAttribute.mtu, reason: .wrongSize)))
        #expect(
            Self.decodeOne([B.attribute(LinkAttribute.stats64, [UInt8](repeating: 1, count: 12))])
                == .malformed(.invalidAttribute(attribute: LinkAttribute.stats64, reason: .wrongSize)))
        #expect(
            Self.decodeOne([B.attribute(LinkAttribute.master, [6, 0, 0, 0, 0, 0, 0, 0])])
                == .malformed(.invalidAttribute(attribute: LinkAttribute.master, reason: .wrongSize)))
        #expect(
            Self.decodeOne([B.attribute(LinkAttribute.operstate, [6, 0])])
                == .malformed(.invalidAttribute(attribute: LinkAttribute.operstate, reason: .wrongSize)))
        #expect(
            Self.decodeOne([B.attribute(LinkAttribute.address, [UInt8](repeating: 1, count: 33))])
                == .malformed(.invalidAttribute(attribute: LinkAttribute.address, reason: .addressTooLong)))
    }

    @Test("Nested IFLA_LINKINFO whose inner attribute has a bad length")
    func nestedBadLength() {
        let inner = B.attribute(LinkAttribute.infoKind, Array("veth".utf8) + [0], length: 40)
        #expect(inner.count == 12)
        #expect(
            Self.decodeOne([B.attribute(LinkAttribute.linkinfo, inner)])
                == .malformed(.badAttributeLength(attribute: LinkAttribute.infoKind, length: 40, remaining: 12)))
        let unterminated = B.attribute(LinkAttribute.infoKind, Array("veth".utf8))
        #expect(
            Self.decodeOne([B.attribute(LinkAttribute.linkinfo, unterminated)])
                == .malformed(.invalidAttribute(attribute: LinkAttribute.infoKind, reason: .missingTerminator)))
    }

    @Test("nlmsg_len below the header size, and past the datagram")
    func badMessageLengths() {
        let good = B.link(attributes: [B.name("Ethernet0")])
        let short = B.message(type: NetlinkMessageType.newLink, payload: Array(good.dropFirst(16)), length: 12)
        #expect(NetlinkDecoder.decode(short) == [.malformed(.badMessageLength(length: 12, remaining: good.count))])
        let long = B.message(
            type: NetlinkMessageType.newLink, payload: Array(good.dropFirst(16)), length: good.count + 4)
        #expect(
            NetlinkDecoder.decode(long) == [
                .malformed(.badMessageLength(length: good.count + 4, remaining: good.count))
            ])
        // Framing is lost, so nothing after a bad nlmsg_len is decoded.
        #expect(NetlinkDecoder.decode(short + good).count == 1)
        #expect(NetlinkDecoder.decode(Array(good.prefix(10))) == [.malformed(.truncatedHeader(remaining: 10))])
        #expect(NetlinkDecoder.decode([]) == [])
    }

    @Test("A payload shorter than ifinfomsg, or than NLMSG_ERROR's errno")
    func truncatedPayloads() {
        for type in [NetlinkMessageType.newLink, NetlinkMessageType.delLink] {
            let bytes = B.message(type: type, payload: B.ifinfo(ifindex: 3, flags: 1, length: 8))
            #expect(NetlinkDecoder.decode(bytes) == [.malformed(.truncatedPayload(type: type, length: 8))])
        }
        let error = B.message(type: NetlinkMessageType.error, payload: [])
        #expect(
            NetlinkDecoder.decode(error) == [.malformed(.truncatedPayload(type: NetlinkMessageType.error, length: 0))])
        let nack = B.message(type: NetlinkMessageType.error, sequence: 5, payload: B.bytes(Int32(-105)) + [0, 0, 0, 0])
        #expect(NetlinkDecoder.decode(nack) == [.error(code: -105, sequence: 5)])
    }

    @Test("A malformed message in the middle is reported and the messages after it are still decoded")
    func malformedInTheMiddle() throws {
        let first = B.link(ifindex: 1, attributes: [B.name("Ethernet0"), B.mtu(9100)])
        let bad = B.link(ifindex: 2, attributes: [B.name("Ethernet4"), B.attribute(LinkAttribute.mtu, [1, 2])])
        let last = B.link(type: NetlinkMessageType.delLink, ifindex: 3, attributes: [B.name("Ethernet8")])
        let items = NetlinkDecoder.decode(first + bad + last)
        let ethernet0 = try #require(InterfaceName("Ethernet0"))
        let ethernet8 = try #require(InterfaceName("Ethernet8"))
        #expect(
            items == [
                .link(LinkMessage(kind: .newLink, ifindex: 1, flags: [], name: ethernet0, mtu: 9100)),
                .malformed(.invalidAttribute(attribute: LinkAttribute.mtu, reason: .wrongSize)),
                .link(LinkMessage(kind: .delLink, ifindex: 3, flags: [], name: ethernet8)),
            ])
    }

    @Test("Unknown attributes are skipped")
    func unknownAttributes() throws {
        let bytes = B.link(attributes: [
            B.attribute(999, [1, 2, 3, 4, 5]), B.name("Ethernet0"), B.attribute(0x3FFF, []), B.mtu(1500),
        ])
        let name = try #require(InterfaceName("Ethernet0"))
        #expect(
            NetlinkDecoder.decode(bytes) == [
                .link(LinkMessage(kind: .newLink, ifindex: 7, flags: [], name: name, mtu: 1500))
            ])
    }

    @Test("An attribute type with NLA_F_NESTED (or NLA_F_NET_BYTEORDER) set is still recognised")
    func nestedFlag() throws {
        let bytes = B.link(attributes: [
            B.attribute(LinkAttribute.ifname | 0x4000, Array("Ethernet0".utf8) + [0]),
            B.linkInfo(kind: "team", type: LinkAttribute.linkinfo | 0x8000),
        ])
        guard case .link(let message) = try #require(NetlinkDecoder.decode(bytes).first) else {
            Issue.record("not decoded as a link")
            return
        }
        #expect(message.name?.string == "Ethernet0")
        #expect(message.linkKind?.string == "team")
    }

    @Test("Message types other than NEWLINK and DELLINK are not links")
    func otherTypes() {
        let done = B.message(type: NetlinkMessageType.done, sequence: 42, portID: 77, payload: B.bytes(Int32(0)))
        #expect(NetlinkDecoder.decode(done) == [.done(sequence: 42, portID: 77)])
        let getLink = B.message(type: NetlinkMessageType.getLink, payload: B.ifinfo(ifindex: 1, flags: 1))
        #expect(NetlinkDecoder.decode(getLink) == [.other(type: NetlinkMessageType.getLink)])
        #expect(NetlinkDecoder.decode(B.message(type: NetlinkMessageType.noop, payload: [])) == [.other(type: 1)])
    }
}

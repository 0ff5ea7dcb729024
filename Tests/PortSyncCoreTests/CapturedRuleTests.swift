import PortSyncCore
import Testing

/// Statements 13 and 16 on datagrams the kernel sent (`scripts/capture-netlink-fixtures.py groups portchannel`),
/// through the daemon's own pipeline (`PipelineCore`: framing, prefilter, extract, validate, hand-off).
///
/// The daemon's event socket joins only RTMGRP_LINK, so the kernel alone never sends it the other rtnetlink types
/// (`test_s13_non_link_rtnetlink_traffic_writes_nothing` forwards some to it); this kernel has no team driver, so no
/// end-to-end test can make a team link. Here both rules get input that breaks them if they go: real address, route
/// and neighbour messages (an `RTM_NEWADDR` carries the port's name in `IFA_LABEL`, the attribute number of
/// `IFLA_IFNAME`), and real link messages whose kind is made `team`.
@Suite("SONiC rules on captured datagrams")
struct CapturedRuleTests {
    /// Records every update the pipeline accepts, in order.
    struct Recorder: PipelineObserver, Sendable {
        var updates: [PortUpdate] = []

        mutating func accepted(_ message: LinkMessage, update: PortUpdate, flapping: Bool, trace: UInt64) {
            self.updates.append(update)
        }
    }

    static func pipeline() -> PipelineCore<Recorder> {
        PipelineCore(settings: Config.Pipeline(), observer: Recorder())
    }

    /// `nlmsg_type`, read from the bytes (not by the decoder under test).
    static func type(_ message: ArraySlice<UInt8>) -> UInt16 {
        UInt16(message[message.startIndex + 4]) | UInt16(message[message.startIndex + 5]) << 8
    }

    static func isLink(_ message: ArraySlice<UInt8>) -> Bool {
        let type = Self.type(message)
        return type == NetlinkMessageType.newLink || type == NetlinkMessageType.delLink
    }

    /// The datagrams of `set`, step after step in the order given (the order of the capture), each step's in the
    /// order the kernel sent them; every step on disk must be listed.
    static func captured(_ set: String, steps: [String]) throws -> [Fixture] {
        let all = try Fixtures.all(in: set)
        #expect(Set(all.map(\.step)) == Set(steps), "the \(set) fixtures and the capture steps differ")
        return steps.flatMap { step in all.filter { $0.step == step } }
    }

    // MARK: - Statement 13

    static let groupSteps = [
        "port-create", "port-up", "addr-add", "route-add", "neigh-add", "addr6-add", "addr-dump", "route-del",
        "neigh-del", "addr-del", "mtu-change", "port-delete",
    ]

    @Test("s13: real address, route and neighbour datagrams among link ones: only RTM_NEWLINK/RTM_DELLINK give updates")
    func s13CapturedGroups() throws {
        let datagrams = try Self.captured("groups", steps: Self.groupSteps).map(\.bytes)
        // An `ip link show Ethernet0` request: a link message in all but its type (RTM_GETLINK).
        let getLink = NetlinkBuilder.message(
            type: NetlinkMessageType.getLink, flags: NetlinkMessageFlags.request,
            payload: NetlinkBuilder.ifinfo(ifindex: 3, flags: 0) + NetlinkBuilder.name("Ethernet0"))
        let mixed = datagrams + [getLink]

        // Split independently of the decoder: the link messages alone, and the others.
        var linksOnly: [[UInt8]] = []
        var others: [ArraySlice<UInt8>] = []
        for datagram in mixed {
            let messages = try Fixtures.messageRanges(datagram).map { datagram[$0] }
            others += messages.filter { !Self.isLink($0) }
            let links = messages.filter(Self.isLink).flatMap { NetlinkBuilder.padded(Array($0)) }
            if !links.isEmpty { linksOnly.append(links) }
        }
        let otherTypes = Set(others.map(Self.type))
        // RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWNEIGH, RTM_DELNEIGH, NLMSG_DONE, RTM_GETLINK.
        #expect(otherTypes == [20, 21, 24, 25, 28, 29, NetlinkMessageType.done, NetlinkMessageType.getLink])
        // Some of them name the port where a link message has its name: an IPv4 address's IFA_LABEL.
        let labelled = others.filter { Self.type($0) == 20 && Self.contains($0, Array("Ethernet0".utf8) + [0]) }
        #expect(labelled.count >= 2, "RTM_NEWADDR messages naming Ethernet0")

        var reference = Self.pipeline()
        for datagram in linksOnly { datagram.withUnsafeBytes { reference.process(datagram: $0, now: 1) } }
        let expected = reference.observer.updates
        // Ethernet0's life: created with mtu 9100, up, running, mtu 1400, deleted; peer0 is not a port.
        #expect(expected.allSatisfy { $0.port == "Ethernet0" })
        #expect(expected.first == .state(port: "Ethernet0", PortOperState(adminUp: false, operUp: false, mtu: 9100)))
        #expect(expected.contains(.state(port: "Ethernet0", PortOperState(adminUp: true, operUp: true, mtu: 9100))))
        #expect(expected.contains(.state(port: "Ethernet0", PortOperState(adminUp: true, operUp: true, mtu: 1400))))
        #expect(expected.last == .deleted(port: "Ethernet0"))
        #expect(expected.filter { if case .deleted = $0 { true } else { false } }.count == 1)

        // Each datagram as the kernel sent it, then all of them as one datagram (the types mixed within it).
        for whole in [false, true] {
            var core = Self.pipeline()
            if whole {
                let one = mixed.flatMap(NetlinkBuilder.padded)
                one.withUnsafeBytes { core.process(datagram: $0, now: 1) }
            } else {
                for datagram in mixed { datagram.withUnsafeBytes { core.process(datagram: $0, now: 1) } }
            }
            #expect(core.observer.updates == expected, "whole: \(whole)")
            #expect(core.messages.other == UInt64(others.count), "whole: \(whole)")
            #expect(core.messages.malformed.isEmpty, "whole: \(whole)")
            #expect(core.stages.total(.prefilter, reason: .notLink) == UInt64(others.count), "whole: \(whole)")
            #expect(core.stages.total(.extract) == reference.stages.total(.extract), "whole: \(whole)")
        }
        // And one by one: the prefilter stops each at its header, as the decoder classifies it.
        for message in others {
            let bytes = Array(message)
            bytes.withUnsafeBytes { raw in
                #expect(PrefilterStage().check(raw) == .notLink, "type \(Self.type(message))")
                if case .link = NetlinkDecoder.decodeMessage(raw) {
                    Issue.record("type \(Self.type(message)) decoded as a link")
                }
            }
        }
    }

    static func contains(_ haystack: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        let bytes = Array(haystack)
        return (0...(bytes.count - needle.count)).contains { Array(bytes[$0..<($0 + needle.count)]) == needle }
    }

    // MARK: - Statement 16

    static let portChannelSteps = ["create", "admin-up", "carrier-up", "admin-down", "delete"]

    /// `datagram` with the value of its one `IFLA_LINKINFO`/`IFLA_INFO_KIND` attribute replaced by `kind`, which
    /// must have the old value's length, so that no length or padding changes. Found by walking the attributes
    /// here, not by the decoder under test.
    static func withKind(_ datagram: [UInt8], _ kind: String) throws -> (bytes: [UInt8], kindRange: Range<Int>) {
        var bytes = datagram
        var found: [Range<Int>] = []
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func walk(_ range: Range<Int>, _ body: (Int, Range<Int>) -> Void) {
            var offset = range.lowerBound
            while offset + 4 <= range.upperBound {
                let length = u16(offset)
                guard length >= 4, offset + length <= range.upperBound else { return }
                body(u16(offset + 2) & 0x3FFF, (offset + 4)..<(offset + length))
                offset += NetlinkLayout.align(length)
            }
        }
        for message in try Fixtures.messageRanges(datagram) {
            walk((message.lowerBound + NetlinkLayout.messageHeader + NetlinkLayout.ifinfo)..<message.upperBound) {
                type, value in
                guard type == LinkAttribute.linkinfo else { return }
                walk(value) { inner, kindValue in if inner == LinkAttribute.infoKind { found.append(kindValue) } }
            }
        }
        let range = try #require(found.count == 1 ? found.first : nil, "one IFLA_INFO_KIND")
        let replacement = Array(kind.utf8) + [0]
        try #require(range.count == replacement.count, "same length: \(range.count) and \(replacement.count)")
        bytes.replaceSubrange(range, with: replacement)
        return (bytes, range)
    }

    @Test("s16: real PortChannel9 datagrams of kind team are ignored, NEWLINK and DELLINK; the same with veth are not")
    func s16CapturedTeam() throws {
        // The kernel here has no team driver: these are a veth's datagrams, captured whole, whose IFLA_INFO_KIND
        // "veth" is replaced by "team" (same length), which is what a team link's messages carry.
        let veth = try Self.captured("portchannel", steps: Self.portChannelSteps).map(\.bytes)
        var team: [[UInt8]] = []
        for original in veth {
            let (rewritten, range) = try Self.withKind(original, "team")
            // Only the kind's letters changed; every length, flag and other attribute is the kernel's.
            #expect(Array(original[range]) == Array("veth".utf8) + [0])
            #expect(original[..<range.lowerBound] == rewritten[..<range.lowerBound])
            #expect(original[range.upperBound...] == rewritten[range.upperBound...])
            team.append(rewritten)
        }

        var accepted = Self.pipeline()
        for datagram in veth { datagram.withUnsafeBytes { accepted.process(datagram: $0, now: 1) } }
        var ignored = Self.pipeline()
        for datagram in team { datagram.withUnsafeBytes { ignored.process(datagram: $0, now: 1) } }

        // The same messages reach the validate stage either way: PortChannel9's, NEWLINK and DELLINK.
        let portChannel = veth.flatMap(NetlinkDecoder.decode).compactMap { item -> LinkMessage? in
            guard case .link(let message) = item, message.name?.string == "PortChannel9" else { return nil }
            return message
        }
        #expect(Set(portChannel.map(\.kind)) == [.newLink, .delLink])
        #expect(portChannel.allSatisfy { $0.linkKind?.string == "veth" })
        #expect(accepted.stages.total(.validate) == UInt64(portChannel.count))
        #expect(ignored.stages.total(.validate) == UInt64(portChannel.count))

        // veth: every PortChannel9 message is an update, its deletion last.
        #expect(accepted.observer.updates.count == portChannel.count)
        #expect(accepted.observer.updates.allSatisfy { $0.port == "PortChannel9" })
        #expect(
            accepted.observer.updates.contains(
                .state(port: "PortChannel9", PortOperState(adminUp: true, operUp: true, mtu: 9100))))
        #expect(accepted.observer.updates.last == .deleted(port: "PortChannel9"))
        // team: none is, each ignored for its kind.
        #expect(ignored.observer.updates.isEmpty)
        #expect(ignored.stages.total(.validate, reason: .team) == UInt64(portChannel.count))
        #expect(ignored.handoff.isEmpty && ignored.messages.malformed.isEmpty)

        // The whole-message rules agree, on each decoded datagram.
        let filter = LinkFilter()
        for datagram in team {
            for case .link(let message) in NetlinkDecoder.decode(datagram) where message.name?.string == "PortChannel9"
            {
                #expect(message.linkKind?.string == "team")
                #expect(filter.classify(message) == .ignore(.team), "\(message.kind)")
            }
        }
    }
}

import PortSyncCore
import Testing

/// The decoder on real kernel datagrams: exact content, the multipart dump, and robustness against every
/// truncation and every flipped byte.
@Suite("NetlinkDecoder: captured datagrams")
struct NetlinkDecoderTests {
    /// What one captured message must decode to. `full` means a whole `AF_UNSPEC` link message, which carries
    /// `IFLA_CARRIER_CHANGES` and `IFLA_STATS64`; the `AF_BRIDGE` ones do not.
    struct Expected {
        var fixture: String
        var kind: LinkMessage.Kind = .newLink
        var ifindex: Int32
        var flags: UInt32
        var name: String
        var mtu: UInt32
        var master: UInt32 = 0
        var linkKind: String?
        var full = true
    }

    static let down: UInt32 = 0x1002  // BROADCAST | MULTICAST
    static let adminUp: UInt32 = 0x1003  // + UP
    static let carrier: UInt32 = 0x11003  // + LOWER_UP
    static let running: UInt32 = 0x11043  // + RUNNING

    /// Every single-message fixture. Ethernet0 is ifindex 3, peer0 2, pcpeer 4, PortChannel0001 5, Bridge 6.
    static let expected: [Expected] = [
        .init(fixture: "veth-create-0", ifindex: 2, flags: down, name: "peer0", mtu: 1500, linkKind: "veth"),
        .init(fixture: "veth-create-1", ifindex: 3, flags: down, name: "Ethernet0", mtu: 9100, linkKind: "veth"),
        .init(fixture: "admin-up-0", ifindex: 3, flags: adminUp, name: "Ethernet0", mtu: 9100, linkKind: "veth"),
        .init(fixture: "peer-up-0", ifindex: 2, flags: carrier, name: "peer0", mtu: 1500, linkKind: "veth"),
        .init(fixture: "peer-up-1", ifindex: 2, flags: running, name: "peer0", mtu: 1500, linkKind: "veth"),
        .init(fixture: "peer-up-2", ifindex: 3, flags: running, name: "Ethernet0", mtu: 9100, linkKind: "veth"),
        .init(fixture: "admin-down-0", ifindex: 3, flags: down, name: "Ethernet0", mtu: 9100, linkKind: "veth"),
        .init(fixture: "admin-down-1", ifindex: 2, flags: adminUp, name: "peer0", mtu: 1500, linkKind: "veth"),
        .init(fixture: "mtu-change-0", ifindex: 3, flags: down, name: "Ethernet0", mtu: 1500, linkKind: "veth"),
        .init(fixture: "portchannel-create-0", ifindex: 4, flags: down, name: "pcpeer", mtu: 1500, linkKind: "veth"),
        .init(
            fixture: "portchannel-create-1", ifindex: 5, flags: down, name: "PortChannel0001", mtu: 1500,
            linkKind: "veth"),
        .init(fixture: "bridge-enslave-0", ifindex: 6, flags: down, name: "Bridge", mtu: 1500, linkKind: "bridge"),
        .init(
            fixture: "bridge-master-0", ifindex: 3, flags: down, name: "Ethernet0", mtu: 1500, master: 6,
            linkKind: "veth"),
        .init(
            fixture: "bridge-master-1", ifindex: 3, flags: down, name: "Ethernet0", mtu: 1500, master: 6,
            linkKind: "veth"),
        .init(fixture: "bridge-master-2", ifindex: 6, flags: down, name: "Bridge", mtu: 1500, linkKind: "bridge"),
        .init(
            fixture: "bridge-master-3", ifindex: 3, flags: down, name: "Ethernet0", mtu: 1500, master: 6, full: false),
        .init(fixture: "bridge-master-4", ifindex: 6, flags: down, name: "Bridge", mtu: 1500, linkKind: "bridge"),
        .init(
            fixture: "bridge-release-0", ifindex: 3, flags: down, name: "Ethernet0", mtu: 1500, master: 6,
            linkKind: "veth"),
        .init(
            fixture: "bridge-release-1", ifindex: 3, flags: down, name: "Ethernet0", mtu: 1500, master: 6, full: false),
        .init(
            fixture: "bridge-release-2", kind: .delLink, ifindex: 3, flags: down, name: "Ethernet0", mtu: 1500,
            master: 6, full: false),
        .init(fixture: "bridge-release-3", ifindex: 3, flags: down, name: "Ethernet0", mtu: 1500, linkKind: "veth"),
        .init(fixture: "bridge-release-4", ifindex: 6, flags: down, name: "Bridge", mtu: 1500, linkKind: "bridge"),
        .init(fixture: "bridge-release-5", ifindex: 6, flags: down, name: "Bridge", mtu: 1500, linkKind: "bridge"),
        .init(fixture: "veth-delete-0", ifindex: 2, flags: down, name: "peer0", mtu: 1500, linkKind: "veth"),
        .init(
            fixture: "veth-delete-1", kind: .delLink, ifindex: 3, flags: down, name: "Ethernet0", mtu: 1500,
            linkKind: "veth"),
        .init(
            fixture: "veth-delete-2", kind: .delLink, ifindex: 2, flags: down, name: "peer0", mtu: 1500,
            linkKind: "veth"),
    ]

    static func check(_ message: LinkMessage, _ expected: Expected, sequence: UInt32 = 0) {
        #expect(message.kind == expected.kind, "\(expected.fixture)")
        #expect(message.sequence == sequence, "\(expected.fixture)")
        #expect(message.ifindex == expected.ifindex, "\(expected.fixture)")
        #expect(message.flags.rawValue == expected.flags, "\(expected.fixture)")
        #expect(message.name?.string == expected.name, "\(expected.fixture)")
        #expect(message.mtu == expected.mtu, "\(expected.fixture)")
        #expect(message.master == expected.master, "\(expected.fixture)")
        #expect(message.linkKind?.string == expected.linkKind, "\(expected.fixture)")
        #expect((message.carrierChanges != nil) == expected.full, "\(expected.fixture)")
        #expect((message.stats != nil) == expected.full, "\(expected.fixture)")
        #expect(message.address?.count == 6, "\(expected.fixture)")
    }

    @Test("Every captured event decodes whole to its exact content")
    func capturedEvents() throws {
        let all = try Fixtures.all()
        #expect(Set(all.filter { $0.step != "dump" }.map(\.name)) == Set(Self.expected.map(\.fixture)))
        for expected in Self.expected {
            let items = NetlinkDecoder.decode(try Fixtures.bytes(expected.fixture))
            try #require(items.count == 1, "\(expected.fixture)")
            guard case .link(let message) = items[0] else {
                Issue.record("\(expected.fixture) decoded to \(items[0])")
                continue
            }
            Self.check(message, expected)
        }
    }

    @Test("Flag bits: admin-up is UP without RUNNING; peer-up brings LOWER_UP then RUNNING")
    func flagBits() throws {
        let adminUp = try #require(Self.link(try Fixtures.bytes("admin-up-0")))
        #expect(adminUp.isAdminUp && !adminUp.isOperUp)
        #expect(!adminUp.flags.contains(.lowerUp))
        let carrier = try #require(Self.link(try Fixtures.bytes("peer-up-0")))
        #expect(carrier.isAdminUp && carrier.flags.contains(.lowerUp) && !carrier.isOperUp)
        let running = try #require(Self.link(try Fixtures.bytes("peer-up-2")))
        #expect(running.isAdminUp && running.isOperUp)
        let down = try #require(Self.link(try Fixtures.bytes("admin-down-0")))
        #expect(!down.isAdminUp && !down.isOperUp)
    }

    static func link(_ bytes: [UInt8]) -> LinkMessage? {
        guard let first = NetlinkDecoder.decode(bytes).first, case .link(let message) = first else { return nil }
        return message
    }

    @Test("The dump: every part is a link with sequence 42, and the last item is NLMSG_DONE")
    func dump() throws {
        let parts = try Fixtures.step("dump")
        #expect(parts.map(\.index) == Array(0..<parts.count))
        let items = parts.flatMap { NetlinkDecoder.decode($0.bytes) }
        let last = try #require(items.last)
        guard case .done(let sequence, let portID) = last else {
            Issue.record("the dump ends with \(last)")
            return
        }
        #expect(sequence == 42)
        var names: [String] = []
        for item in items.dropLast() {
            guard case .link(let message) = item else {
                Issue.record("dump item \(item) is not a link")
                continue
            }
            #expect(message.kind == .newLink)
            #expect(message.sequence == 42)
            #expect(message.portID == portID)
            names.append(message.name?.string ?? "")
        }
        #expect(names == ["lo", "pcpeer", "PortChannel0001", "Bridge", "Ethernet8", "Ethernet4"])
        // Each part but the last holds several messages; the last holds only NLMSG_DONE.
        #expect(parts.dropLast().allSatisfy { NetlinkDecoder.decode($0.bytes).count > 1 })
        #expect(NetlinkDecoder.decode(try #require(parts.last).bytes).count == 1)
        guard case .link(let loopback) = items[0] else { return }
        #expect(loopback.ifindex == 1 && loopback.mtu == 65536 && loopback.flags.contains(.loopback))
        #expect(loopback.linkKind == nil)
        guard case .link(let ethernet4) = items[5] else { return }
        Self.check(
            ethernet4,
            Expected(fixture: "dump-1", ifindex: 8, flags: Self.down, name: "Ethernet4", mtu: 1500, linkKind: "veth"),
            sequence: 42)
    }

    @Test("All datagrams concatenated decode to the concatenation of each one's items")
    func concatenation() throws {
        let all = try Fixtures.all()
        let whole = NetlinkDecoder.decode(all.flatMap(\.bytes))
        #expect(whole == all.flatMap { NetlinkDecoder.decode($0.bytes) })
        #expect(!whole.contains { if case .malformed = $0 { true } else { false } })
    }

    @Test("Every fixture cut at every length loses only whole messages at the end, then at most one .malformed")
    func everyTruncation() throws {
        var failures: [String] = []
        for fixture in try Fixtures.all() {
            let full = NetlinkDecoder.decode(fixture.bytes)
            let ranges = try Fixtures.messageRanges(fixture.bytes)
            #expect(full.count == ranges.count, "\(fixture)")
            fixture.bytes.withUnsafeBytes { buffer in
                for length in 0...buffer.count {
                    var items: [NetlinkItem] = []
                    NetlinkDecoder.forEach(in: UnsafeRawBufferPointer(rebasing: buffer[..<length])) { items.append($0) }
                    // The messages that fit whole are decoded as before; the one that was cut is reported once.
                    let whole = ranges.filter { $0.upperBound <= length }
                    var expected = Array(full.prefix(whole.count))
                    let start = whole.last.map { NetlinkLayout.align($0.upperBound) } ?? 0
                    if length > start {
                        guard whole.count < ranges.count else {
                            failures.append("\(fixture) cut at \(length): trailing bytes after the last message")
                            continue
                        }
                        let remaining = length - start
                        expected.append(
                            .malformed(
                                remaining < NetlinkLayout.messageHeader
                                    ? .truncatedHeader(remaining: remaining)
                                    : .badMessageLength(length: ranges[whole.count].count, remaining: remaining)))
                    }
                    if items != expected { failures.append("\(fixture) cut at \(length)") }
                    // The general property, independent of the exact error chosen.
                    let body = items.last.map(Self.isMalformed) == true ? items.dropLast() : items[...]
                    if !full.starts(with: body) || body.contains(where: Self.isMalformed) {
                        failures.append("\(fixture) cut at \(length): not a prefix")
                    }
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(20))")
    }

    static func isMalformed(_ item: NetlinkItem) -> Bool {
        if case .malformed = item { return true }
        return false
    }

    @Test("Every fixture with any one byte flipped decodes without trapping and names stay within IFNAMSIZ")
    func everyFlippedByte() throws {
        var failures: [String] = []
        var decodedItems = 0
        for fixture in try Fixtures.all() {
            var bytes = fixture.bytes
            for index in bytes.indices {
                bytes[index] ^= 0xFF
                for item in NetlinkDecoder.decode(bytes) {
                    decodedItems += 1
                    guard case .link(let message) = item else { continue }
                    if let name = message.name, name.count > InterfaceName.maxLength || name.bytes.contains(0) {
                        failures.append("\(fixture) byte \(index): name \(name)")
                    }
                    if let kind = message.linkKind, kind.count > InterfaceName.maxLength {
                        failures.append("\(fixture) byte \(index): kind \(kind)")
                    }
                }
                bytes[index] ^= 0xFF
            }
            #expect(bytes == fixture.bytes)
        }
        #expect(InterfaceName.maxLength == 15)
        #expect(decodedItems > 0)
        #expect(failures.isEmpty, "\(failures.prefix(20))")
    }
}

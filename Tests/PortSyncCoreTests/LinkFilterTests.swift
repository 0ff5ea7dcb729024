import PortSyncCore
import Testing

/// SONiC's per-message rules (`docs/sonic-contract.md`), each test named after its statement.
@Suite("LinkFilter")
struct LinkFilterTests {
    static func message(
        _ name: String?, kind: LinkMessage.Kind = .newLink, ifindex: Int32 = 10,
        flags: InterfaceFlags = [.up, .running],
        mtu: UInt32? = 9100, master: UInt32 = 0, linkKind: String? = nil
    ) throws -> LinkMessage {
        let interfaceName = try name.map { try #require(InterfaceName($0), "bad test name \($0)") }
        let kindName = try linkKind.map { try #require(InterfaceName($0), "bad test kind \($0)") }
        return LinkMessage(
            kind: kind, ifindex: ifindex, flags: flags, name: interfaceName, mtu: mtu, master: master,
            linkKind: kindName)
    }

    static func accepted(_ port: String, adminUp: Bool = true, operUp: Bool = true, mtu: UInt32 = 9100) -> LinkVerdict {
        .accept(.state(port: port, PortOperState(adminUp: adminUp, operUp: operUp, mtu: mtu)))
    }

    let filter = LinkFilter()

    @Test("s13: message types other than RTM_NEWLINK/RTM_DELLINK are not links")
    func s13OtherTypes() {
        let payload = NetlinkBuilder.ifinfo(ifindex: 3, flags: 0x41) + NetlinkBuilder.name("Ethernet0")
        for type: UInt16 in [20, 18, 24, 1, 4] {
            #expect(NetlinkDecoder.decode(NetlinkBuilder.message(type: type, payload: payload)) == [.other(type: type)])
        }
        let newLink = NetlinkDecoder.decode(NetlinkBuilder.message(type: NetlinkMessageType.newLink, payload: payload))
        #expect(newLink.count == 1 && newLink.allSatisfy { if case .link = $0 { true } else { false } })
    }

    @Test(
        "s14: names starting with Ethernet or PortChannel are accepted",
        arguments: ["Ethernet0", "Ethernet-IB0", "Ethernet-Rec0", "Ethernet0.10", "PortChannel0001", "Ethernet"])
    func s14Accepted(name: String) throws {
        #expect(self.filter.classify(try Self.message(name)) == Self.accepted(name))
        #expect(self.filter.classify(try Self.message(name, kind: .delLink)) == .accept(.deleted(port: name)))
    }

    @Test(
        "s14: other names are ignored as not a port, case sensitive",
        arguments: [
            "eth0", "lo", "Vlan10", "Bridge", "Eth1/1", "ethernet0", "ETHERNET0", "portchannel1", "Etherne", "dummy",
        ])
    func s14Ignored(name: String) throws {
        #expect(self.filter.classify(try Self.message(name)) == .ignore(.notAPort))
        #expect(self.filter.classify(try Self.message(name, kind: .delLink)) == .ignore(.notAPort))
    }

    @Test("s14: of the captured dump, only the Ethernet and PortChannel links are accepted")
    func s14CapturedDump() throws {
        var accepted: [String] = []
        var ignored: [String] = []
        for item in try Fixtures.step("dump").flatMap({ NetlinkDecoder.decode($0.bytes) }) {
            guard case .link(let message) = item else { continue }
            switch self.filter.classify(message) {
            case .accept(let update): accepted.append(update.port)
            case .ignore(.notAPort): ignored.append(message.name?.string ?? "")
            case let other: Issue.record("\(message.name?.escaped ?? "?"): \(other)")
            }
        }
        #expect(accepted == ["PortChannel0001", "Ethernet8", "Ethernet4"])
        #expect(ignored == ["lo", "pcpeer", "Bridge"])
    }

    @Test("s15: admin from IFF_UP, oper from IFF_RUNNING only")
    func s15Flags() throws {
        #expect(
            self.filter.classify(try Self.message("Ethernet0", flags: [.up]))
                == Self.accepted("Ethernet0", operUp: false))
        #expect(
            self.filter.classify(try Self.message("Ethernet0", flags: [.lowerUp]))
                == Self.accepted("Ethernet0", adminUp: false, operUp: false))
        #expect(
            self.filter.classify(try Self.message("Ethernet0", flags: [.up, .lowerUp]))
                == Self.accepted("Ethernet0", operUp: false))
        #expect(
            self.filter.classify(try Self.message("Ethernet0", flags: [.running]))
                == Self.accepted("Ethernet0", adminUp: false, operUp: true))
        #expect(
            self.filter.classify(try Self.message("Ethernet0", flags: [.up, .running])) == Self.accepted("Ethernet0"))
        // IFLA_OPERSTATE is not used: an UP-without-RUNNING message saying IF_OPER_UP (6) is still oper down.
        var message = try Self.message("Ethernet0", flags: [.up, .lowerUp])
        message.operState = 6
        #expect(self.filter.classify(message) == Self.accepted("Ethernet0", operUp: false))
    }

    @Test("s15: the captured admin-up event is admin up, oper down")
    func s15Captured() throws {
        let items = NetlinkDecoder.decode(try Fixtures.bytes("admin-up-0"))
        guard case .link(let message) = try #require(items.first) else {
            Issue.record("admin-up-0 is not a link")
            return
        }
        #expect(self.filter.classify(message) == Self.accepted("Ethernet0", operUp: false, mtu: 9100))
    }

    @Test("s16: IFLA_INFO_KIND team is ignored for NEWLINK and DELLINK; other kinds are not")
    func s16Team() throws {
        for kind in [LinkMessage.Kind.newLink, .delLink] {
            #expect(
                self.filter.classify(try Self.message("PortChannel0001", kind: kind, linkKind: "team"))
                    == .ignore(.team))
            #expect(self.filter.classify(try Self.message("Ethernet0", kind: kind, linkKind: "team")) == .ignore(.team))
        }
        for other in ["teamx", "tea", "Team", "veth", "bond"] {
            #expect(
                self.filter.classify(try Self.message("PortChannel0001", linkKind: other))
                    == Self.accepted("PortChannel0001"))
        }
    }

    @Test("s17: DELLINK with a master is ignored; NEWLINK with a master is processed")
    func s17Master() throws {
        #expect(
            self.filter.classify(try Self.message("Ethernet0", kind: .delLink, master: 6)) == .ignore(.deleteWithMaster)
        )
        #expect(self.filter.classify(try Self.message("Ethernet0", master: 6)) == Self.accepted("Ethernet0"))
        #expect(
            self.filter.classify(try Self.message("Ethernet0", kind: .delLink)) == .accept(.deleted(port: "Ethernet0")))
    }

    @Test("s17: the captured AF_BRIDGE DELLINK on bridge release is ignored, the NEWLINK with master is not")
    func s17Captured() throws {
        let release = NetlinkDecoder.decode(try Fixtures.bytes("bridge-release-2"))
        guard case .link(let deletion) = try #require(release.first) else {
            Issue.record("bridge-release-2 is not a link")
            return
        }
        #expect(self.filter.classify(deletion) == .ignore(.deleteWithMaster))
        let master = NetlinkDecoder.decode(try Fixtures.bytes("bridge-master-0"))
        guard case .link(let enslaved) = try #require(master.first) else {
            Issue.record("bridge-master-0 is not a link")
            return
        }
        #expect(
            self.filter.classify(enslaved) == Self.accepted("Ethernet0", adminUp: false, operUp: false, mtu: 1500))
    }

    @Test("s28: every message for an old ifindex is ignored")
    func s28OldInterfaces() throws {
        let filter = LinkFilter(oldInterfaces: [3, 5])
        #expect(filter.classify(try Self.message("Ethernet0", ifindex: 3)) == .ignore(.oldInterface))
        #expect(filter.classify(try Self.message("Ethernet0", kind: .delLink, ifindex: 3)) == .ignore(.oldInterface))
        #expect(filter.classify(try Self.message("Ethernet4", kind: .delLink, ifindex: 5)) == .ignore(.oldInterface))
        // A re-created interface gets a new ifindex and is accepted.
        #expect(filter.classify(try Self.message("Ethernet0", ifindex: 9)) == Self.accepted("Ethernet0"))
        #expect(self.filter.classify(try Self.message("Ethernet0", ifindex: 3)) == Self.accepted("Ethernet0"))
    }

    @Test(
        "Key safety: port names that could break a Redis key are rejected",
        arguments: [
            "Ethernet0|x", "Ethernet0:x", "Ethernet*", "Ethernet0 x", "Ethernet0\n", "Ethernet[0]", "Ethernet0?",
        ])
    func unsafeNames(name: String) throws {
        #expect(self.filter.classify(try Self.message(name)) == .reject(.unsafeName))
        #expect(self.filter.classify(try Self.message(name, kind: .delLink)) == .reject(.unsafeName))
    }

    @Test("Key safety: a name with a byte that is not ASCII is rejected")
    func nonASCIIName() throws {
        let name = try #require(InterfaceName(bytes: Array("Ethernet".utf8) + [0xFF]))
        let message = LinkMessage(kind: .newLink, ifindex: 4, flags: [.up], name: name, mtu: 1500)
        #expect(self.filter.classify(message) == .reject(.unsafeName))
        #expect(name.escaped == "Ethernet\\xff")
        #expect(!LinkFilter.isSafeKeyPart(name))
    }

    @Test("A message without IFLA_IFNAME is ignored")
    func noName() throws {
        #expect(self.filter.classify(try Self.message(nil)) == .ignore(.noName))
        #expect(self.filter.classify(try Self.message(nil, kind: .delLink, master: 3)) == .ignore(.noName))
    }

    @Test("A NEWLINK without IFLA_MTU gives mtu 0, as SONiC does")
    func missingMTU() throws {
        #expect(self.filter.classify(try Self.message("Ethernet0", mtu: nil)) == Self.accepted("Ethernet0", mtu: 0))
    }
}

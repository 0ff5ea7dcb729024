import PortSyncCore
import Testing

/// The kind of a start (statement 31), the dump's inventory of interfaces, SONiC's log levels (statement 34) and
/// the sync state of a port.
@Suite("Start kinds")
struct StartKindTests {
    @Test(
        "s31: the kind follows the warm tables and where APPL_DB's PortConfigDone stands",
        arguments: [
            (false, nil, ProducerKeyPresence.absent, "cold"),
            (false, nil, .pending, "cold"),
            (false, nil, .consumed, "rejoin"),
            (false, "4", .consumed, "rejoin"),
            (true, "4", .consumed, "warm"),
            (true, "4", .absent, "warm"),
            (true, nil, .absent, "cold"),
            (true, "-1", .absent, "cold"),
            (true, "x", .consumed, "rejoin"),
            (true, "9223372036854775807", .absent, "cold"),
        ] as [(Bool, String?, ProducerKeyPresence, String)])
    func decide(warm: Bool, restoreCount: String?, configDone: ProducerKeyPresence, expected: String) {
        let decision = StartKind.decide(warmEnabled: warm, restoreCount: restoreCount, portConfigDone: configDone)
        #expect(decision.kind.name == expected)
        #expect(!decision.reason.isEmpty)
    }

    @Test("s2: restore_count is the old one plus one when warm, 0 otherwise")
    func restoreCount() {
        #expect(StartKind.decide(warmEnabled: true, restoreCount: "4", portConfigDone: .absent).kind.restoreCount == 5)
        #expect(
            StartKind.decide(warmEnabled: false, restoreCount: "4", portConfigDone: .consumed).kind.restoreCount == 0)
    }

    @Test("A producer key is present while pending or consumed, absent only when both hashes are missing")
    func presence() {
        #expect(ProducerKeyPresence(finalExists: true, pendingExists: true) == .consumed)
        #expect(ProducerKeyPresence(finalExists: false, pendingExists: true) == .pending)
        #expect(ProducerKeyPresence(finalExists: false, pendingExists: false) == .absent)
        #expect(!ProducerKeyPresence.absent.isPresent)
    }

    @Test("The dump's inventory lists every link, and is incomplete when a message did not decode")
    func inventory() {
        let first = NetlinkBuilder.link(ifindex: 3, attributes: [NetlinkBuilder.name("Ethernet0")])
        let second = NetlinkBuilder.link(ifindex: 4, attributes: [NetlinkBuilder.name("eth0")])
        let complete = LinkInventory(dump: [first + second])
        #expect(complete.isComplete)
        #expect(complete.names == ["Ethernet0", "eth0"])
        #expect(complete.links.map(\.index) == [3, 4])
        // A message whose length runs past the datagram: the inventory cannot be trusted for deletions.
        let broken = NetlinkBuilder.link(ifindex: 5, attributes: [NetlinkBuilder.name("Ethernet8")])
        let truncated = LinkInventory(dump: [first, Array(broken.dropLast(4))])
        #expect(!truncated.isComplete)
        #expect(truncated.names == ["Ethernet0"])
        // A link without a name is as good as malformed.
        let nameless = LinkInventory(dump: [NetlinkBuilder.link(ifindex: 6, attributes: [])])
        #expect(!nameless.isComplete)
    }

    @Test("s34: SONiC's log level names map onto portsyncd's levels and back")
    func logLevels() {
        #expect(
            SonicLogLevel.names.map { SonicLogLevel.level(fromSonic: $0) } == [
                "critical", "critical", "critical", "error", "warning", "notice", "info", "debug",
            ])
        #expect(SonicLogLevel.level(fromSonic: "notice") == nil)
        #expect(SonicLogLevel.level(fromSonic: "LOUD") == nil)
        for level in ["critical", "error", "warning", "notice", "info", "debug"] {
            #expect(SonicLogLevel.level(fromSonic: SonicLogLevel.sonicName(forLevel: level)) == level)
        }
        #expect(SonicLogLevel.sonicName(forLevel: "trace") == "DEBUG")
    }

    @Test("A port's sync state says why it has no STATE_DB row")
    func syncState() {
        let up = PortOperState(adminUp: true, operUp: true, mtu: 9100)
        var state = PortSyncState(waiting: ["Ethernet0", "Ethernet4", "Ethernet8", "Ethernet12"])
        let old: Set<String> = ["Ethernet8"]
        #expect(state.syncState(of: "Ethernet0", oldInterfaces: old) == .notInKernel)
        #expect(state.syncState(of: "Ethernet8", oldInterfaces: old) == .ignoredOldInterface)
        state.record(.state(port: "Ethernet0", up))
        #expect(state.syncState(of: "Ethernet0", oldInterfaces: old) == .pending)
        state.stateWriteCompleted(port: "Ethernet0", applied: false)
        #expect(state.syncState(of: "Ethernet0", oldInterfaces: old) == .awaitingApplDB)
        state.stateWriteCompleted(port: "Ethernet0", applied: true)
        #expect(state.syncState(of: "Ethernet0", oldInterfaces: old) == .synced)
        // A new netdev of an old interface's name is synced like any other.
        state.record(.state(port: "Ethernet8", up))
        state.stateWriteCompleted(port: "Ethernet8", applied: true)
        #expect(state.syncState(of: "Ethernet8", oldInterfaces: old) == .synced)
        state.record(.deleted(port: "Ethernet0"))
        #expect(state.syncState(of: "Ethernet0", oldInterfaces: old) == .notInKernel)
    }

    @Test("s33: a cold start again forgets the new old interfaces and writes PortInitDone again")
    func restartCold() {
        let up = PortOperState(adminUp: true, operUp: true, mtu: 9100)
        var state = PortSyncState(waiting: ["Ethernet0"])
        state.record(.state(port: "Ethernet0", up))
        state.stateWriteCompleted(port: "Ethernet0", applied: true)
        let taken = state.takeInitDoneIfReady()
        #expect(taken)
        state.initDoneCompleted(success: true)
        state.restartCold(waiting: ["Ethernet0"], forgetting: ["Ethernet0"])
        #expect(state.initDone == .pending)
        #expect(state.wanted.isEmpty && state.synced.isEmpty)
        let again = state.takeInitDoneIfReady()
        #expect(!again)
        #expect(state.syncState(of: "Ethernet0", oldInterfaces: ["Ethernet0"]) == .ignoredOldInterface)
    }

    @Test("A rejoin that finds PortInitDone in APPL_DB never writes it again")
    func initDoneWritten() {
        var state = PortSyncState(waiting: [], initDone: .written)
        let taken = state.takeInitDoneIfReady()
        #expect(!taken)
        var fresh = PortSyncState(waiting: [], initDone: .inFlight)
        #expect(fresh.initDone == .pending)
        let fresher = fresh.takeInitDoneIfReady()
        #expect(fresher)
    }
}

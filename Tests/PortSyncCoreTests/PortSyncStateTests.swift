import PortSyncCore
import Testing

/// The waiting set, `PortInitDone` (statement 10) and the resync list.
@Suite("PortSyncState")
struct PortSyncStateTests {
    static let up = PortOperState(adminUp: true, operUp: true, mtu: 9100)
    static let down = PortOperState(adminUp: true, operUp: false, mtu: 9100)

    /// `takeInitDoneIfReady()`, callable inside `#expect`.
    static func take(_ state: inout PortSyncState) -> Bool { state.takeInitDoneIfReady() }

    @Test("s18: the waiting set shrinks only when a state write was applied")
    func waitingShrinksOnAppliedWrites() {
        var state = PortSyncState(waiting: ["Ethernet0", "Ethernet4"])
        state.record(.state(port: "Ethernet0", Self.up))
        #expect(state.waiting == ["Ethernet0", "Ethernet4"])
        state.stateWriteCompleted(port: "Ethernet0", applied: false)
        #expect(state.waiting == ["Ethernet0", "Ethernet4"])
        #expect(state.synced.isEmpty)
        state.stateWriteCompleted(port: "Ethernet0", applied: true)
        #expect(state.waiting == ["Ethernet4"])
        #expect(state.synced == ["Ethernet0"])
        // A port that is not configured does not disturb the set.
        state.stateWriteCompleted(port: "Ethernet100", applied: true)
        #expect(state.waiting == ["Ethernet4"])
        // A delete does not count as seen.
        state.record(.deleted(port: "Ethernet4"))
        #expect(state.waiting == ["Ethernet4"])
        // A later write that finds no APPL_DB entry un-syncs the port but never puts it back in waiting.
        state.stateWriteCompleted(port: "Ethernet0", applied: false)
        #expect(state.waiting == ["Ethernet4"])
        #expect(state.synced == ["Ethernet100"])
    }

    @Test("A delete un-syncs a port")
    func deleteUnsyncs() {
        var state = PortSyncState(waiting: [])
        state.record(.state(port: "Ethernet0", Self.up))
        state.stateWriteCompleted(port: "Ethernet0", applied: true)
        #expect(state.synced == ["Ethernet0"])
        state.record(.deleted(port: "Ethernet0"))
        #expect(state.synced.isEmpty)
        #expect(state.wanted["Ethernet0"] == .deleted)
    }

    @Test("s10: takeInitDoneIfReady is true exactly once, when the waiting set becomes empty")
    func s10InitDoneOnce() {
        var state = PortSyncState(waiting: ["Ethernet0", "Ethernet4"])
        #expect(!Self.take(&state))
        state.stateWriteCompleted(port: "Ethernet0", applied: true)
        #expect(!Self.take(&state))
        #expect(state.initDone == .pending)
        state.stateWriteCompleted(port: "Ethernet4", applied: true)
        #expect(Self.take(&state))
        #expect(state.initDone == .inFlight)
        #expect(!Self.take(&state))
        state.initDoneCompleted(success: true)
        #expect(state.initDone == .written)
        #expect(!Self.take(&state))
        state.stateWriteCompleted(port: "Ethernet8", applied: true)
        #expect(!Self.take(&state))
    }

    @Test("s10: with no configured ports PortInitDone is ready at once")
    func s10NoPorts() {
        var state = PortSyncState(waiting: [])
        #expect(state.initDone == .pending)
        #expect(Self.take(&state))
        #expect(!Self.take(&state))
    }

    @Test("connectionLost puts an in-flight PortInitDone back to pending, never a written one")
    func connectionLost() {
        var state = PortSyncState(waiting: [])
        state.connectionLost()
        #expect(state.initDone == .pending)
        #expect(Self.take(&state))
        state.connectionLost()
        #expect(state.initDone == .pending)
        // The reply of the lost attempt, if it arrives late, changes nothing.
        state.initDoneCompleted(success: true)
        #expect(state.initDone == .pending)
        #expect(Self.take(&state))
        state.initDoneCompleted(success: true)
        #expect(state.initDone == .written)
        state.connectionLost()
        #expect(state.initDone == .written)
        #expect(!Self.take(&state))
    }

    @Test("A failed PortInitDone write can be retried")
    func failedInitDoneRetries() {
        var state = PortSyncState(waiting: [])
        #expect(Self.take(&state))
        state.initDoneCompleted(success: false)
        #expect(state.initDone == .pending)
        #expect(Self.take(&state))
        state.initDoneCompleted(success: true)
        #expect(state.initDone == .written)
        state.initDoneCompleted(success: false)
        #expect(state.initDone == .written)
    }

    @Test("resync lists every port's latest wanted state, sorted by name, deletes included")
    func resync() {
        var state = PortSyncState(waiting: ["Ethernet0"])
        #expect(state.resync.isEmpty)
        state.record(.state(port: "Ethernet8", Self.up))
        state.record(.state(port: "Ethernet0", Self.up))
        state.record(.deleted(port: "PortChannel0001"))
        state.record(.state(port: "Ethernet4", Self.up))
        state.record(.state(port: "Ethernet0", Self.down))
        state.record(.deleted(port: "Ethernet8"))
        state.record(.state(port: "Ethernet-IB0", Self.up))
        #expect(
            state.resync == [
                .state(port: "Ethernet-IB0", Self.up),
                .state(port: "Ethernet0", Self.down),
                .state(port: "Ethernet4", Self.up),
                .deleted(port: "Ethernet8"),
                .deleted(port: "PortChannel0001"),
            ])
        // Re-creating a deleted port replaces the delete.
        state.record(.state(port: "Ethernet8", Self.down))
        #expect(state.resync.map(\.port) == ["Ethernet-IB0", "Ethernet0", "Ethernet4", "Ethernet8", "PortChannel0001"])
        #expect(state.resync[3] == .state(port: "Ethernet8", Self.down))
    }
}

import Dispatch
import PortSyncCore
import PortSyncRuntime
import Testing

/// The runtime event bus: publishers never wait, subscribers get a snapshot then live events, slow ones are closed.
@Suite("EventBus (runtime)")
struct EventBusRuntimeTests {
    static func state(_ port: String, admin: String = "up") -> BusEventData {
        .portState(.init(admin: admin, oper: "up", mtu: 1500, carrierChanges: 0, ifindex: 3, traceID: 1))
    }

    @Test("A subscriber gets the snapshot and sync, then live events in order, then the shutdown event")
    func liveStream() async {
        let bus = EventBus(
            epoch: "ab", capacities: (100, 100, 100), replayCapacity: 100, clientBufferCapacity: 100, clock: { 42 })
        bus.publish(Self.state("Ethernet0"), port: "Ethernet0")
        let subscription = await bus.subscribe(filter: EventFilter(), lastEventID: nil)
        #expect(subscription.initial.map(\.type) == [.portState, .sync])
        for n in 0..<50 {
            bus.publish(Self.state("Ethernet\(n)", admin: n % 2 == 0 ? "up" : "down"), port: "Ethernet\(n)")
        }
        bus.shutDown(reason: "test")
        var received: [BusEvent] = []
        for await _ in subscription.doorbell {
            let (events, _) = await bus.take(subscription.id)
            received += events ?? []
        }
        #expect(received.count == 51)
        #expect(received.map(\.id.sequence) == Array(2...52))
        #expect(received.last?.type == .shutdown)
    }

    @Test("A subscriber whose buffer overflows is closed as slow, counted, and forgotten; low priority went first")
    func slowSubscriber() async {
        let bus = EventBus(epoch: "ab", capacities: (100, 100, 100), replayCapacity: 100, clientBufferCapacity: 2)
        let subscription = await bus.subscribe(filter: EventFilter(), lastEventID: nil)
        // The low event reaches the mailbox first; the bus queue is then held so that the three states arrive in
        // one batch, as a burst does: the second drops the low one, the third finds no room.
        var doorbell = subscription.doorbell.makeAsyncIterator()
        bus.publish(.configReloaded(.init(successful: true)), priority: .low)
        #expect(await doorbell.next() != nil)
        let gate = Gate()
        bus.queue.async { gate.wait() }
        for n in 0..<3 { bus.publish(Self.state("Ethernet\(n)"), port: "Ethernet\(n)") }
        gate.open()
        while await doorbell.next() != nil {}
        let (events, closed) = await bus.take(subscription.id)
        #expect(closed == "slow" && events == [])
        let figures = await bus.figures()
        #expect(figures.counters.clientsClosedSlow == 1 && figures.counters.clientDroppedLow == 1)
        #expect(figures.subscribers == 0)
    }

    @Test("A full intake lane drops the offered event and counts it; other priorities are unaffected")
    func intakeFull() async {
        let bus = EventBus(epoch: "ab", capacities: (2, 2, 2), replayCapacity: 10, clientBufferCapacity: 10)
        // Hold the bus queue so nothing drains while the lane fills.
        let gate = Gate()
        bus.queue.async { gate.wait() }
        #expect(bus.publish(.configReloaded(.init(successful: true)), priority: .low))
        #expect(bus.publish(.configReloaded(.init(successful: true)), priority: .low))
        #expect(!bus.publish(.configReloaded(.init(successful: true)), priority: .low))
        #expect(bus.publish(Self.state("Ethernet0")))
        gate.open()
        let figures = await bus.figures()
        #expect(figures.intake.dropped == ["low": 1])
        #expect(figures.intake.accepted == 3)
    }
}

extension EventBusRuntimeTests {
    @Test("A full lane coalesces each port's state to its latest, so every port's latest state arrives; others drop")
    func surgeCoalesces() async {
        let bus = EventBus(epoch: "ab", capacities: (2, 2, 2), replayCapacity: 100, clientBufferCapacity: 100)
        let gate = Gate()
        bus.queue.async { gate.wait() }
        for round in 0..<3 {
            for port in 0..<5 {
                bus.publish(
                    Self.state("Ethernet\(port * 4)", admin: round == 2 ? "down" : "up"), port: "Ethernet\(port * 4)")
            }
        }
        bus.publish(.portDeleted(.init(ifindex: 3, traceID: 9)), port: "Ethernet16")
        #expect(!bus.publish(.configReloaded(.init(successful: true)), priority: .high))
        gate.open()
        let states = await bus.portStates()
        #expect(Set(states.keys) == ["Ethernet0", "Ethernet4", "Ethernet8", "Ethernet12"])
        for (_, event) in states {
            guard case .portState(let state) = event.data else { continue }
            #expect(state.admin == "down")
        }
        let figures = await bus.figures()
        // 16 offered: 2 fill the lane, 5 open an overflow slot (one per port), the other 9 replace a slot's event.
        #expect(figures.intake.coalesced == ["high": 9])
        #expect(figures.intake.dropped == ["high": 1])
    }
}

/// Blocks one queue until opened (a test-only stand-in for a busy bus queue).
final class Gate: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    func wait() { self.semaphore.wait() }
    func open() { self.semaphore.signal() }
}

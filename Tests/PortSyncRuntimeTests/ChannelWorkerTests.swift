import Dispatch
import Logging
import PortSyncCore
import PortSyncRuntime
import Testing

/// The channel router and its shards on real queues: per-port order through the shards and across a re-sharding,
/// with every port's state carried to its new shard.
@Suite("ChannelWorker (runtime)")
struct ChannelWorkerTests {
    static func event(port: Int, n: Int) -> LinkEvent {
        let message = LinkMessage(
            kind: .newLink, ifindex: Int32(port + 1), flags: [.up, .running, .lowerUp],
            name: InterfaceName("Ethernet\(port * 4)"), mtu: UInt32(1500 + n % 2), carrierChanges: 0,
            stats: LinkStatistics(rxBytes: UInt64(n) * 100))
        return LinkEvent(trace: UInt64(port * 1000 + n), receivedAt: 0, message: message)
    }

    /// The `port_state` events a subscriber gets, in its order, until `count` of them: taken each time its doorbell
    /// rings. If they never all come, the bus is shut down after 10 s, which ends the doorbell (and the test fails
    /// on the count).
    static func collect(_ bus: EventBus, _ subscription: EventBus.Subscription, count: Int) async -> [BusEvent] {
        let timeout = DispatchWorkItem { bus.shutDown(reason: "test timeout") }
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(10), execute: timeout)
        defer { timeout.cancel() }
        var states: [BusEvent] = []
        for await _ in subscription.doorbell {
            states += ((await bus.take(subscription.id)).events ?? []).filter { $0.type == .portState }
            if states.count >= count { break }
        }
        return states
    }

    @Test("Events of 24 ports through 3 shards, re-sharded to 5 halfway: none lost, each port's in order")
    func reshardKeepsOrder() async throws {
        let bus = EventBus(
            epoch: "cd", capacities: (10_000, 10_000, 10_000), replayCapacity: 100_000, clientBufferCapacity: 100_000)
        let worker = ChannelWorker(
            settings: ChannelSettings(), workers: 3, statsIntervalMs: 0, capacity: 100_000, bus: bus,
            logger: Logger(label: "test"))
        let subscription = await bus.subscribe(filter: EventFilter(), lastEventID: nil)
        let ports = 24
        let perPort = 40
        for n in 0..<perPort {
            if n == perPort / 2 { worker.update(ChannelSettings(), workers: 5) }
            for port in 0..<ports {
                worker.offer(.link(Self.event(port: port, n: n), port: "Ethernet\(port * 4)"))
            }
        }
        let events = await Self.collect(bus, subscription, count: ports * perPort)
        #expect(events.count == ports * perPort)
        var last: [String: UInt64] = [:]
        for event in events {
            guard case .portState(let state) = event.data, let port = event.port else { continue }
            #expect(state.traceID > last[port] ?? 0 || last[port] == nil, "\(port) out of order")
            last[port] = state.traceID
        }
        let figures = await worker.figures()
        #expect(figures.shards.map(\.index) == [0, 1, 2, 3, 4])
        #expect(figures.shards.reduce(0) { $0 + $1.ports } == ports)
        #expect(figures.shards.reduce(figures.retiredProcessed) { $0 + $1.processed } == UInt64(ports * perPort))
        #expect(worker.droppedInputs == 0)
        // Each port lives on the shard its name hashes to, and still has its state (it answers for bars).
        for port in 0..<ports {
            #expect(await worker.bars(port: "Ethernet\(port * 4)", intervalMicros: 10_000_000) != nil)
        }
        #expect(await worker.bars(port: "Ethernet9999", intervalMicros: 10_000_000) == nil)
    }

    @Test("A port always hashes to the same shard, and the shards share the ports out")
    func hashing() {
        var counts = [0, 0, 0, 0]
        for port in 0..<4096 {
            let name = "Ethernet\(port * 4)"
            let shard = ChannelWorker.shard(of: name, count: 4)
            #expect(shard == ChannelWorker.shard(of: name, count: 4))
            counts[shard] += 1
        }
        #expect(counts.allSatisfy { $0 > 800 }, "\(counts)")
        #expect(ChannelWorker.shard(of: "Ethernet0", count: 1) == 0)
    }
}

import Dispatch
import PortSyncCore
import Synchronization
import Testing

@testable import PortSyncRuntime

/// One event loop's lane: order per client, filters, merged batches, stepping aside for the port path, turns, and
/// the bound on its backlog. The executor here runs its closures when the test says so (a stand-in for an event
/// loop, whose turns a test cannot otherwise hold); the gate is the real one.
@Suite("FanoutLane")
struct FanoutLaneTests {
    /// Runs what it is given when `runAll` is called, in order.
    final class ManualExecutor: SinkExecutor {
        private let queued = Mutex<[@Sendable () -> Void]>([])
        func execute(_ body: @escaping @Sendable () -> Void) { self.queued.withLock { $0.append(body) } }
        /// Runs until nothing is queued; returns how many closures ran.
        @discardableResult
        func runAll() -> Int {
            var ran = 0
            while let next = self.queued.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
                next()
                ran += 1
            }
            return ran
        }
    }

    /// Records what it is given.
    final class RecordingSink: EventSink {
        let executor: any SinkExecutor
        private let state = Mutex<(begun: Bool, batches: [[UInt64]], ended: String?, overflowed: Bool)>(
            (false, [], nil, false))
        init(_ executor: any SinkExecutor) { self.executor = executor }
        func begin(id: EventBusState.SubscriberID, initial: [BusEvent]) { self.state.withLock { $0.begun = true } }
        func deliver(_ events: [BusEvent]) { self.state.withLock { $0.batches.append(events.map(\.id.sequence)) } }
        func end(reason: String) { self.state.withLock { $0.ended = reason } }
        func overflowed() { self.state.withLock { $0.overflowed = true } }
        var batches: [[UInt64]] { self.state.withLock { $0.batches } }
        var received: [UInt64] { self.batches.flatMap { $0 } }
        var ended: String? { self.state.withLock { $0.ended } }
        var didOverflow: Bool { self.state.withLock { $0.overflowed } }
        var begun: Bool { self.state.withLock { $0.begun } }
    }

    static let smallFanout = 32

    /// A lane of `clients` subscribers of the whole stream, added, with `gate` then closed.
    static func closedLane(clients: Int, gate: PortPathGate, maxBacklog: Int)
        -> (ManualExecutor, FanoutLane, [RecordingSink])
    {
        let executor = ManualExecutor()
        let lane = FanoutLane(executor: executor, gate: gate, maxBacklog: maxBacklog)
        let sinks = (0..<clients).map { _ in RecordingSink(executor) }
        for (n, sink) in sinks.enumerated() { lane.schedule(.add(UInt64(n), EventFilter(), sink, initial: [])) }
        executor.runAll()
        gate.set(busy: true)
        return (executor, lane, sinks)
    }

    static func events(_ sequences: ClosedRange<UInt64>, port: (UInt64) -> String = { "Ethernet\($0 % 4)" })
        -> [BusEvent]
    {
        sequences.map { n in
            BusEvent(
                id: BusEventID(epoch: "ab", sequence: n), port: port(n), timeMillis: 0,
                data: .portState(.init(admin: "up", oper: "up", mtu: 1500, carrierChanges: 0, ifindex: 3, traceID: n)))
        }
    }

    @Test("Each client gets its filter's events in order, and is told of the end after them")
    func orderAndFilters() {
        let executor = ManualExecutor()
        let lane = FanoutLane(executor: executor, gate: nil, maxBacklog: 100)
        let all = RecordingSink(executor)
        let one = RecordingSink(executor)
        lane.schedule(.add(1, EventFilter(), all, initial: []))
        lane.schedule(.add(2, EventFilter(ports: ["Ethernet1"]), one, initial: []))
        lane.schedule(.batch(Self.events(1...4)))
        executor.runAll()
        #expect(all.begun && one.begun)
        #expect(all.batches == [[1, 2, 3, 4]] && one.batches == [[1]])
        lane.schedule(.batch(Self.events(5...6)))
        lane.schedule(.batch(Self.events(7...9)))
        executor.runAll()
        #expect(all.batches.suffix(2) == [[5, 6], [7, 8, 9]] && one.batches.suffix(2) == [[5], [9]])
        lane.schedule(.remove(2))
        lane.schedule(.batch(Self.events(10...13)))
        lane.schedule(.end("shutdown"))
        executor.runAll()
        #expect(all.received.suffix(4) == [10, 11, 12, 13] && one.received.last == 9)
        #expect(all.ended == "shutdown" && one.ended == nil)
    }

    @Test("While the port path is busy a large fan-out waits, and goes on when it is idle; a small one goes at once")
    func stepsAside() {
        let gate = PortPathGate(maxWaitMs: 60_000)
        let (executor, lane, sinks) = Self.closedLane(
            clients: Self.smallFanout + 1, gate: gate, maxBacklog: 100)
        lane.schedule(.batch(Self.events(1...2)))
        lane.schedule(.batch(Self.events(3...3)))
        executor.runAll()
        #expect(sinks.allSatisfy { $0.received.isEmpty })
        gate.set(busy: false)  // runs the waiter: it queues the lane's next turn on the executor
        executor.runAll()
        #expect(sinks.allSatisfy { $0.batches == [[1, 2], [3]] }, "what waited, in order")
        #expect(gate.figures.yields == 1)
        // A small fan-out does not wait.
        let (smallExecutor, small, few) = Self.closedLane(clients: Self.smallFanout, gate: gate, maxBacklog: 100)
        small.schedule(.batch(Self.events(4...4)))
        smallExecutor.runAll()
        #expect(few.allSatisfy { $0.received == [4] })
    }

    @Test("A run over more clients than one turn allows is finished in later turns, in order")
    func turns() {
        let executor = ManualExecutor()
        let lane = FanoutLane(executor: executor, gate: nil, maxBacklog: 100)
        let count = FanoutLane.deliveriesPerTurn * 2 + 5
        let sinks = (0..<count).map { _ in RecordingSink(executor) }
        for (n, sink) in sinks.enumerated() { lane.schedule(.add(UInt64(n), EventFilter(), sink, initial: [])) }
        lane.schedule(.batch(Self.events(1...2)))
        let turns = executor.runAll()
        #expect(turns >= count + 3, "the adds, then the batch in three turns")
        #expect(sinks.allSatisfy { $0.received == [1, 2] })
    }

    @Test("A backlog larger than a client's buffer cuts every client of the lane as slow, and drops the backlog")
    func backlogBound() {
        let gate = PortPathGate(maxWaitMs: 60_000)
        let (executor, lane, sinks) = Self.closedLane(
            clients: Self.smallFanout + 1, gate: gate, maxBacklog: 10)
        lane.schedule(.batch(Self.events(1...6)))
        lane.schedule(.batch(Self.events(7...10)))
        executor.runAll()
        #expect(sinks.allSatisfy { !$0.didOverflow }, "4 waiting behind the first batch: within the bound")
        lane.schedule(.batch(Self.events(11...17)))
        executor.runAll()
        #expect(sinks.allSatisfy { $0.didOverflow }, "11 waiting")
        gate.set(busy: false)
        executor.runAll()
        #expect(sinks.allSatisfy { $0.received.isEmpty }, "the backlog went with the clients")
    }
}

public import Dispatch
import Glibc
public import PortSyncCore
import Synchronization

/// The event bus, an important worker on its own queue: publishers anywhere (the port path first of all) hand it
/// events without waiting; stream clients subscribe and read at their own pace.
///
/// Intake: three bounded buffers, one per priority (`events.high_capacity` … defaults 1000 / 500 / 100), behind a
/// lock held for an append. A full buffer coalesces a port's events by kind (its latest state, health, bar; an
/// alert's latest change) and drops other events, counting both: the port path never waits for the bus, and
/// every port's latest state still arrives. The bus queue drains high first, gives each event its id, keeps it for
/// replay and snapshots (`EventBusState`), and hands the batch to each executor's lane (`FanoutLane`: one per event
/// loop, whatever its number of clients), which routes it to its subscribers' sinks, stepping aside for the port
/// path (`PortPathGate`). A sink's own bounded buffer drops low priority first and then closes it as `slow` (it
/// resumes from the replay ring with its `Last-Event-ID`).
public final class EventBus: SupervisedWorker, @unchecked Sendable {
    public let name = "events"
    public let criticality = WorkerCriticality.important
    public let queue = DispatchQueue(label: "portsyncd.events")

    /// The bus's intake figures.
    public struct IntakeCounters: Sendable, Hashable, Codable {
        public var dropped: [String: UInt64] = [:]
        /// Events replaced in a full buffer by a later one of the same port and kind, by priority.
        public var coalesced: [String: UInt64] = [:]
        public var accepted: UInt64 = 0
        public init() {}
    }

    private typealias Pending = (data: BusEventData, port: String?, priority: BusPriority, time: Int64)
    /// One lane per priority, high first.
    private let intake: BoundedIntake<Pending>
    private let clock: @Sendable () -> Int64

    /// Each executor's lane (its subscribers and their work), and each subscriber's lane. Bus queue only.
    private var lanes: [ObjectIdentifier: FanoutLane] = [:]
    private var laneOf: [EventBusState.SubscriberID: FanoutLane] = [:]
    private let gate: PortPathGate?
    private let smallFanout: Int
    /// Mailboxes are filled on the bus queue itself.
    private let inline = InlineExecutor()
    /// The mailboxes of `subscribe(filter:lastEventID:)`'s subscribers, which their tasks empty from any thread.
    private let mailboxes = Mutex<[EventBusState.SubscriberID: Mailbox]>([:])
    /// Each subscriber's buffer (`events.client_buffer_capacity`): live events its connection cannot take yet.
    public let clientBufferCapacity: Int
    /// Low-priority events dropped from subscribers' buffers, and subscribers closed as slow there.
    private let droppedLow = Atomic<UInt64>(0)
    private let closedSlow = Atomic<UInt64>(0)

    // Bus queue only.
    private var state: EventBusState
    private var stopped = false

    /// - Parameters:
    ///   - capacities: intake buffers for high, medium and low.
    ///   - gate: the port path's state; deliveries to connections step aside while it is busy, unless a batch is
    ///     for at most `smallFanout` clients of one filter on one event loop.
    ///   - clock: Unix time in milliseconds (injected for tests).
    public init(
        epoch: String, capacities: (high: Int, medium: Int, low: Int), replayCapacity: Int, clientBufferCapacity: Int,
        gate: PortPathGate? = nil, smallFanout: Int = 32, clock: @escaping @Sendable () -> Int64 = EventBus.unixMillis
    ) {
        self.gate = gate
        self.smallFanout = smallFanout
        self.intake = BoundedIntake(capacities: [capacities.high, capacities.medium, capacities.low])
        self.clientBufferCapacity = clientBufferCapacity
        self.state = EventBusState(epoch: epoch, replayCapacity: replayCapacity)
        self.clock = clock
    }

    /// A new epoch: 16 random hex digits.
    public static func newEpoch() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() as UInt64
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    @Sendable public static func unixMillis() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    // MARK: Worker

    public func start(_ context: WorkerContext) throws {
        self.stopped = false
    }

    public func stop() {
        self.stopped = true
    }

    // MARK: Publishing (any queue)

    /// Offers an event; never waits. Returns false when its priority's intake buffer is full (counted).
    @discardableResult
    public func publish(_ data: BusEventData, port: String? = nil, priority: BusPriority? = nil) -> Bool {
        let priority = priority ?? data.priority
        let lane = Self.lane(priority)
        let now = self.clock()
        let (accepted, wake) = self.intake.offer(
            (data, port, priority, now), lane: lane, key: Self.coalescingKey(data, port: port))
        if wake { self.queue.async { self.drain() } }
        return accepted
    }

    public var intakeCounters: IntakeCounters {
        let counts = self.intake.counts
        var counters = IntakeCounters()
        counters.accepted = counts.accepted
        for (priority, dropped) in zip(BusPriority.allCases, counts.dropped) where dropped > 0 {
            counters.dropped[priority.rawValue] = dropped
        }
        for (priority, coalesced) in zip(BusPriority.allCases, counts.coalesced) where coalesced > 0 {
            counters.coalesced[priority.rawValue] = coalesced
        }
        return counters
    }

    /// What a full intake buffer may coalesce an event with: the latest state of a port (a deletion included), its
    /// health, its bar of one length, one alert's latest change. In a surge, every port's latest state still
    /// reaches the bus (and so every snapshot); events without a key (reloads, worker phases) are dropped.
    static func coalescingKey(_ data: BusEventData, port: String?) -> String? {
        switch data {
        case .portState, .portDeleted: port.map { "s" + $0 }
        case .portHealth: port.map { "h" + $0 }
        case .counterBar(let bar): port.map { "b\(bar.bar.intervalMicros)/" + $0 }
        case .alertRaised(let alert), .alertCleared(let alert): "a\(alert.rule)/\(alert.subject)"
        default: nil
        }
    }

    private static func lane(_ priority: BusPriority) -> Int {
        switch priority {
        case .high: 0
        case .medium: 1
        case .low: 2
        }
    }

    private func drain() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        var published: [BusEvent] = []
        for batch in self.intake.takeAll() {
            for (data, port, priority, time) in batch {
                published.append(
                    self.state.publish(BusEvent(port: port, timeMillis: time, priority: priority, data: data)))
            }
        }
        guard !self.stopped, !published.isEmpty else { return }
        // One hop per executor with the batch as it is: each lane matches it for its own subscribers.
        for lane in self.lanes.values { lane.schedule(.batch(published)) }
    }

    // MARK: Subscribing

    /// Subscribes `sink`: it gets `begin` (the snapshot, or the resumed events) and then every matching live event,
    /// until `unsubscribe`, or the sink gives up (`closed`), or the bus shuts down (`end`).
    public func subscribe(filter: EventFilter, lastEventID: String?, sink: any EventSink) async
        -> EventBusState.SubscriberID
    {
        let now = self.clock()
        return await withCheckedContinuation { (result: CheckedContinuation<EventBusState.SubscriberID, Never>) in
            self.queue.async {
                // Whatever is waiting in the intake is published first, so that the snapshot and the live events
                // that follow it meet without a gap or an overlap.
                self.drain()
                let (id, initial) = self.state.subscribe(filter: filter, lastEventID: lastEventID, nowMillis: now)
                let executor = sink.executor
                let lane: FanoutLane
                if let known = self.lanes[ObjectIdentifier(executor)] {
                    lane = known
                } else {
                    lane = FanoutLane(
                        executor: executor, gate: sink.yieldsToPortPath ? self.gate : nil,
                        maxBacklog: self.clientBufferCapacity, smallFanout: self.smallFanout)
                    self.lanes[ObjectIdentifier(executor)] = lane
                }
                self.laneOf[id] = lane
                lane.schedule(.add(id, filter, sink, initial: initial))
                if self.stopped { executor.execute { sink.end(reason: "shutdown") } }
                result.resume(returning: id)
            }
        }
    }

    /// A sink gave up (`slow`: its client does not read): no more events for it. Its owner still unsubscribes.
    public func closed(_ id: EventBusState.SubscriberID, reason: String) {
        if reason == "slow" { self.closedSlow.add(1, ordering: .relaxed) }
        self.queue.async { self.forget(id) }
    }

    private func forget(_ id: EventBusState.SubscriberID) {
        self.state.unsubscribe(id)
        self.laneOf.removeValue(forKey: id)?.schedule(.remove(id))
    }

    /// Low-priority events a sink dropped from its full buffer.
    public func countDroppedLow(_ count: UInt64) {
        self.droppedLow.add(count, ordering: .relaxed)
    }

    /// A task's view of the bus: its events wait in a bounded mailbox (as a connection's would) until it takes them.
    public struct Subscription: Sendable {
        public let id: EventBusState.SubscriberID
        /// What to send first: a snapshot and `sync`, or the events after `Last-Event-ID`, or a `reset` first.
        public let initial: [BusEvent]
        /// Rings when live events are queued for this subscriber; finishes when it is closed.
        public let doorbell: AsyncStream<Void>
    }

    /// Subscribes a mailbox, emptied with `take`.
    public func subscribe(filter: EventFilter, lastEventID: String?) async -> Subscription {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let mailbox = Mailbox(
            bus: self, executor: self.inline, capacity: self.clientBufferCapacity, doorbell: continuation)
        let id = await self.subscribe(filter: filter, lastEventID: lastEventID, sink: mailbox)
        self.mailboxes.withLock { $0[id] = mailbox }
        return Subscription(id: id, initial: mailbox.takeInitial(), doorbell: stream)
    }

    /// The live events queued for `id` (none, once it is unknown), and the reason if the bus closed it.
    public func take(_ id: EventBusState.SubscriberID) async -> (events: [BusEvent]?, closed: String?) {
        guard let mailbox = self.mailboxes.withLock({ $0[id] }) else { return (nil, nil) }
        return mailbox.take()
    }

    /// The subscriber went away.
    public func unsubscribe(_ id: EventBusState.SubscriberID) {
        self.queue.async {
            self.forget(id)
            self.mailboxes.withLock { $0.removeValue(forKey: id) }?.finish()
        }
    }

    /// Shutdown: a `shutdown` event to every subscriber, then their streams end (each sink sends what it holds).
    public func shutDown(reason: String) {
        self.publish(.shutdown(.init(reason: reason)))
        self.queue.async {
            self.drain()
            self.stopped = true
            // Through the lanes, so that each sink ends after the deliveries waiting there.
            for lane in self.lanes.values { lane.schedule(.end("shutdown")) }
        }
    }

    /// Counters and subscriber count, for health and metrics.
    public func figures() async -> (counters: EventBusState.Counters, subscribers: Int, intake: IntakeCounters) {
        let intake = self.intakeCounters
        let droppedLow = self.droppedLow.load(ordering: .relaxed)
        let closedSlow = self.closedSlow.load(ordering: .relaxed)
        return await withCheckedContinuation { result in
            self.queue.async {
                var counters = self.state.counters
                counters.clientDroppedLow += droppedLow
                counters.clientsClosedSlow += closedSlow
                if let gate = self.gate {
                    (counters.fanoutYields, counters.fanoutYieldTimeouts) = gate.figures
                }
                result.resume(returning: (counters, self.state.subscriberCount, intake))
            }
        }
    }

    /// Runs `body` once every subscriber has gone (after `shutDown`, stream handlers write the final event and
    /// unsubscribe), or after `timeoutMs`, whichever comes first.
    public func afterSubscribersLeave(timeoutMs: Int, _ body: @escaping @Sendable () -> Void) {
        let deadline = DispatchTime.now() + .milliseconds(timeoutMs)
        self.queue.async { self.checkSubscribersLeft(deadline: deadline, body) }
    }

    private func checkSubscribersLeft(deadline: DispatchTime, _ body: @escaping @Sendable () -> Void) {
        if self.state.subscriberCount == 0 || DispatchTime.now() >= deadline {
            body()
        } else {
            self.queue.asyncAfter(deadline: .now() + .milliseconds(10)) {
                self.checkSubscribersLeft(deadline: deadline, body)
            }
        }
    }

    /// The latest state of every port (what a new subscriber's snapshot holds).
    public func portStates() async -> [String: BusEvent] {
        await withCheckedContinuation { result in
            self.queue.async { result.resume(returning: self.state.portStates) }
        }
    }
}

/// Runs what it is given at once, on the caller's thread: the bus queue, for mailboxes.
final class InlineExecutor: SinkExecutor {
    func execute(_ body: @escaping @Sendable () -> Void) { body() }
}

/// A task's bounded buffer (`ClientBuffer`: low priority dropped first, then closed as slow), filled on the bus
/// queue (its executor) and emptied by the task, each under the lock for an append or a take.
final class Mailbox: EventSink {
    private struct State: ~Copyable {
        var initial: [BusEvent] = []
        var buffer: ClientBuffer
        var id: EventBusState.SubscriberID = 0
        var closed: String?
    }

    private let state: Mutex<State>
    private let doorbell: AsyncStream<Void>.Continuation
    private let bus: EventBus
    let executor: any SinkExecutor

    init(bus: EventBus, executor: any SinkExecutor, capacity: Int, doorbell: AsyncStream<Void>.Continuation) {
        self.bus = bus
        self.executor = executor
        self.state = Mutex(State(buffer: ClientBuffer(capacity: capacity)))
        self.doorbell = doorbell
    }

    var yieldsToPortPath: Bool { false }

    func begin(id: EventBusState.SubscriberID, initial: [BusEvent]) {
        self.state.withLock { state in
            state.id = id
            state.initial = initial
        }
    }

    func takeInitial() -> [BusEvent] {
        self.state.withLock { state in
            defer { state.initial = [] }
            return state.initial
        }
    }

    func deliver(_ events: [BusEvent]) {
        let (dropped, slow) = self.state.withLock { state -> (UInt64, Bool) in
            guard state.closed == nil else { return (0, false) }
            return state.buffer.offer(contentsOf: events)
        }
        if dropped > 0 { self.bus.countDroppedLow(dropped) }
        if slow {
            self.overflowed()
        } else {
            self.doorbell.yield()
        }
    }

    /// Its own buffer, or its lane's backlog, is full: closed as slow, what it held dropped.
    func overflowed() {
        let id = self.state.withLock { state -> EventBusState.SubscriberID? in
            guard state.closed == nil else { return nil }
            state.closed = "slow"
            _ = state.buffer.takeAll()
            return state.id
        }
        guard let id else { return }
        self.bus.closed(id, reason: "slow")
        self.doorbell.finish()
    }

    func end(reason: String) {
        self.state.withLock { state in
            if state.closed == nil { state.closed = reason }
        }
        self.doorbell.yield()
        self.doorbell.finish()
    }

    func finish() {
        self.doorbell.finish()
    }

    /// What is queued, and the reason once closed.
    func take() -> (events: [BusEvent]?, closed: String?) {
        self.state.withLock { state in (state.buffer.takeAll(), state.closed) }
    }
}

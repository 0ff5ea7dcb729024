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
/// every port's latest state still arrives. The bus queue drains high first, gives each event its id, keeps it for replay and snapshots
/// (`EventBusState`), and rings each matching subscriber's doorbell. A subscriber's own bounded buffer drops low
/// priority first and then closes it as `slow` (it resumes from the replay ring with its `Last-Event-ID`).
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

    /// Each subscriber's mailbox, which its stream handler empties without a hop to the bus queue.
    private let mailboxes = Mutex<[EventBusState.SubscriberID: Mailbox]>([:])
    private let clientBufferCapacity: Int

    // Bus queue only.
    private var state: EventBusState
    /// Low-priority events dropped from mailboxes, and subscribers closed as slow there.
    private var mailboxDroppedLow: UInt64 = 0
    private var mailboxClosedSlow: UInt64 = 0
    private var stopped = false

    /// - Parameters:
    ///   - capacities: intake buffers for high, medium and low.
    ///   - clock: Unix time in milliseconds (injected for tests).
    public init(
        epoch: String, capacities: (high: Int, medium: Int, low: Int), replayCapacity: Int, clientBufferCapacity: Int,
        clock: @escaping @Sendable () -> Int64 = EventBus.unixMillis
    ) {
        self.intake = BoundedIntake(capacities: [capacities.high, capacities.medium, capacities.low])
        self.clientBufferCapacity = clientBufferCapacity
        self.state = EventBusState(
            epoch: epoch, replayCapacity: replayCapacity, clientBufferCapacity: clientBufferCapacity)
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
        let batches = self.intake.takeAll()
        for batch in batches {
            for (data, port, priority, time) in batch {
                let (_, slow) = self.state.publish(
                    BusEvent(port: port, timeMillis: time, priority: priority, data: data))
                for id in slow { self.close(id, reason: "slow") }
            }
        }
        // Hand each subscriber what matched into its mailbox, and ring only those that got something.
        let mailboxes = self.mailboxes.withLock { $0 }
        for (id, mailbox) in mailboxes {
            guard let events = self.state.take(id), !events.isEmpty else { continue }
            let (droppedLow, slow) = mailbox.deliver(events)
            self.mailboxDroppedLow += droppedLow
            if slow {
                self.mailboxClosedSlow += 1
                self.close(id, reason: "slow")
            } else {
                mailbox.ring()
            }
        }
    }

    // MARK: Subscribing (async, from stream handlers)

    /// A stream client's view of the bus.
    public struct Subscription: Sendable {
        public let id: EventBusState.SubscriberID
        /// What to send first: a snapshot and `sync`, or the events after `Last-Event-ID`, or a `reset` first.
        public let initial: [BusEvent]
        /// Rings when live events are queued for this subscriber; finishes when it is closed.
        public let doorbell: AsyncStream<Void>
    }

    public func subscribe(filter: EventFilter, lastEventID: String?) async -> Subscription {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let now = self.clock()
        return await withCheckedContinuation { (result: CheckedContinuation<Subscription, Never>) in
            self.queue.async {
                let (id, initial) = self.state.subscribe(filter: filter, lastEventID: lastEventID, nowMillis: now)
                let mailbox = Mailbox(capacity: self.clientBufferCapacity, doorbell: continuation)
                self.mailboxes.withLock { $0[id] = mailbox }
                if self.stopped { self.close(id, reason: "shutdown") }
                result.resume(returning: Subscription(id: id, initial: initial, doorbell: stream))
            }
        }
    }

    /// The live events queued for `id`, or `nil` once it is closed (with the reason). Taken from the subscriber's
    /// mailbox under its lock: a thousand clients do not queue up on the bus's queue for their events.
    public func take(_ id: EventBusState.SubscriberID) async -> (events: [BusEvent]?, closed: String?) {
        guard let mailbox = self.mailboxes.withLock({ $0[id] }) else { return (nil, nil) }
        return mailbox.take()
    }

    /// Rings `id`'s doorbell without an event (a stream handler's timer: time for a heartbeat?), from any thread.
    public func nudge(_ id: EventBusState.SubscriberID) {
        self.mailboxes.withLock { $0[id] }?.ring()
    }

    /// Calls `body` (on the bus queue) when the bus closes `id` (reason `slow`, …): a handler stuck in a write to
    /// a client that no longer reads is ended by closing its connection from there.
    public func onClose(_ id: EventBusState.SubscriberID, _ body: @escaping @Sendable (String) -> Void) {
        self.mailboxes.withLock { $0[id] }?.onClose(body)
    }

    /// The client went away.
    public func unsubscribe(_ id: EventBusState.SubscriberID) {
        self.queue.async {
            self.state.unsubscribe(id)
            self.mailboxes.withLock { $0.removeValue(forKey: id) }?.finish()
        }
    }

    /// Shutdown: a `shutdown` event to every subscriber, then their streams end.
    public func shutDown(reason: String) {
        self.publish(.shutdown(.init(reason: reason)))
        self.queue.async {
            self.stopped = true
            for mailbox in self.mailboxes.withLock({ $0.values }) {
                mailbox.ring()
                mailbox.finish()
            }
        }
    }

    /// Counters and subscriber count, for health and metrics.
    public func figures() async -> (counters: EventBusState.Counters, subscribers: Int, intake: IntakeCounters) {
        let intake = self.intakeCounters
        return await withCheckedContinuation { result in
            self.queue.async {
                var counters = self.state.counters
                counters.clientDroppedLow += self.mailboxDroppedLow
                counters.clientsClosedSlow += self.mailboxClosedSlow
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

    /// The bus ends `id`'s stream; its mailbox stays (answering `take` with the reason) until it unsubscribes.
    private func close(_ id: EventBusState.SubscriberID, reason: String) {
        let mailbox = self.mailboxes.withLock { $0[id] }
        mailbox?.close(reason: reason)
        self.state.unsubscribe(id)
        mailbox?.finish()
    }
}

/// One subscriber's bounded buffer (`ClientBuffer`: low priority dropped first, then closed as slow), filled on the
/// bus queue and emptied by the subscriber's stream handler, each under the lock for an append or a take.
final class Mailbox: Sendable {
    private struct State: ~Copyable {
        var buffer: ClientBuffer
        var closed: String?
        var onClose: (@Sendable (String) -> Void)?
    }

    private let state: Mutex<State>
    private let doorbell: AsyncStream<Void>.Continuation

    init(capacity: Int, doorbell: AsyncStream<Void>.Continuation) {
        self.state = Mutex(State(buffer: ClientBuffer(capacity: capacity)))
        self.doorbell = doorbell
    }

    /// Appends `events`; returns the low-priority events dropped and whether the subscriber is now too slow.
    func deliver(_ events: [BusEvent]) -> (droppedLow: UInt64, slow: Bool) {
        self.state.withLock { state in
            var dropped: UInt64 = 0
            for event in events {
                switch state.buffer.offer(event) {
                case .queued: break
                case .droppedLow: dropped += 1
                case .slow: return (dropped, true)
                }
            }
            return (dropped, false)
        }
    }

    /// Wakes the subscriber's handler.
    func ring() {
        self.doorbell.yield()
    }

    /// Ends the subscriber's doorbell: its handler sends what is left and ends.
    func finish() {
        self.doorbell.finish()
    }

    /// What is queued, or `nil` and the reason once closed.
    func take() -> (events: [BusEvent]?, closed: String?) {
        self.state.withLock { state in
            if let reason = state.closed { return (nil, reason) }
            return (state.buffer.takeAll(), nil)
        }
    }

    func onClose(_ body: @escaping @Sendable (String) -> Void) {
        let closed: String? = self.state.withLock { state in
            state.onClose = body
            return state.closed
        }
        if let closed { body(closed) }
    }

    func close(reason: String) {
        let body = self.state.withLock { state in
            state.closed = reason
            return state.onClose
        }
        body?(reason)
    }
}

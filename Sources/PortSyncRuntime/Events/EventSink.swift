public import PortSyncCore

/// Runs what it is given in order, on one thread or loop: a connection's event loop, or the bus queue itself.
public protocol SinkExecutor: AnyObject, Sendable {
    func execute(_ body: @escaping @Sendable () -> Void)
}

/// Where the bus delivers one subscriber's events: a stream client's connection (the HTTP layer writes each event's
/// bytes straight to its socket from the connection's event loop), or a mailbox a task empties (`subscribe(filter:
/// lastEventID:)`).
///
/// The bus runs `begin`, `deliver` and `end` on the sink's executor, in the order it scheduled them.
public protocol EventSink: AnyObject, Sendable {
    /// Sinks with the same executor share one lane (`FanoutLane`): one hop per batch between them.
    var executor: any SinkExecutor { get }
    /// On the executor, first: the subscriber's id and what to send first (a snapshot and `sync`, or the events
    /// after `Last-Event-ID`, or a `reset` first). Taken whole, whatever the sink's bound.
    func begin(id: EventBusState.SubscriberID, initial: [BusEvent])
    /// On the executor: live events for this subscriber, oldest first. The sink bounds what it holds: it drops low
    /// priority first (`EventBus.countDroppedLow`) and then gives up as slow (`EventBus.closed(_:reason:)`).
    func deliver(_ events: [BusEvent])
    /// On the executor, after every delivery scheduled before it: the bus ends the stream (`shutdown`). The sink
    /// sends what it holds and ends; its owner unsubscribes.
    func end(reason: String)
    /// Whether its deliveries step aside while the port path is busy (`PortPathGate`): a connection's do, as
    /// writing to a thousand of them takes the machine milliseconds; an in-process mailbox need not.
    var yieldsToPortPath: Bool { get }
    /// On the executor: more events wait for this executor's clients than a client's buffer holds (the fan-out
    /// cannot keep up): the sink gives up as slow, as when its own buffer overflows.
    func overflowed()
}

extension EventSink {
    public var yieldsToPortPath: Bool { true }
}

/// The subscribers of one executor (an event loop), and the work the bus gives them, run in order there.
///
/// The bus hands a lane each published batch as it is (one hop per executor per batch, whatever the number of
/// clients); the lane matches it against each distinct filter of its subscribers and delivers to each sink. So the
/// work per client happens on the stream's threads, not on the bus queue. Unless the batch is for a few clients
/// only, before each sink it asks the port path's gate: while the port path is busy, the rest waits until it is
/// idle, or for the gate's longest wait (after which what is queued goes out without asking again, so that a storm
/// delays the stream by at most that much).
///
/// Bounded: batches that wait behind the one being delivered merge into one; when that holds more events than a
/// client's buffer (`events.client_buffer_capacity`), every client of the lane is behind by more than its buffer,
/// and each is cut as `slow` (it resumes with its `Last-Event-ID`), rather than the backlog growing without end.
final class FanoutLane: @unchecked Sendable {
    enum Work: Sendable {
        case add(EventBusState.SubscriberID, EventFilter, any EventSink, initial: [BusEvent])
        case remove(EventBusState.SubscriberID)
        case batch([BusEvent])
        case end(String)
    }

    let executor: any SinkExecutor
    private let gate: PortPathGate?
    private let maxBacklog: Int
    /// A batch for at most this many clients (of one filter) goes out without asking the gate
    /// (`events.fanout_yield_above_clients`): a small fan-out costs the port path nothing worth waiting for (32
    /// writes: about 0.25 ms of CPU), and its clients get their events at once. Past it, the gate is asked before
    /// every client, the first included.
    private let smallFanout: Int
    // The executor's only (hence `@unchecked Sendable`).
    private var work: [Work] = []
    private var head = 0
    private var members = SubscriberGroups<any EventSink>()
    /// The batch being delivered: each filter's sinks with its events, and where it has got to.
    private var runs: [(sinks: [any EventSink], events: [BusEvent])] = []
    private var run = 0
    private var next = 0
    private var waiting = false

    init(executor: any SinkExecutor, gate: PortPathGate?, maxBacklog: Int, smallFanout: Int = 32) {
        self.executor = executor
        self.gate = gate
        self.maxBacklog = maxBacklog
        self.smallFanout = smallFanout
    }

    /// From any thread: `work` runs on the executor, after what was given before.
    func schedule(_ work: Work) {
        self.executor.execute { self.take(work) }
    }

    private func take(_ work: Work) {
        // Batches waiting behind each other become one: each client then gets them in one write, and what waits
        // here is bounded by the events published meanwhile, not by the number of batches times the clients.
        if case .batch(let events) = work, self.head < self.work.count, case .batch(let queued) = self.work.last {
            let merged = queued + events
            self.work[self.work.count - 1] = .batch(merged)
            if merged.count > self.maxBacklog { return self.overflow() }
        } else {
            self.work.append(work)
        }
        if !self.waiting { self.proceed(asking: true) }
    }

    /// The backlog outgrew a client's buffer: every client here is cut as slow, and what waited for them goes.
    private func overflow() {
        for sink in self.members.all { sink.overflowed() }
        self.runs = []
        self.run = 0
        self.next = 0
        self.work.removeAll { if case .batch = $0 { true } else { false } }
        self.head = 0
    }

    /// Deliveries in one turn of the executor, after which the rest waits for the next turn (requeued behind what
    /// else the event loop has to do: HTTP requests, pings), so that a backlog never keeps the loop to itself.
    static let deliveriesPerTurn = 128

    private func proceed(asking: Bool) {
        var budget = Self.deliveriesPerTurn
        while true {
            while self.run < self.runs.count {
                let (sinks, events) = self.runs[self.run]
                while self.next < sinks.count {
                    if asking, sinks.count > self.smallFanout, self.mustWait() { return }
                    if budget == 0 {
                        self.waiting = true
                        self.resume(asking: asking)
                        return
                    }
                    budget -= 1
                    let sink = sinks[self.next]
                    self.next += 1
                    sink.deliver(events)
                }
                self.run += 1
                self.next = 0
            }
            self.runs = []
            self.run = 0
            guard self.head < self.work.count else { break }
            let work = self.work[self.head]
            self.head += 1
            switch work {
            case .add(let id, let filter, let sink, let initial):
                self.members.add(id, filter: filter, sink)
                sink.begin(id: id, initial: initial)
            case .remove(let id):
                self.members.remove(id)
            case .batch(let events):
                self.runs = self.members.route(events)
            case .end(let reason):
                for sink in self.members.all { sink.end(reason: reason) }
            }
        }
        self.work.removeAll(keepingCapacity: true)
        self.head = 0
    }

    /// Whether the port path is busy; if so, `proceed` is called again once it is idle (or after the longest wait).
    private func mustWait() -> Bool {
        guard let gate = self.gate, gate.isBusy else { return false }
        self.waiting = true
        gate.whenIdle { timedOut in self.resume(asking: !timedOut) }
        return true
    }

    /// From any thread, once `waiting`: the lane goes on in a later turn of its executor.
    private func resume(asking: Bool) {
        self.executor.execute {
            self.waiting = false
            self.proceed(asking: asking)
        }
    }
}

/// The event bus's state, owned by one queue: sequence numbers, the replay ring, the latest state of every port
/// (for a new subscriber's snapshot) and who is subscribed.
///
/// A value with no clock and no I/O: the runtime feeds it published events; each executor's lane routes them to its
/// subscribers (`SubscriberGroups`), and each subscriber's bounded buffer lives with its connection (`ClientBuffer`).
public struct EventBusState: Sendable {
    public typealias SubscriberID = UInt64

    /// New at each process start: ids of another epoch cannot be resumed.
    public let epoch: String
    private var ring: ReplayRing
    private var latest: [String: BusEvent] = [:]
    private var subscribers: Set<SubscriberID> = []
    private var nextSubscriber: SubscriberID = 1
    public private(set) var counters = Counters()

    public struct Counters: Sendable, Hashable, Codable {
        public var published: [String: UInt64] = [:]
        /// Kept by the runtime: subscribers' buffers are theirs.
        public var clientDroppedLow: UInt64 = 0
        public var clientsClosedSlow: UInt64 = 0
        public var resets: [String: UInt64] = [:]
        public var resumed: UInt64 = 0
        /// Kept by the runtime: times the fan-out stepped aside for the port path, and times it went on after the
        /// longest wait with the port path still busy.
        public var fanoutYields: UInt64 = 0
        public var fanoutYieldTimeouts: UInt64 = 0

        public init() {}

        enum CodingKeys: String, CodingKey {
            case published, resets, resumed
            case clientDroppedLow = "client_dropped_low"
            case clientsClosedSlow = "clients_closed_slow"
            case fanoutYields = "fanout_yields"
            case fanoutYieldTimeouts = "fanout_yield_timeouts"
        }
    }

    public init(epoch: String, replayCapacity: Int) {
        self.epoch = epoch
        self.ring = ReplayRing(capacity: replayCapacity)
    }

    public var subscriberCount: Int { self.subscribers.count }
    public var newestID: BusEventID { BusEventID(epoch: self.epoch, sequence: self.ring.newest) }

    /// Gives `event` the next id and keeps it for replay and snapshots; returns it with its id.
    public mutating func publish(_ event: BusEvent) -> BusEvent {
        var event = event
        event.id = BusEventID(epoch: self.epoch, sequence: self.ring.newest + 1)
        self.ring.append(event)
        self.counters.published[event.type.rawValue, default: 0] += 1
        if let port = event.port {
            switch event.data {
            case .portState: self.latest[port] = event
            case .portDeleted: self.latest[port] = nil
            default: break
            }
        }
        return event
    }

    /// A new subscriber. Without `lastEventID`: the current state of each matching port (oldest name first), then
    /// `sync`. With an id of this epoch still in the ring: exactly the matching events after it. With any other id:
    /// `reset`, the snapshot, then `sync`. Live events follow (the runtime routes them).
    public mutating func subscribe(
        filter: EventFilter, lastEventID: String?, nowMillis: Int64
    ) -> (id: SubscriberID, initial: [BusEvent]) {
        let id = self.nextSubscriber
        self.nextSubscriber += 1
        self.subscribers.insert(id)
        var initial: [BusEvent] = []
        if let text = lastEventID {
            let reason: String
            if let resume = BusEventID(text), resume.epoch == self.epoch {
                if case .events(let events) = self.ring.events(after: resume.sequence) {
                    self.counters.resumed += 1
                    return (id, events.filter(filter.matches))
                }
                reason = "too_old"
            } else if let resume = BusEventID(text), resume.epoch != self.epoch {
                reason = "epoch_changed"
            } else {
                reason = "unknown"
            }
            self.counters.resets[reason, default: 0] += 1
            initial.append(
                BusEvent(
                    id: self.newestID, timeMillis: nowMillis,
                    data: .reset(.init(reason: reason, epoch: self.epoch))))
        }
        let wantsStates = filter.types?.contains(.portState) ?? true
        let ports = wantsStates ? self.latest.keys.filter(filter.wantsPort).sorted() : []
        let snapshot: [BusEvent] = ports.compactMap { self.latest[$0] }
        initial += snapshot
        initial.append(BusEvent(id: self.newestID, timeMillis: nowMillis, data: .sync(.init(ports: snapshot.count))))
        return (id, initial)
    }

    public mutating func unsubscribe(_ id: SubscriberID) {
        self.subscribers.remove(id)
    }

    public func isSubscribed(_ id: SubscriberID) -> Bool { self.subscribers.contains(id) }

    /// The latest state of every port, by name.
    public var portStates: [String: BusEvent] { self.latest }
}

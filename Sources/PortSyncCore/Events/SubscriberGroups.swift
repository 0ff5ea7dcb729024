/// Subscribers grouped by filter, each with what its events go to (`Sink`): a batch of events is matched once per
/// distinct filter, not once per subscriber, and every subscriber of a filter shares one array of its events. A
/// thousand clients of the whole stream cost one pass over the batch.
public struct SubscriberGroups<Sink> {
    private var byFilter: [EventFilter: [EventBusState.SubscriberID: Sink]] = [:]
    private var filterOf: [EventBusState.SubscriberID: EventFilter] = [:]

    public init() {}

    public var count: Int { self.filterOf.count }

    /// Every subscriber's sink.
    public var all: [Sink] { self.byFilter.values.flatMap(\.values) }

    public mutating func add(_ id: EventBusState.SubscriberID, filter: EventFilter, _ sink: Sink) {
        self.remove(id)
        self.filterOf[id] = filter
        self.byFilter[filter, default: [:]][id] = sink
    }

    public mutating func remove(_ id: EventBusState.SubscriberID) {
        guard let filter = self.filterOf.removeValue(forKey: id) else { return }
        self.byFilter[filter]?[id] = nil
        if self.byFilter[filter]?.isEmpty == true { self.byFilter[filter] = nil }
    }

    /// For each filter that matches at least one event of `batch` (oldest first): its subscribers' sinks and the
    /// events it matches, in order.
    public func route(_ batch: [BusEvent]) -> [(sinks: [Sink], events: [BusEvent])] {
        guard !batch.isEmpty else { return [] }
        var routed: [(sinks: [Sink], events: [BusEvent])] = []
        for (filter, sinks) in self.byFilter {
            let events = batch.filter(filter.matches)
            if !events.isEmpty { routed.append((Array(sinks.values), events)) }
        }
        return routed
    }
}

/// The last `capacity` events published, for resuming a stream after `Last-Event-ID`.
///
/// A fixed-size ring: appending is O(1) and never allocates once full; asking for the events after a sequence
/// number is O(answer).
public struct ReplayRing: Sendable {
    public let capacity: Int
    private var slots: [BusEvent?]
    /// Sequence number of the next event to append (sequence numbers are consecutive within an epoch).
    private var next: UInt64 = 1
    private var count = 0

    public init(capacity: Int) {
        self.capacity = Swift.max(capacity, 1)
        self.slots = Array(repeating: nil, count: self.capacity)
    }

    /// Appends `event`, whose sequence number must be the next one.
    public mutating func append(_ event: BusEvent) {
        precondition(
            event.id.sequence == self.next, "replay ring: sequence \(event.id.sequence), expected \(self.next)")
        self.slots[Int(event.id.sequence % UInt64(self.capacity))] = event
        self.next += 1
        self.count = Swift.min(self.count + 1, self.capacity)
    }

    /// The oldest sequence number still held, or `nil` when empty.
    public var oldest: UInt64? { self.count == 0 ? nil : self.next - UInt64(self.count) }

    /// The newest sequence number published, 0 before any.
    public var newest: UInt64 { self.next - 1 }

    public enum Answer: Sendable, Equatable {
        /// Every event after the one asked for (possibly none), oldest first.
        case events([BusEvent])
        /// Events after the one asked for are gone from the ring, or the id is in the future.
        case tooOld
    }

    /// The events after `sequence`.
    public func events(after sequence: UInt64) -> Answer {
        guard sequence <= self.newest else { return .tooOld }
        if sequence == self.newest { return .events([]) }
        guard let oldest = self.oldest, sequence + 1 >= oldest else { return .tooOld }
        var events: [BusEvent] = []
        events.reserveCapacity(Int(self.newest - sequence))
        for number in (sequence + 1)...self.newest {
            if let event = self.slots[Int(number % UInt64(self.capacity))] { events.append(event) }
        }
        return .events(events)
    }
}

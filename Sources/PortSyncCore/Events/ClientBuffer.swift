/// One stream client's bounded buffer between the bus and its connection.
///
/// Overflow policy, so that the bus never waits for a client: when full, a low-priority event in the buffer (the
/// oldest) is dropped to make room; the offered event is dropped instead if it is low itself. When no low event is
/// there to drop, the client is too slow to keep a consistent stream and is closed (reason `slow`): it reconnects
/// with its `Last-Event-ID` and resumes from the replay ring, or gets a `reset` and a fresh snapshot.
public struct ClientBuffer: Sendable {
    public let capacity: Int
    private var events: [BusEvent] = []
    private var head = 0
    public private(set) var droppedLow: UInt64 = 0
    public private(set) var closedSlow = false

    public init(capacity: Int) {
        self.capacity = Swift.max(capacity, 1)
    }

    public var count: Int { self.events.count - self.head }
    public var isEmpty: Bool { self.count == 0 }

    public enum Outcome: Sendable, Equatable {
        case queued
        /// A low-priority event was dropped (the offered one or the oldest queued low one).
        case droppedLow
        /// The client must be closed: reason `slow`.
        case slow
    }

    public mutating func offer(_ event: BusEvent) -> Outcome {
        guard !self.closedSlow else { return .slow }
        if self.count < self.capacity {
            self.events.append(event)
            return .queued
        }
        if event.priority == .low {
            self.droppedLow += 1
            return .droppedLow
        }
        if let index = self.events[self.head...].firstIndex(where: { $0.priority == .low }) {
            self.events.remove(at: index)
            self.events.append(event)
            self.droppedLow += 1
            return .droppedLow
        }
        self.closedSlow = true
        return .slow
    }

    /// Offers `events` in order until one makes the client slow; returns the low-priority events dropped on the
    /// way and whether the client is now too slow.
    public mutating func offer(contentsOf events: [BusEvent]) -> (droppedLow: UInt64, slow: Bool) {
        var dropped: UInt64 = 0
        for event in events {
            switch self.offer(event) {
            case .queued: break
            case .droppedLow: dropped += 1
            case .slow: return (dropped, true)
            }
        }
        return (dropped, false)
    }

    /// Takes every queued event, oldest first.
    public mutating func takeAll() -> [BusEvent] {
        let taken = Array(self.events[self.head...])
        self.events.removeAll(keepingCapacity: true)
        self.head = 0
        return taken
    }
}

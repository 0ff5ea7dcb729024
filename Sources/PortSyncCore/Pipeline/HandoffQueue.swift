/// How urgent a port update is for the Redis writer.
///
/// Ordered by urgency: `.low < .medium < .high`, so `max(a, b)` is the more urgent of the two. `allCases` lists
/// them most urgent first.
public enum HandoffPriority: Int, Sendable, Hashable, CaseIterable, Codable, Comparable {
    /// Deletes, admin and oper status changes.
    case high = 0
    /// Other link changes (MTU, …).
    case medium = 1
    /// Statistics and telemetry.
    case low = 2

    public static func < (lhs: HandoffPriority, rhs: HandoffPriority) -> Bool { lhs.rawValue > rhs.rawValue }
}

/// What the hand-off does with an offered item when it is full (`pipeline.drop_policy`).
public enum HandoffPolicy: String, Sendable, Hashable, CaseIterable, Codable {
    /// Refuse the item (`.full`); the owner stops intake, drains, and offers it again.
    case block
    /// Evict the oldest item of the lowest priority queued.
    case dropOldest = "drop_oldest"
    /// Drop the offered item: the only policy that may lose a port's final state whatever its priority.
    case dropNewest = "drop_newest"
    /// Per-port latest-wins: merge with the port's newest queued item, or merge two items of another port to make
    /// room; refuse (`.full`) when nothing can merge. A port's final state is never dropped.
    case coalesce
    /// `block`, `coalesce` or shed, by the wait of the oldest queued item (`AdaptiveThresholds`).
    case adaptive
}

/// Where the `adaptive` policy changes behaviour, as the wait of the oldest queued item in microseconds.
public struct AdaptiveThresholds: Sendable, Hashable, Codable {
    /// A wait below this blocks.
    public var blockBelowMicros: UInt64 = 100
    /// A wait above this sheds. A wait from `blockBelowMicros` to `shedAboveMicros`, both included, coalesces.
    public var shedAboveMicros: UInt64 = 1000

    public init(blockBelowMicros: UInt64 = 100, shedAboveMicros: UInt64 = 1000) {
        self.blockBelowMicros = blockBelowMicros
        self.shedAboveMicros = shedAboveMicros
    }
}

/// What the `adaptive` policy does with an offered item when the queue is full.
public enum AdaptiveMode: String, Sendable, Hashable, CaseIterable, Codable {
    /// As `block`: the queue is moving, the owner pauses intake briefly.
    case block
    /// As `coalesce`.
    case coalesce
    /// Low priority goes first (the offered low item, else the oldest queued low item); medium and high are
    /// coalesced, never dropped, and refused (`.full`) when nothing can merge.
    case shed
}

/// One port update waiting for the writer.
public struct HandoffItem<Payload: Sendable>: Sendable {
    /// The port (the Redis key part): items of one key leave in the order they were offered.
    public var key: String
    public var priority: HandoffPriority
    /// The pipeline's trace id of the message this item carries.
    public var trace: UInt64
    /// When the item's slot was queued (monotonic microseconds). `offer` sets it; a coalesced slot keeps its own.
    public var enqueuedAt: UInt64
    public var payload: Payload

    public init(key: String, priority: HandoffPriority, trace: UInt64, enqueuedAt: UInt64 = 0, payload: Payload) {
        self.key = key
        self.priority = priority
        self.trace = trace
        self.enqueuedAt = enqueuedAt
        self.payload = payload
    }
}

extension HandoffItem: Equatable where Payload: Equatable {}
extension HandoffItem: Hashable where Payload: Hashable {}

/// What `offer` did with an item.
public enum OfferOutcome: Sendable, Hashable {
    /// Queued as a new item.
    case accepted
    /// Queued by merging: `replacedTrace` is the trace whose content was overwritten (the port's previous newest
    /// item, or the older of two items of a port merged to make room).
    case coalesced(replacedTrace: UInt64)
    /// Queued after evicting an older item, which is lost.
    case droppedOldest(victimTrace: UInt64, victimPriority: HandoffPriority)
    /// The offered item is lost.
    case droppedNewest
    /// Nothing stored: the owner must stop intake, drain, and offer the same item again.
    case full
}

/// A count per priority.
public struct HandoffPriorityCounts: Sendable, Codable, Hashable {
    public var high: UInt64 = 0
    public var medium: UInt64 = 0
    public var low: UInt64 = 0

    public init(high: UInt64 = 0, medium: UInt64 = 0, low: UInt64 = 0) {
        self.high = high
        self.medium = medium
        self.low = low
    }

    public subscript(priority: HandoffPriority) -> UInt64 {
        get {
            switch priority {
            case .high: self.high
            case .medium: self.medium
            case .low: self.low
            }
        }
        set {
            switch priority {
            case .high: self.high = newValue
            case .medium: self.medium = newValue
            case .low: self.low = newValue
            }
        }
    }

    public var total: UInt64 { self.high &+ self.medium &+ self.low }
}

/// What the hand-off did since it was created. Every offer is counted once, by its outcome.
public struct HandoffCounters: Sendable, Codable, Hashable {
    /// Items offered.
    public var offered: UInt64 = 0
    /// Offers queued as a new item (`.accepted`).
    public var accepted: UInt64 = 0
    /// Offers merged (`.coalesced`).
    public var coalesced: UInt64 = 0
    /// Items evicted by `.droppedOldest`, by the evicted item's priority.
    public var droppedOldest = HandoffPriorityCounts()
    /// Offered items dropped (`.droppedNewest`), by their priority.
    public var droppedNewest = HandoffPriorityCounts()
    /// Backpressure events: offers refused with `.full`.
    public var full: UInt64 = 0
    /// Items taken by the writer.
    public var taken: UInt64 = 0
    /// The largest number of items queued at once.
    public var maxDepth: Int = 0

    public init() {}

    /// The offers counted by outcome; always equal to `offered`.
    public var outcomes: UInt64 {
        self.accepted &+ self.coalesced &+ self.droppedOldest.total &+ self.droppedNewest.total &+ self.full
    }
}

/// The bounded hand-off between the pipeline (which offers) and the Redis writer (which takes).
///
/// A value-type state machine confined to the port queue: no I/O, no lock, no clock (the owner passes `now`,
/// monotonic microseconds).
///
/// **Order.** The queue is a set of per-port FIFOs. `take` finds the oldest item of the most urgent priority that
/// has any, and returns the oldest item *of that item's port*: the item itself, or an earlier item of the same
/// port pulled forward. So:
/// - items of one port always leave in the order they were offered, whatever their priorities (per-port order is
///   absolute: an item never overtakes an earlier queued item of its key);
/// - among ports, the most urgent pending item wins, oldest first within a priority; equivalently, a port's
///   effective priority is the highest of its queued items, ties going to the port whose item of that priority
///   is the oldest;
/// - a less urgent item leaves early only to make way for a later, more urgent item of its own port.
///
/// **Capacity.** While the queue has room every offer is queued: no policy merges or drops then (SONiC writes every
/// message). When it is full (`count >= capacity`), `policy` decides; an offer then never makes the queue longer.
/// Changing `capacity` or `policy` keeps every queued item; a queue over its new capacity shrinks as it is taken.
///
/// **Cost.** `offer`, `take` and `mode(now:)` are O(1) amortised (hash look-ups, no scan of the queue); memory is
/// O(capacity).
public struct HandoffQueue<Payload: Sendable>: Sendable {
    /// The most items queued before the policy applies; at least 1 (a smaller value is read as 1).
    public var capacity: Int {
        get { self.storedCapacity }
        set { self.storedCapacity = max(newValue, 1) }
    }
    public var policy: HandoffPolicy
    public var adaptive: AdaptiveThresholds
    public internal(set) var counters = HandoffCounters()
    /// Items queued.
    public internal(set) var count = 0

    var storedCapacity: Int
    /// Every queued item by its slot's sequence number. A slot's key and priority never change; a sequence
    /// number is never reused, so a sequence absent from here is dead wherever it is still listed.
    var slots: [UInt64: HandoffItem<Payload>] = [:]
    /// Each port's slots, oldest first.
    var ports: [String: HandoffPortQueue] = [:]
    /// Each priority's slots, oldest first, indexed by `rawValue`.
    var lanes = [HandoffDeque<UInt64>](repeating: HandoffDeque(), count: HandoffPriority.allCases.count)
    /// Live slots per priority, indexed by `rawValue`.
    var depths = [Int](repeating: 0, count: HandoffPriority.allCases.count)
    /// Ports holding two items or more, in the order they came to (lazily cleaned).
    var multiPorts = HandoffDeque<HandoffMultiEntry>()
    /// Ports holding two items or more.
    var multiPortCount = 0
    var nextSequence: UInt64 = 0
    var nextStamp: UInt64 = 0

    public init(capacity: Int, policy: HandoffPolicy, adaptive: AdaptiveThresholds = .init()) {
        self.storedCapacity = max(capacity, 1)
        self.policy = policy
        self.adaptive = adaptive
    }

    public var isEmpty: Bool { self.count == 0 }
    public var isFull: Bool { self.count >= self.storedCapacity }
    /// Ports with at least one queued item.
    public var portCount: Int { self.ports.count }

    /// Items of `priority` queued.
    public func count(of priority: HandoffPriority) -> Int { self.depths[priority.rawValue] }

    /// When the oldest queued item was queued, or `nil` when empty.
    public var oldestEnqueuedAt: UInt64? {
        var oldest: UInt64?
        for lane in self.lanes {
            guard let sequence = lane.first, let item = self.slots[sequence] else { continue }
            oldest = min(oldest ?? item.enqueuedAt, item.enqueuedAt)
        }
        return oldest
    }

    /// How long the oldest queued item has waited at `now`; 0 when empty (or if `now` is earlier).
    public func headWaitMicros(now: UInt64) -> UInt64 {
        guard let oldest = self.oldestEnqueuedAt, now > oldest else { return 0 }
        return now - oldest
    }

    /// What `adaptive` does with a full queue at `now` (whatever the current policy): a head wait below
    /// `blockBelowMicros` blocks, above `shedAboveMicros` sheds, and coalesces from one to the other, both included.
    public func mode(now: UInt64) -> AdaptiveMode {
        let wait = self.headWaitMicros(now: now)
        if wait < self.adaptive.blockBelowMicros { return .block }
        if wait > self.adaptive.shedAboveMicros { return .shed }
        return .coalesce
    }

    /// Offers one item at `now` (which becomes its `enqueuedAt`); see `HandoffPolicy` for a full queue.
    public mutating func offer(_ item: HandoffItem<Payload>, now: UInt64) -> OfferOutcome {
        var item = item
        item.enqueuedAt = now
        let outcome: OfferOutcome
        if !self.isFull {
            self.insertSlot(item)
            outcome = .accepted
        } else {
            outcome = self.offerWhenFull(item, now: now)
        }
        self.counters.offered &+= 1
        switch outcome {
        case .accepted: self.counters.accepted &+= 1
        case .coalesced: self.counters.coalesced &+= 1
        case .droppedOldest(_, let victimPriority): self.counters.droppedOldest[victimPriority] &+= 1
        case .droppedNewest: self.counters.droppedNewest[item.priority] &+= 1
        case .full: self.counters.full &+= 1
        }
        return outcome
    }

    /// The next item to write (see the order above) and how long it waited at `now`, or `nil` when empty.
    public mutating func take(now: UInt64) -> (item: HandoffItem<Payload>, waitMicros: UInt64)? {
        guard let lead = self.lanes.lazy.compactMap(\.first).first,
            let key = self.slots[lead]?.key,
            let sequence = self.ports[key]?.sequences.first,
            let item = self.removeSlot(sequence)
        else { return nil }
        self.counters.taken &+= 1
        return (item, now > item.enqueuedAt ? now - item.enqueuedAt : 0)
    }
}

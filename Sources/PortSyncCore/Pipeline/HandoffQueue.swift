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

    @inlinable
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

    @inlinable
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

    @inlinable
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

    @inlinable
    public init(high: UInt64 = 0, medium: UInt64 = 0, low: UInt64 = 0) {
        self.high = high
        self.medium = medium
        self.low = low
    }

    public subscript(priority: HandoffPriority) -> UInt64 {
        @inlinable get {
            switch priority {
            case .high: self.high
            case .medium: self.medium
            case .low: self.low
            }
        }
        @inlinable set {
            switch priority {
            case .high: self.high = newValue
            case .medium: self.medium = newValue
            case .low: self.low = newValue
            }
        }
    }

    @inlinable public var total: UInt64 { self.high &+ self.medium &+ self.low }
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

    @inlinable public init() {}

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
/// **Cost.** `offer`, `take` and `mode(now:)` are O(1): an offer hashes its key once, a take hashes nothing, and
/// nothing ever scans the queue (see `HandoffQueue+Storage`).
/// Memory is O(capacity), and storage freed by a take is reused by the next offer, so a queue that has reached
/// its working size allocates nothing more. The type is `@inlinable` so that the pipeline's module specializes
/// it for its payload.
public struct HandoffQueue<Payload: Sendable>: Sendable {
    /// The most items queued before the policy applies; at least 1 (a smaller value is read as 1).
    public var capacity: Int {
        @inlinable get { self.storedCapacity }
        @inlinable set { self.storedCapacity = max(newValue, 1) }
    }
    public var policy: HandoffPolicy
    public var adaptive: AdaptiveThresholds
    /// What the hand-off did since it was created.
    @inlinable public var counters: HandoffCounters { self.storedCounters }
    /// Items queued.
    @inlinable public var count: Int { self.storedCount }

    @usableFromInline var storedCapacity: Int
    @usableFromInline var storedCounters = HandoffCounters()
    @usableFromInline var storedCount = 0
    /// Every queued item, in a node linked into its lane and its port's queue; free nodes are reused.
    @usableFromInline var nodes: ContiguousArray<HandoffNode<Payload>> = []
    /// The first free node (linked through `laneNext`), or `HandoffLink.none`.
    @usableFromInline var freeNode = HandoffLink.none
    /// Each priority's nodes, oldest first, and how many.
    @usableFromInline var laneLists = HandoffLanes()
    /// The record of each port with at least one queued item, by key.
    @usableFromInline var portIndex = PortHashIndex()
    /// The key of `portIndex`'s hash.
    @usableFromInline let portSeed = PortHash.randomSeed()
    /// Port records: in use (`live > 0`) or free (linked through `oldest`) for reuse.
    @usableFromInline var portRecords: ContiguousArray<HandoffPort> = []
    /// The first free port record, or `HandoffLink.none`.
    @usableFromInline var freePort = HandoffLink.none
    /// Ports holding two items or more, in the order they came to (linked through `multiPrevious`/`multiNext`).
    @usableFromInline var multiList = HandoffList()
    /// Ports holding two items or more.
    @usableFromInline var multiPortCount = 0
    @usableFromInline var nextSequence: UInt64 = 0
    @usableFromInline var nextStamp: UInt64 = 0

    @inlinable
    public init(capacity: Int, policy: HandoffPolicy, adaptive: AdaptiveThresholds = .init()) {
        self.storedCapacity = max(capacity, 1)
        self.policy = policy
        self.adaptive = adaptive
    }

    @inlinable public var isEmpty: Bool { self.storedCount == 0 }
    @inlinable public var isFull: Bool { self.storedCount >= self.storedCapacity }
    /// Ports with at least one queued item.
    @inlinable public var portCount: Int { self.portIndex.count }

    /// Items of `priority` queued.
    @inlinable
    public func count(of priority: HandoffPriority) -> Int { self.laneLists[priority].count }

    /// When the oldest queued item was queued, or `nil` when empty.
    @inlinable
    public var oldestEnqueuedAt: UInt64? {
        var oldest: UInt64?
        for priority in HandoffPriority.allCases {
            let head = self.laneLists[priority].head
            guard self.isLive(head) else { continue }
            let enqueuedAt = self.nodes[Int(head)].enqueuedAt
            oldest = min(oldest ?? enqueuedAt, enqueuedAt)
        }
        return oldest
    }

    /// How long the oldest queued item has waited at `now`; 0 when empty (or if `now` is earlier).
    @inlinable
    public func headWaitMicros(now: UInt64) -> UInt64 {
        guard let oldest = self.oldestEnqueuedAt, now > oldest else { return 0 }
        return now - oldest
    }

    /// What `adaptive` does with a full queue at `now` (whatever the current policy): a head wait below
    /// `blockBelowMicros` blocks, above `shedAboveMicros` sheds, and coalesces from one to the other, both included.
    @inlinable
    public func mode(now: UInt64) -> AdaptiveMode {
        let wait = self.headWaitMicros(now: now)
        if wait < self.adaptive.blockBelowMicros { return .block }
        if wait > self.adaptive.shedAboveMicros { return .shed }
        return .coalesce
    }

    /// Offers one item at `now` (which becomes its `enqueuedAt`); see `HandoffPolicy` for a full queue.
    @inlinable
    public mutating func offer(_ item: consuming HandoffItem<Payload>, now: UInt64) -> OfferOutcome {
        item.enqueuedAt = now
        let priority = item.priority
        let outcome: OfferOutcome
        if !self.isFull {
            self.insertSlot(item)
            outcome = .accepted
        } else {
            outcome = self.offerWhenFull(item, now: now)
        }
        self.storedCounters.offered &+= 1
        switch outcome {
        case .accepted: self.storedCounters.accepted &+= 1
        case .coalesced: self.storedCounters.coalesced &+= 1
        case .droppedOldest(_, let victimPriority): self.storedCounters.droppedOldest[victimPriority] &+= 1
        case .droppedNewest: self.storedCounters.droppedNewest[priority] &+= 1
        case .full: self.storedCounters.full &+= 1
        }
        return outcome
    }

    /// The next item to write (see the order above) and how long it waited at `now`, or `nil` when empty.
    @inlinable
    public mutating func take(now: UInt64) -> (item: HandoffItem<Payload>, waitMicros: UInt64)? {
        guard let lead = self.leadNode() else { return nil }
        return self.take(port: self.nodes[lead].port, now: now)
    }

    /// The next item of `priority`'s lane, for a sender that drains one priority (`BatchSendMode.async`): the oldest
    /// item of that priority, or an earlier item of its port pulled forward (per-port order is absolute here too);
    /// `nil` when the lane is empty. The item returned may therefore be of another priority than `priority`.
    @inlinable
    public mutating func take(
        from priority: HandoffPriority, now: UInt64
    ) -> (item: HandoffItem<Payload>, waitMicros: UInt64)? {
        let lead = self.laneLists[priority].head
        guard lead != HandoffLink.none else { return nil }
        return self.take(port: self.nodes[Int(lead)].port, now: now)
    }

    /// Takes the oldest item of port record `port`.
    @inlinable
    mutating func take(port: Int32, now: UInt64) -> (item: HandoffItem<Payload>, waitMicros: UInt64)? {
        guard let item = self.removeSlot(self.portRecords[Int(port)].oldest) else { return nil }
        self.storedCounters.taken &+= 1
        return (item, now > item.enqueuedAt ? now - item.enqueuedAt : 0)
    }
}

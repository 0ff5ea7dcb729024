/// When each command still awaiting its reply on one connection was sent, oldest first. Redis answers a
/// connection's commands in order, so a reply always answers the oldest.
///
/// It tells how long Redis has kept the oldest write waiting: from what Redis does, not from the socket (a
/// stopped or hung server keeps its socket open and answers nothing).
public struct OutstandingWrites: Sendable {
    private var sentAt: [UInt64] = []
    private var head = 0

    public init() {}

    /// Commands awaiting a reply.
    public var count: Int { self.sentAt.count - self.head }

    /// When the oldest unanswered command was sent (monotonic µs); nil when none is.
    public var oldest: UInt64? { self.head < self.sentAt.count ? self.sentAt[self.head] : nil }

    public mutating func sent(at now: UInt64) { self.sentAt.append(now) }

    /// The oldest command was answered; returns when it was sent.
    @discardableResult
    public mutating func answered() -> UInt64? {
        guard self.head < self.sentAt.count else { return nil }
        let sent = self.sentAt[self.head]
        self.head += 1
        if self.head == self.sentAt.count {
            self.sentAt.removeAll(keepingCapacity: true)
            self.head = 0
        } else if self.head >= 1024 && self.head * 2 >= self.sentAt.count {
            self.sentAt.removeFirst(self.head)
            self.head = 0
        }
        return sent
    }

    /// The connection is gone: nothing will be answered.
    public mutating func reset() {
        self.sentAt.removeAll(keepingCapacity: true)
        self.head = 0
    }
}

/// Whether Redis keeps a write waiting longer than a threshold, and how often it did: episodes begin when the
/// oldest unanswered write passes the threshold and end when it is answered (or the connection is lost).
public struct RedisStallTracker: Sendable {
    public var thresholdMicros: UInt64
    /// Since when (monotonic µs) the current stall's oldest write waits; nil while Redis answers in time.
    public private(set) var stalledSince: UInt64?
    /// Episodes so far.
    public private(set) var episodes = 0
    /// The longest wait seen, in µs.
    public private(set) var longestMicros: UInt64 = 0

    public init(thresholdMicros: UInt64) { self.thresholdMicros = thresholdMicros }

    public enum Change: Sendable, Equatable {
        case began(waitingMicros: UInt64)
        case ended(lastedMicros: UInt64)
    }

    /// Looks at the oldest unanswered write (`oldest`: when it was sent, nil if none) at `now`.
    public mutating func check(oldest: UInt64?, now: UInt64) -> Change? {
        let waiting = oldest.map { now &- $0 } ?? 0
        if oldest != nil { self.longestMicros = max(self.longestMicros, waiting) }
        if let since = self.stalledSince {
            guard oldest == nil || waiting <= self.thresholdMicros else { return nil }
            self.stalledSince = nil
            return .ended(lastedMicros: now &- since)
        }
        guard let oldest, waiting > self.thresholdMicros else { return nil }
        self.stalledSince = oldest
        self.episodes += 1
        return .began(waitingMicros: waiting)
    }

    /// A write sent at `sent` answered at `now`: a stall no check saw (it began and ended between two) still counts,
    /// once; the next `check` ends it.
    public mutating func answered(sent: UInt64, now: UInt64) -> Change? {
        let waited = now &- sent
        self.longestMicros = max(self.longestMicros, waited)
        guard self.stalledSince == nil, waited > self.thresholdMicros else { return nil }
        self.stalledSince = sent
        self.episodes += 1
        return .began(waitingMicros: waited)
    }
}

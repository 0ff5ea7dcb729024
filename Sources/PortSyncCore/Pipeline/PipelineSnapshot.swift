/// Counts of what every pipeline stage did, per outcome and per reason, in fixed arrays.
///
/// Contract: `count` is constant time and does not allocate (two counters incremented in place in arrays
/// allocated by `init`; copy-on-write as for any array). Single-threaded, like the port queue that owns it.
public struct StageCounters: Sendable, Hashable {
    private static let stageCount = PipelineStage.allCases.count
    private static let outcomeCount = StageOutcome.allCases.count
    private static let reasonCount = StageReason.allCases.count

    /// Per stage, its counts per outcome and then per reason: `[stage][outcome, reason]`, flattened into one array
    /// so that counting checks one buffer.
    @usableFromInline var counts: [UInt64]
    /// `outcomeCount` and `outcomeCount + reasonCount`, kept here so that `count` reads no global.
    @usableFromInline let outcomeStride: Int
    @usableFromInline let stageStride: Int

    /// Every counter at zero. Allocates the counters once.
    public init() {
        self.outcomeStride = Self.outcomeCount
        self.stageStride = Self.outcomeCount + Self.reasonCount
        self.counts = Array(repeating: 0, count: Self.stageCount * self.stageStride)
    }

    /// Counts one message that `stage` handled with `outcome` for `reason`. Constant time; does not allocate.
    @inlinable
    public mutating func count(_ stage: PipelineStage, _ outcome: StageOutcome, _ reason: StageReason = .none) {
        let base = stage.counterIndex * self.stageStride
        self.counts.withUnsafeMutableBufferPointer { counts in
            counts[base + outcome.counterIndex] &+= 1
            counts[base + self.outcomeStride + Int(reason.rawValue)] &+= 1
        }
    }

    /// Counts what one stage event says.
    public mutating func count(_ event: StageEvent) {
        self.count(event.stage, event.outcome, event.reason)
    }

    /// How many messages `stage` handled with `outcome`.
    public func total(_ stage: PipelineStage, _ outcome: StageOutcome) -> UInt64 {
        self.counts[stage.counterIndex * self.stageStride + outcome.counterIndex]
    }

    /// How many messages `stage` handled for `reason`, whatever the outcome.
    public func total(_ stage: PipelineStage, reason: StageReason) -> UInt64 {
        self.counts[stage.counterIndex * self.stageStride + self.outcomeStride + Int(reason.rawValue)]
    }

    /// How many messages `stage` handled, whatever the outcome.
    public func total(_ stage: PipelineStage) -> UInt64 {
        var sum: UInt64 = 0
        for outcome in 0..<self.outcomeStride { sum &+= self.counts[stage.counterIndex * self.stageStride + outcome] }
        return sum
    }

    /// Every counter back to zero, keeping the storage.
    public mutating func reset() {
        for index in self.counts.indices { self.counts[index] = 0 }
    }

    /// Adds every counter of `other` to this one.
    public mutating func merge(_ other: StageCounters) {
        for index in self.counts.indices { self.counts[index] &+= other.counts[index] }
    }
}

extension PipelineStage {
    /// The stage's position in `allCases`, without building `allCases`.
    @inlinable
    var counterIndex: Int {
        switch self {
        case .receive: 0
        case .prefilter: 1
        case .extract: 2
        case .validate: 3
        case .handoff: 4
        case .write: 5
        }
    }
}

extension StageOutcome {
    /// The outcome's position in `allCases`, without building `allCases`.
    @inlinable
    var counterIndex: Int {
        switch self {
        case .pass: 0
        case .ignore: 1
        case .reject: 2
        case .coalesce: 3
        case .drop: 4
        case .done: 5
        }
    }
}

/// The figures of one `LatencyHistogram`, in microseconds, as reported in a `PipelineSnapshot`.
///
/// `under_10us`, `under_100us` and `under_1ms` each include the ones before; `under_1ms + at_least_1ms == count`.
public struct LatencySummary: Codable, Sendable, Equatable {
    /// Durations measured.
    public var count: UInt64
    /// The median (`p50_us`).
    public var p50: UInt64
    /// The 99th percentile (`p99_us`).
    public var p99: UInt64
    /// The 99.9th percentile (`p999_us`).
    public var p999: UInt64
    /// The longest duration (`max_us`).
    public var max: UInt64
    /// Durations under 10 µs (`under_10us`).
    public var under10us: UInt64
    /// Durations under 100 µs, those under 10 µs included (`under_100us`).
    public var under100us: UInt64
    /// Durations under 1 ms, those under 100 µs included (`under_1ms`).
    public var under1ms: UInt64
    /// Durations of 1 ms or more (`at_least_1ms`).
    public var atLeast1ms: UInt64
    /// The sum of the durations (`sum_us`), for a Prometheus histogram's `_sum`.
    public var sumMicros: UInt64

    /// A summary from its figures; every one defaults to 0.
    public init(
        count: UInt64 = 0, p50: UInt64 = 0, p99: UInt64 = 0, p999: UInt64 = 0, max: UInt64 = 0,
        under10us: UInt64 = 0, under100us: UInt64 = 0, under1ms: UInt64 = 0, atLeast1ms: UInt64 = 0,
        sumMicros: UInt64 = 0
    ) {
        self.count = count
        self.p50 = p50
        self.p99 = p99
        self.p999 = p999
        self.max = max
        self.under10us = under10us
        self.under100us = under100us
        self.under1ms = under1ms
        self.atLeast1ms = atLeast1ms
        self.sumMicros = sumMicros
    }

    /// The summary of a histogram: its count, p50, p99, p99.9, max and the four fixed buckets.
    public init(_ histogram: LatencyHistogram) {
        let buckets = histogram.bucketCounts()
        self.init(
            count: histogram.count, p50: histogram.percentile(50), p99: histogram.percentile(99),
            p999: histogram.percentile(99.9), max: histogram.max, under10us: buckets.under10us,
            under100us: buckets.under100us, under1ms: buckets.under1ms, atLeast1ms: buckets.atLeast1ms,
            sumMicros: UInt64((histogram.mean * Double(histogram.count)).rounded()))
    }

    enum CodingKeys: String, CodingKey {
        case count
        case p50 = "p50_us"
        case p99 = "p99_us"
        case p999 = "p999_us"
        case max = "max_us"
        case under10us = "under_10us"
        case under100us = "under_100us"
        case under1ms = "under_1ms"
        case atLeast1ms = "at_least_1ms"
        case sumMicros = "sum_us"
    }
}

/// What the pipeline reports at one moment: messages, per-stage outcomes, the hand-off and the Redis writer.
///
/// A plain value, built by the owner of the counters on its own queue and then handed anywhere (it is `Sendable`),
/// so taking one never stops the pipeline. JSON keys are snake_case. Dictionaries over a small fixed set (stages,
/// outcomes) list every member, zeros included; dictionaries over reasons list only the reasons counted at least
/// once.
public struct PipelineSnapshot: Codable, Sendable, Equatable {
    /// When the snapshot was taken, in microseconds of the monotonic clock (`taken_at_us`).
    public var takenAtMicros: UInt64
    /// Seconds since the daemon started (`uptime_s`).
    public var uptimeSeconds: Double
    /// What the receive stage saw.
    public var messages: Messages
    /// Per stage (keyed by `PipelineStage.rawValue`): counts per outcome and per reason.
    public var stages: [String: StageCounts]
    /// The bounded queue between validation and the writer.
    public var handoff: Handoff
    /// The Redis writer.
    public var writer: Writer
    /// Port updates handed to the writer (`candidates_sent`).
    public var candidatesSent: UInt64

    /// A snapshot from its parts; `stages` defaults to every stage at zero.
    public init(
        takenAtMicros: UInt64 = 0, uptimeSeconds: Double = 0, messages: Messages = Messages(),
        stages: [String: StageCounts] = PipelineSnapshot.stages(StageCounters()), handoff: Handoff = Handoff(),
        writer: Writer = Writer(), candidatesSent: UInt64 = 0
    ) {
        self.takenAtMicros = takenAtMicros
        self.uptimeSeconds = uptimeSeconds
        self.messages = messages
        self.stages = stages
        self.handoff = handoff
        self.writer = writer
        self.candidatesSent = candidatesSent
    }

    /// The `stages` entry for a set of counters: every stage, every outcome (zeros included), the reasons counted
    /// at least once other than `none`.
    public static func stages(_ counters: StageCounters) -> [String: StageCounts] {
        var result: [String: StageCounts] = [:]
        for stage in PipelineStage.allCases {
            var outcomes: [String: UInt64] = [:]
            for outcome in StageOutcome.allCases { outcomes[outcome.rawValue] = counters.total(stage, outcome) }
            var reasons: [String: UInt64] = [:]
            for reason in StageReason.allCases where reason != .none {
                let total = counters.total(stage, reason: reason)
                if total > 0 { reasons[reason.name] = total }
            }
            result[stage.rawValue] = StageCounts(outcomes: outcomes, reasons: reasons)
        }
        return result
    }

    /// What one stage did: messages per outcome (`StageOutcome.rawValue`) and per reason (`StageReason.name`).
    public struct StageCounts: Codable, Sendable, Equatable {
        /// Messages per outcome, every outcome listed.
        public var outcomes: [String: UInt64]
        /// Messages per reason, only the reasons counted at least once (never `none`).
        public var reasons: [String: UInt64]

        /// Counts from their dictionaries; both default to empty.
        public init(outcomes: [String: UInt64] = [:], reasons: [String: UInt64] = [:]) {
            self.outcomes = outcomes
            self.reasons = reasons
        }
    }

    /// Datagrams and netlink messages received.
    public struct Messages: Codable, Sendable, Equatable {
        /// Datagrams read from the netlink socket.
        public var datagrams: UInt64
        /// Bytes in those datagrams.
        public var bytes: UInt64
        /// `RTM_NEWLINK` messages.
        public var newlink: UInt64
        /// `RTM_DELLINK` messages.
        public var dellink: UInt64
        /// Well-formed messages of any other type.
        public var other: UInt64
        /// Messages refused by the decoder, per reason (`NetlinkDecodeError.kind`).
        public var malformed: [String: UInt64]

        /// Counts from their values; every one defaults to zero.
        public init(
            datagrams: UInt64 = 0, bytes: UInt64 = 0, newlink: UInt64 = 0, dellink: UInt64 = 0, other: UInt64 = 0,
            malformed: [String: UInt64] = [:]
        ) {
            self.datagrams = datagrams
            self.bytes = bytes
            self.newlink = newlink
            self.dellink = dellink
            self.other = other
            self.malformed = malformed
        }

        /// Malformed messages, every reason together.
        public var malformedTotal: UInt64 { self.malformed.values.reduce(0, &+) }
        /// Every message: new, del, other and malformed.
        public var total: UInt64 { self.newlink &+ self.dellink &+ self.other &+ self.malformedTotal }
    }

    /// The bounded hand-off queue.
    public struct Handoff: Codable, Sendable, Equatable {
        /// Messages waiting now.
        public var depth: Int
        /// The most messages it holds (`stream_buffer_capacity`).
        public var capacity: Int
        /// The drop policy's configuration name (`block`, `drop_oldest`, `drop_newest`, `coalesce`, `adaptive`).
        public var policy: String
        /// Times a producer had to wait or shed because the queue was full or slow (`backpressure_events`).
        public var backpressureEvents: UInt64
        /// Messages lost because the buffer was full (`dropped_full_buffer`); a part of `dropped`.
        public var droppedFullBuffer: UInt64
        /// Every message lost, per priority (`high`, `medium`, `low`) and per reason (`StageReason.name`).
        public var dropped: [String: [String: UInt64]]
        /// Messages merged into a later state of the same port.
        public var coalesced: UInt64
        /// Send attempts retried.
        public var retries: UInt64
        /// How long messages waited in the queue.
        public var wait: LatencySummary

        /// Figures from their values; every one defaults to zero (and `policy` to empty).
        public init(
            depth: Int = 0, capacity: Int = 0, policy: String = "", backpressureEvents: UInt64 = 0,
            droppedFullBuffer: UInt64 = 0, dropped: [String: [String: UInt64]] = [:], coalesced: UInt64 = 0,
            retries: UInt64 = 0, wait: LatencySummary = LatencySummary()
        ) {
            self.depth = depth
            self.capacity = capacity
            self.policy = policy
            self.backpressureEvents = backpressureEvents
            self.droppedFullBuffer = droppedFullBuffer
            self.dropped = dropped
            self.coalesced = coalesced
            self.retries = retries
            self.wait = wait
        }

        /// Every message lost, every priority and reason together.
        public var droppedTotal: UInt64 {
            self.dropped.values.reduce(0) { total, reasons in reasons.values.reduce(total, &+) }
        }

        enum CodingKeys: String, CodingKey {
            case depth, capacity, policy
            case backpressureEvents = "backpressure_events"
            case droppedFullBuffer = "dropped_full_buffer"
            case dropped, coalesced, retries, wait
        }
    }

    /// The Redis writer.
    public struct Writer: Codable, Sendable, Equatable {
        /// Commands sent and not yet answered (`in_flight`).
        public var inFlight: Int
        /// STATE_DB writes acknowledged.
        public var writes: UInt64
        /// STATE_DB deletes acknowledged.
        public var deletes: UInt64
        /// Commands answered with an error.
        public var errors: UInt64
        /// Connections re-established after a loss.
        public var reconnects: UInt64
        /// From sending a command to its answer.
        public var latency: LatencySummary

        /// Figures from their values; every one defaults to zero.
        public init(
            inFlight: Int = 0, writes: UInt64 = 0, deletes: UInt64 = 0, errors: UInt64 = 0, reconnects: UInt64 = 0,
            latency: LatencySummary = LatencySummary()
        ) {
            self.inFlight = inFlight
            self.writes = writes
            self.deletes = deletes
            self.errors = errors
            self.reconnects = reconnects
            self.latency = latency
        }

        enum CodingKeys: String, CodingKey {
            case inFlight = "in_flight"
            case writes, deletes, errors, reconnects, latency
        }
    }

    enum CodingKeys: String, CodingKey {
        case takenAtMicros = "taken_at_us"
        case uptimeSeconds = "uptime_s"
        case messages, stages, handoff, writer
        case candidatesSent = "candidates_sent"
    }

    /// One short line for systemd's `STATUS=`, e.g.
    /// `msgs 1234 (12 malformed), sent 1200, handoff 3/2048 p99 40µs, drops 0, redis p99 180µs`.
    ///
    /// `msgs` is `messages.total`, `sent` is `candidatesSent`, `drops` is `handoff.droppedTotal`; a latency is
    /// written in µs below 1 ms, in ms below 1 s and in s above, and as `-` when nothing was measured yet.
    public func statusSummary() -> String {
        let parts = [
            "msgs \(self.messages.total) (\(self.messages.malformedTotal) malformed)",
            "sent \(self.candidatesSent)",
            "handoff \(self.handoff.depth)/\(self.handoff.capacity) p99 \(Self.duration(self.handoff.wait))",
            "drops \(self.handoff.droppedTotal)",
            "redis p99 \(Self.duration(self.writer.latency))",
        ]
        return parts.joined(separator: ", ")
    }

    /// A p99 as `40µs`, `1.2ms` or `3.4s` (rounded to a tenth), or `-` without samples.
    static func duration(_ summary: LatencySummary) -> String {
        guard summary.count > 0 else { return "-" }
        let micros = summary.p99
        if micros < 1000 { return "\(micros)µs" }
        if micros < 999_950 { return Self.tenths(micros, unit: 1000, suffix: "ms") }
        return Self.tenths(micros, unit: 1_000_000, suffix: "s")
    }

    private static func tenths(_ micros: UInt64, unit: UInt64, suffix: String) -> String {
        let tenths = (micros + unit / 20) / (unit / 10)
        return "\(tenths / 10).\(tenths % 10)\(suffix)"
    }
}

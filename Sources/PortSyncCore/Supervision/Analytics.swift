internal import Foundation

/// What the analytics worker reads from the port path at each tick: cumulative counters and histograms, taken on
/// the port queue and handed over as a value.
public struct PortPathSample: Sendable {
    /// Monotonic microseconds.
    public var takenAtMicros: UInt64
    /// Events handed to the writer so far (`candidates_sent`).
    public var eventsAccepted: UInt64
    /// Events dropped by the hand-off so far, every priority and reason.
    public var dropped: UInt64
    /// Hand-off wait so far.
    public var handoffWait: LatencyHistogram
    /// Redis command round trips so far.
    public var writerLatency: LatencyHistogram

    public init(
        takenAtMicros: UInt64, eventsAccepted: UInt64, dropped: UInt64, handoffWait: LatencyHistogram,
        writerLatency: LatencyHistogram
    ) {
        self.takenAtMicros = takenAtMicros
        self.eventsAccepted = eventsAccepted
        self.dropped = dropped
        self.handoffWait = handoffWait
        self.writerLatency = writerLatency
    }
}

/// Exponential moving averages of the port path: event rate, drop rate, hand-off wait and Redis latency.
///
/// Each sample is turned into the figures of the interval since the previous one (rates from counter deltas,
/// latencies as the p99 of the interval's own histogram) and folded in with a weight that depends on the interval's
/// length: `alpha = 1 − 2^(−Δt / halfLife)`, so irregular ticks (a busy queue, a reload of the interval) weigh
/// what they cover. An interval without a latency sample leaves that average as it was: no data is not zero.
/// Counters that went backwards (a restarted port path) start the series again.
public struct Analytics: Sendable, Hashable, Codable {
    /// The averages, `nil` until there is data.
    public struct Figures: Sendable, Hashable, Codable {
        /// Events handed to the writer per second.
        public var eventRate: Double?
        /// Events dropped by the hand-off per second.
        public var dropRate: Double?
        /// p99 of the hand-off wait, µs.
        public var handoffWaitP99: Double?
        /// p99 of a Redis round trip, µs.
        public var writerLatencyP99: Double?

        public init(
            eventRate: Double? = nil, dropRate: Double? = nil, handoffWaitP99: Double? = nil,
            writerLatencyP99: Double? = nil
        ) {
            self.eventRate = eventRate
            self.dropRate = dropRate
            self.handoffWaitP99 = handoffWaitP99
            self.writerLatencyP99 = writerLatencyP99
        }
    }

    /// The time after which a sample weighs half, µs.
    public var halfLifeMicros: UInt64
    public private(set) var figures = Figures()
    /// Samples folded in.
    public private(set) var samples = 0
    private var previous: Previous?

    private struct Previous: Sendable, Hashable, Codable {
        var takenAtMicros: UInt64
        var eventsAccepted: UInt64
        var dropped: UInt64
        var handoffWaitCount: UInt64
        var writerLatencyCount: UInt64
    }

    public init(halfLifeMicros: UInt64) {
        self.halfLifeMicros = Swift.max(halfLifeMicros, 1)
    }

    /// Folds in `sample`; `earlierWait` and `earlierLatency` are the histograms of the previous sample (the caller
    /// keeps them: they are large, and this value stays small).
    public mutating func update(
        _ sample: PortPathSample, earlierWait: LatencyHistogram?, earlierLatency: LatencyHistogram?
    ) {
        defer {
            self.previous = Previous(
                takenAtMicros: sample.takenAtMicros, eventsAccepted: sample.eventsAccepted, dropped: sample.dropped,
                handoffWaitCount: sample.handoffWait.count, writerLatencyCount: sample.writerLatency.count)
        }
        guard let previous = self.previous, sample.takenAtMicros > previous.takenAtMicros,
            sample.eventsAccepted >= previous.eventsAccepted, sample.dropped >= previous.dropped
        else { return }
        self.samples += 1
        let elapsed = sample.takenAtMicros - previous.takenAtMicros
        let seconds = Double(elapsed) / 1_000_000
        let alpha = 1 - exp2(-Double(elapsed) / Double(self.halfLifeMicros))
        let events = Double(sample.eventsAccepted - previous.eventsAccepted) / seconds
        let drops = Double(sample.dropped - previous.dropped) / seconds
        self.figures.eventRate = Self.fold(self.figures.eventRate, events, alpha)
        self.figures.dropRate = Self.fold(self.figures.dropRate, drops, alpha)
        if let earlierWait, sample.handoffWait.count > earlierWait.count {
            let p99 = Double(sample.handoffWait.since(earlierWait).percentile(99))
            self.figures.handoffWaitP99 = Self.fold(self.figures.handoffWaitP99, p99, alpha)
        }
        if let earlierLatency, sample.writerLatency.count > earlierLatency.count {
            let p99 = Double(sample.writerLatency.since(earlierLatency).percentile(99))
            self.figures.writerLatencyP99 = Self.fold(self.figures.writerLatencyP99, p99, alpha)
        }
    }

    private static func fold(_ average: Double?, _ value: Double, _ alpha: Double) -> Double {
        guard let average else { return value }
        return average + alpha * (value - average)
    }
}

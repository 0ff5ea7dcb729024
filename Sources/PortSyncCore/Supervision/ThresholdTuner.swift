/// Moves the `adaptive` hand-off thresholds with the Redis writer's measured round trip.
///
/// Why: the adaptive policy blocks while the oldest queued update has waited less than `blockBelow` and sheds
/// above `shedAbove`. A fixed number is right for one Redis only. When Redis answers in 40 µs, an update that has
/// waited 1 ms means the writer is far behind and shedding low-priority work is right; when Redis is busy (a
/// snapshot, a slow disk) and answers in 2 ms, that same 1 ms wait is a normal single round trip, and shedding would
/// throw away work that one round trip would have delivered.
///
/// Rule: `blockBelow = clamp(factor × writer p99, base.blockBelow / range … base.blockBelow × range)` and
/// `shedAbove = blockBelow × (base.shedAbove / base.blockBelow)` (the configured ratio is kept), where `base` is the
/// configured pair and `range` bounds how far the tuner may move them. A change smaller than `hysteresis` (a
/// fraction) of the current value is not applied, so that noise does not churn the thresholds. Without a latency
/// measurement the configured pair stands.
public struct ThresholdTuner: Sendable, Hashable {
    /// The configured thresholds (`pipeline.adaptive_block_below_us`, `pipeline.adaptive_shed_above_us`).
    public var base: AdaptiveThresholds
    /// `blockBelow` is this many writer round trips (p99).
    public var factor: Double = 2
    /// The tuner stays within `base / range … base × range`.
    public var range: Double = 4
    /// Relative change below which nothing is applied.
    public var hysteresis: Double = 0.2

    public init(base: AdaptiveThresholds) {
        self.base = base
    }

    /// The thresholds to use given `figures`, or `nil` to keep `current`.
    public func next(current: AdaptiveThresholds, figures: Analytics.Figures) -> AdaptiveThresholds? {
        let proposal = self.proposal(figures)
        guard proposal != current else { return nil }
        let change = abs(Double(proposal.blockBelowMicros) - Double(current.blockBelowMicros))
        let relative = change / Swift.max(Double(current.blockBelowMicros), 1)
        // Back to the configured pair (no data any more, or a reload) always applies.
        guard relative >= self.hysteresis || proposal == self.base else { return nil }
        return proposal
    }

    /// The pair the rule gives for `figures`, before hysteresis.
    public func proposal(_ figures: Analytics.Figures) -> AdaptiveThresholds {
        guard let latency = figures.writerLatencyP99, latency > 0 else { return self.base }
        let baseBlock = Double(self.base.blockBelowMicros)
        let ratio = Double(self.base.shedAboveMicros) / Swift.max(baseBlock, 1)
        let block = Swift.min(Swift.max(self.factor * latency, baseBlock / self.range), baseBlock * self.range)
        let blockMicros = Swift.max(UInt64(block.rounded()), 1)
        let shedMicros = Swift.max(UInt64((block * ratio).rounded()), blockMicros)
        return AdaptiveThresholds(blockBelowMicros: blockMicros, shedAboveMicros: shedMicros)
    }
}

import PortSyncCore
import Testing

/// The supervisor's rules as values: backoff, restart intensity, the watchdog gate, analytics and threshold tuning.
/// Time is passed in, so nothing here sleeps.
@Suite("Supervision")
struct SupervisionTests {
    static let policy = RestartPolicy(
        initialMicros: 100_000, maxMicros: 1_000_000, jitter: 0.1, intensity: 5, periodMicros: 60_000_000)

    @Test("Backoff doubles from the initial delay and stops at the maximum")
    func backoff() {
        let delays = (1...6).map { Self.policy.baseDelay(attempt: $0) }
        #expect(delays == [100_000, 200_000, 400_000, 800_000, 1_000_000, 1_000_000])
        #expect(Self.policy.baseDelay(attempt: 200) == 1_000_000)
    }

    @Test("Jitter spreads a delay by at most its fraction, both ways")
    func jitter() {
        var low = RestartTracker(policy: Self.policy)
        var middle = RestartTracker(policy: Self.policy)
        var high = RestartTracker(policy: Self.policy)
        #expect(low.failed(now: 1, random: 0) == .restart(delayMicros: 90_000, attempt: 1))
        #expect(middle.failed(now: 1, random: 0.5) == .restart(delayMicros: 100_000, attempt: 1))
        #expect(high.failed(now: 1, random: 1) == .restart(delayMicros: 110_000, attempt: 1))
    }

    @Test("More than `intensity` restarts within the period gives up; older restarts slide out of the window")
    func intensity() {
        var tracker = RestartTracker(policy: Self.policy)
        var decisions: [RestartDecision] = []
        for second in 0..<6 { decisions.append(tracker.failed(now: UInt64(second) * 1_000_000, random: 0.5)) }
        #expect(
            decisions == [
                .restart(delayMicros: 100_000, attempt: 1), .restart(delayMicros: 200_000, attempt: 2),
                .restart(delayMicros: 400_000, attempt: 3), .restart(delayMicros: 800_000, attempt: 4),
                .restart(delayMicros: 1_000_000, attempt: 5), .giveUp(restarts: 5),
            ])
        // 60 s after the first restart it leaves the window: one restart is allowed again, at attempt 5.
        #expect(tracker.failed(now: 60_000_001, random: 0.5) == .restart(delayMicros: 1_000_000, attempt: 5))
        // Long after, the history is empty and the backoff starts over.
        #expect(tracker.failed(now: 600_000_000, random: 0.5) == .restart(delayMicros: 100_000, attempt: 1))
        #expect(tracker.totalRestarts == 7)
    }

    @Test("An intensity of 0 gives up at the first failure")
    func zeroIntensity() {
        var tracker = RestartTracker(
            policy: RestartPolicy(initialMicros: 1, maxMicros: 1, jitter: 0, intensity: 0, periodMicros: 1))
        #expect(tracker.failed(now: 5, random: 0.5) == .giveUp(restarts: 0))
    }

    @Test("Only a stalled critical worker withholds the watchdog")
    func watchdogGate() {
        let workers = [
            WorkerStatus(name: "netlink", criticality: .critical, phase: .running),
            WorkerStatus(name: "redis", criticality: .critical, phase: .restarting),
            WorkerStatus(name: "telemetry", criticality: .important, phase: .stalled),
            WorkerStatus(name: "analytics", criticality: .optional, phase: .failed),
        ]
        #expect(WatchdogGate.blockers(workers).isEmpty)
        var stalled = workers
        stalled[0].phase = .stalled
        #expect(WatchdogGate.blockers(stalled) == ["netlink"])
        #expect(WatchdogGate.isStale(lastBeat: 1_000, now: 1_000 + 5_001, timeoutMicros: 5_000))
        #expect(!WatchdogGate.isStale(lastBeat: 1_000, now: 1_000 + 5_000, timeoutMicros: 5_000))
        #expect(!WatchdogGate.isStale(lastBeat: 9_000, now: 1_000, timeoutMicros: 5_000))
    }

    static func histogram(_ values: [UInt64]) -> LatencyHistogram {
        var histogram = LatencyHistogram()
        for value in values { histogram.record(value) }
        return histogram
    }

    @Test("A histogram's interval since an earlier copy holds only the values recorded in between")
    func histogramInterval() {
        var histogram = Self.histogram(Array(repeating: 5, count: 1000))
        let earlier = histogram
        for _ in 0..<100 { histogram.record(3000) }
        let interval = histogram.since(earlier)
        #expect(interval.count == 100)
        #expect(interval.percentile(50) >= 3000 && interval.percentile(50) <= 3047)
        #expect(interval.min >= 2944 && interval.max == 3000)
        #expect(histogram.percentile(50) == 5)  // the whole history is dominated by the old values
        var reset = histogram
        reset.reset()
        reset.record(7)
        #expect(reset.since(earlier).count == 1)  // reset since: the histogram itself
    }

    @Test("Analytics: rates and interval p99s, weighted by the interval's length; no data is not zero")
    func analytics() {
        var analytics = Analytics(halfLifeMicros: 1_000_000)
        var wait = LatencyHistogram()
        var latency = LatencyHistogram()
        func sample(_ at: UInt64, _ events: UInt64, _ drops: UInt64) -> PortPathSample {
            PortPathSample(
                takenAtMicros: at, eventsAccepted: events, dropped: drops, handoffWait: wait, writerLatency: latency)
        }
        analytics.update(sample(0, 0, 0), earlierWait: nil, earlierLatency: nil)
        #expect(analytics.samples == 0 && analytics.figures.eventRate == nil)

        var earlierWait = wait
        var earlierLatency = latency
        for _ in 0..<1000 { wait.record(10) }
        for _ in 0..<1000 { latency.record(100) }
        analytics.update(sample(1_000_000, 1000, 10), earlierWait: earlierWait, earlierLatency: earlierLatency)
        #expect(analytics.figures.eventRate == 1000)
        #expect(analytics.figures.dropRate == 10)
        #expect(analytics.figures.handoffWaitP99 == 10)
        #expect(analytics.figures.writerLatencyP99 == 100)

        // One half-life later with half the rate and no latency samples: the rate moves halfway, latency stays.
        earlierWait = wait
        earlierLatency = latency
        analytics.update(sample(2_000_000, 1500, 10), earlierWait: earlierWait, earlierLatency: earlierLatency)
        #expect(analytics.figures.eventRate == 750)
        #expect(analytics.figures.dropRate == 5)
        #expect(analytics.figures.writerLatencyP99 == 100)

        // Counters that went backwards (a new port path) restart the series without a bogus figure.
        analytics.update(sample(3_000_000, 3, 0), earlierWait: wait, earlierLatency: latency)
        #expect(analytics.figures.eventRate == 750)
        analytics.update(sample(4_000_000, 503, 0), earlierWait: wait, earlierLatency: latency)
        #expect(analytics.figures.eventRate == 625)
    }

    @Test("The tuner scales the adaptive thresholds with the writer's p99, within bounds, with hysteresis")
    func tuner() {
        let base = AdaptiveThresholds(blockBelowMicros: 100, shedAboveMicros: 1000)
        let tuner = ThresholdTuner(base: base)
        #expect(tuner.proposal(.init()) == base)
        #expect(
            tuner.proposal(.init(writerLatencyP99: 80))
                == AdaptiveThresholds(blockBelowMicros: 160, shedAboveMicros: 1600))
        #expect(
            tuner.proposal(.init(writerLatencyP99: 5)) == AdaptiveThresholds(blockBelowMicros: 25, shedAboveMicros: 250)
        )
        #expect(
            tuner.proposal(.init(writerLatencyP99: 100_000))
                == AdaptiveThresholds(blockBelowMicros: 400, shedAboveMicros: 4000))
        // Within 20 %: keep; beyond: move; back to the configured pair: always.
        #expect(tuner.next(current: base, figures: .init(writerLatencyP99: 55)) == nil)
        #expect(
            tuner.next(current: base, figures: .init(writerLatencyP99: 80))
                == AdaptiveThresholds(blockBelowMicros: 160, shedAboveMicros: 1600))
        let moved = AdaptiveThresholds(blockBelowMicros: 110, shedAboveMicros: 1100)
        #expect(tuner.next(current: moved, figures: .init()) == base)
    }
}

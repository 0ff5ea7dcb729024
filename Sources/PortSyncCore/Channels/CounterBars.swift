/// Open, high, low and close of one rate over a bar.
public struct OHLC: Sendable, Hashable, Codable {
    public var open: Double
    public var high: Double
    public var low: Double
    public var close: Double

    public init(_ value: Double) {
        self.open = value
        self.high = value
        self.low = value
        self.close = value
    }

    mutating func add(_ value: Double) {
        self.high = Swift.max(self.high, value)
        self.low = Swift.min(self.low, value)
        self.close = value
    }
}

/// One port's traffic over one interval, from the kernel's IFLA_STATS64 counters.
///
/// Rates (bits and packets per second, rx and tx) are measured between consecutive samples and summarised as
/// open/high/low/close; volumes are what the counters advanced within the bar. A bar with no sample at all is a
/// gap: its rates and volumes are `nil`, not zero. A counter that went backwards or a new ifindex (the port was
/// deleted and created again) splits the bar there: the part before is closed with `reset = true`, and no rate is
/// measured across the reset, so a rate is never negative or huge.
public struct CounterBar: Sendable, Hashable, Codable {
    /// Start and end of the bar, monotonic microseconds.
    public var startMicros: UInt64
    public var endMicros: UInt64
    public var intervalMicros: UInt64
    public var rxBitsPerSecond: OHLC?
    public var txBitsPerSecond: OHLC?
    public var rxPacketsPerSecond: OHLC?
    public var txPacketsPerSecond: OHLC?
    public var rxBytes: UInt64?
    public var txBytes: UInt64?
    public var rxPackets: UInt64?
    public var txPackets: UInt64?
    public var errors: UInt64?
    public var drops: UInt64?
    public var samples: Int
    public var reset: Bool

    public var isGap: Bool { self.samples == 0 }

    init(start: UInt64, end: UInt64, interval: UInt64) {
        self.startMicros = start
        self.endMicros = end
        self.intervalMicros = interval
        self.samples = 0
        self.reset = false
    }

    enum CodingKeys: String, CodingKey {
        case startMicros = "start_us"
        case endMicros = "end_us"
        case intervalMicros = "interval_us"
        case rxBitsPerSecond = "rx_bps"
        case txBitsPerSecond = "tx_bps"
        case rxPacketsPerSecond = "rx_pps"
        case txPacketsPerSecond = "tx_pps"
        case rxBytes = "rx_bytes"
        case txBytes = "tx_bytes"
        case rxPackets = "rx_packets"
        case txPackets = "tx_packets"
        case errors, drops, samples, reset
    }
}

/// One counter sample of one port.
public struct CounterSample: Sendable, Hashable {
    public var ifindex: Int32
    /// Monotonic microseconds.
    public var timeMicros: UInt64
    public var stats: LinkStatistics

    public init(ifindex: Int32, timeMicros: UInt64, stats: LinkStatistics) {
        self.ifindex = ifindex
        self.timeMicros = timeMicros
        self.stats = stats
    }
}

/// Rolls one port's samples up into bars of `intervalMicros`, aligned to multiples of the interval, and keeps the
/// last `historyCapacity` closed bars.
public struct CounterBarBuilder: Sendable {
    public let intervalMicros: UInt64
    public let historyCapacity: Int
    /// The last closed bars, oldest first.
    public var history: [CounterBar] {
        self.oldest == 0 ? self.kept : Array(self.kept[self.oldest...] + self.kept[..<self.oldest])
    }
    /// The closed bars kept, a ring once `historyCapacity` are there: the oldest is at `oldest`.
    private var kept: [CounterBar] = []
    private var oldest = 0
    private var current: CounterBar?
    private var last: CounterSample?

    public init(intervalMicros: UInt64, historyCapacity: Int) {
        self.intervalMicros = Swift.max(intervalMicros, 1)
        self.historyCapacity = Swift.max(historyCapacity, 1)
    }

    /// Adds a sample; returns the bars it closed (the previous bar, gaps in between, a split at a reset).
    public mutating func add(_ sample: CounterSample) -> [CounterBar] {
        var closed = self.close(upTo: sample.timeMicros)
        if self.current == nil { self.current = self.openBar(at: sample.timeMicros) }
        guard var bar = self.current else { return closed }
        defer {
            self.last = sample
        }
        guard let previous = self.last,
            sample.timeMicros > previous.timeMicros || sample.ifindex != previous.ifindex
        else {
            bar.samples += 1
            self.current = bar
            return closed
        }
        if sample.ifindex != previous.ifindex || Self.wentBackwards(previous.stats, sample.stats) {
            // Split: the part before the reset is a bar of its own, flagged; the rest starts from this sample. (A
            // bar with nothing in it yet, as after `cut`, is not split off: the rest is flagged instead.)
            var rest: CounterBar
            if bar.samples > 0 && sample.timeMicros > bar.startMicros {
                bar.endMicros = sample.timeMicros
                bar.reset = true
                closed.append(bar)
                self.remember(bar)
                rest = CounterBar(
                    start: sample.timeMicros, end: self.boundary(after: sample.timeMicros),
                    interval: self.intervalMicros)
            } else {
                // Nothing before the reset to split off (a new bar, or one that began at this very time): this bar
                // goes on, flagged.
                rest = bar
                rest.reset = true
                // A bar opened by this very sample begins with it (not at the interval's start, before the
                // interface existed).
                if bar.samples == 0 { rest.startMicros = sample.timeMicros }
            }
            rest.samples += 1
            if sample.ifindex != previous.ifindex {
                // A new interface counts from zero: what its counters hold is its traffic since it was created.
                let stats = sample.stats
                rest.rxBytes = (rest.rxBytes ?? 0) + stats.rxBytes
                rest.txBytes = (rest.txBytes ?? 0) + stats.txBytes
                rest.rxPackets = (rest.rxPackets ?? 0) + stats.rxPackets
                rest.txPackets = (rest.txPackets ?? 0) + stats.txPackets
                rest.errors = (rest.errors ?? 0) + stats.rxErrors + stats.txErrors
                rest.drops = (rest.drops ?? 0) + stats.rxDropped + stats.txDropped
            }
            self.current = rest
            return closed
        }
        let seconds = Double(sample.timeMicros - previous.timeMicros) / 1_000_000
        let now = sample.stats
        let before = previous.stats
        let rxBytes = now.rxBytes - before.rxBytes
        let txBytes = now.txBytes - before.txBytes
        let rxPackets = now.rxPackets - before.rxPackets
        let txPackets = now.txPackets - before.txPackets
        Self.add(&bar.rxBitsPerSecond, Double(rxBytes) * 8 / seconds)
        Self.add(&bar.txBitsPerSecond, Double(txBytes) * 8 / seconds)
        Self.add(&bar.rxPacketsPerSecond, Double(rxPackets) / seconds)
        Self.add(&bar.txPacketsPerSecond, Double(txPackets) / seconds)
        bar.rxBytes = (bar.rxBytes ?? 0) + rxBytes
        bar.txBytes = (bar.txBytes ?? 0) + txBytes
        bar.rxPackets = (bar.rxPackets ?? 0) + rxPackets
        bar.txPackets = (bar.txPackets ?? 0) + txPackets
        bar.errors = (bar.errors ?? 0) + (now.rxErrors - before.rxErrors) + (now.txErrors - before.txErrors)
        bar.drops = (bar.drops ?? 0) + (now.rxDropped - before.rxDropped) + (now.txDropped - before.txDropped)
        bar.samples += 1
        self.current = bar
        return closed
    }

    /// The interface is gone: the open bar closes now, flagged `reset`, if it holds anything (else it is dropped).
    /// The last sample is kept, so that a re-created interface (a new ifindex) starts a bar flagged `reset`.
    public mutating func cut(at now: UInt64) -> CounterBar? {
        guard var bar = self.current else { return nil }
        self.current = nil
        guard bar.samples > 0 else { return nil }
        // Never a bar of no length, even for a port deleted in the microsecond its bar began.
        bar.endMicros = Swift.max(Swift.min(now, bar.endMicros), bar.startMicros + 1)
        bar.reset = true
        self.remember(bar)
        return bar
    }

    /// Closes every bar that ends at or before `now` (the interval timer), with gap bars for intervals without a
    /// sample since the last one.
    public mutating func close(upTo now: UInt64) -> [CounterBar] {
        var closed: [CounterBar] = []
        while let bar = self.current, bar.endMicros <= now {
            closed.append(bar)
            self.remember(bar)
            // The next interval is open from here on; if it ends with no sample it closes as a gap.
            self.current = CounterBar(
                start: bar.endMicros, end: bar.endMicros + self.intervalMicros, interval: self.intervalMicros)
        }
        return closed
    }

    /// When the open bar ends (`close(upTo:)` closes it from then on); `nil` before the first sample.
    var nextCloseMicros: UInt64? { self.current?.endMicros }

    private func openBar(at time: UInt64) -> CounterBar {
        let start = time - time % self.intervalMicros
        return CounterBar(start: start, end: start + self.intervalMicros, interval: self.intervalMicros)
    }

    private func boundary(after time: UInt64) -> UInt64 {
        time - time % self.intervalMicros + self.intervalMicros
    }

    private mutating func remember(_ bar: CounterBar) {
        if self.kept.count < self.historyCapacity {
            // Grown as an array grows, but never past the capacity: a full history wastes no room.
            if self.kept.count == self.kept.capacity {
                self.kept.reserveCapacity(Swift.min(Swift.max(self.kept.count * 2, 1), self.historyCapacity))
            }
            self.kept.append(bar)
        } else {
            self.kept[self.oldest] = bar
            self.oldest = (self.oldest + 1) % self.historyCapacity
        }
    }

    private static func add(_ ohlc: inout OHLC?, _ value: Double) {
        if ohlc == nil { ohlc = OHLC(value) } else { ohlc?.add(value) }
    }

    private static func wentBackwards(_ before: LinkStatistics, _ now: LinkStatistics) -> Bool {
        now.rxBytes < before.rxBytes || now.txBytes < before.txBytes || now.rxPackets < before.rxPackets
            || now.txPackets < before.txPackets || now.rxErrors < before.rxErrors || now.txErrors < before.txErrors
            || now.rxDropped < before.rxDropped || now.txDropped < before.txDropped
    }
}

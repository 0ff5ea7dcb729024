/// A log-linear (HDR-style) histogram of durations in microseconds, in fixed memory, recorded without allocating.
///
/// Layout: values 0…127 µs have a bucket each; above that, every power of two is split into 64 equal buckets,
/// so a bucket is never wider than 1/64 of its lowest value. The layout is the same for every histogram (which is
/// what makes `merge` always valid) and covers up to `highestTrackableValue` (60 s): a larger value is counted in
/// the top bucket, while `max` and `mean` still see it as it is.
///
/// Contract:
/// - `record` is constant time and does not allocate: the buckets are an array of `bucketCount` counters
///   allocated by `init` and incremented in place (copy-on-write: a copy of the histogram shares them until one
///   side records, which then duplicates them once).
/// - `percentile(p)` is an upper bound of the true value within 1/64 (1.6 %): the highest value of the bucket
///   holding it, capped at `max`. `bucketCounts()` is exact, because 10, 100 and 1000 µs are bucket boundaries.
/// - Not thread-safe: one owner records; others get a copy or a `LatencySummary`.
public struct LatencyHistogram: Sendable, Hashable {
    /// The largest value told apart from larger ones, 60 s in microseconds.
    public static let highestTrackableValue: UInt64 = 60_000_000
    /// log2 of the number of buckets per power of two.
    static let subBucketBits = 6
    /// Buckets per power of two above 127 µs.
    static let subBucketCount = 1 << subBucketBits
    /// The number of buckets: up to the one holding `highestTrackableValue`.
    public static let bucketCount = bucketIndex(highestTrackableValue) + 1

    private var buckets: [UInt64]
    /// Values recorded.
    public private(set) var count: UInt64 = 0
    /// The sum of the values recorded, saturating at `UInt64.max`.
    private var sum: UInt64 = 0
    private var minimum: UInt64 = .max
    private var maximum: UInt64 = 0

    /// An empty histogram. Allocates its `bucketCount` counters once.
    public init() {
        self.buckets = Array(repeating: 0, count: Self.bucketCount)
    }

    /// The smallest value recorded, 0 when empty.
    public var min: UInt64 { self.count == 0 ? 0 : self.minimum }
    /// The largest value recorded (not clamped to `highestTrackableValue`), 0 when empty.
    public var max: UInt64 { self.maximum }
    /// The mean of the values recorded, 0 when empty.
    public var mean: Double { self.count == 0 ? 0 : Double(self.sum) / Double(self.count) }

    /// Records one duration in microseconds. Constant time; does not allocate.
    public mutating func record(_ micros: UInt64) {
        let tracked = micros < Self.highestTrackableValue ? micros : Self.highestTrackableValue
        self.buckets[Self.bucketIndex(tracked)] &+= 1
        self.count &+= 1
        let (sum, overflow) = self.sum.addingReportingOverflow(micros)
        self.sum = overflow ? .max : sum
        if micros < self.minimum { self.minimum = micros }
        if micros > self.maximum { self.maximum = micros }
    }

    /// The value under which `p` percent of the values recorded fall (`p` in 0…100, clamped; NaN counts as 0).
    ///
    /// 0 gives `min` and 100 gives `max`, exactly. In between, the answer is at least the true value and at most
    /// 1/64 above it (for values up to 60 s), and never above `max`. An empty histogram answers 0.
    public func percentile(_ p: Double) -> UInt64 {
        guard self.count > 0 else { return 0 }
        guard p > 0 else { return self.min }
        guard p < 100 else { return self.max }
        let wanted = (p / 100 * Double(self.count)).rounded(.up)
        let rank = wanted < 1 ? 1 : (wanted >= Double(self.count) ? self.count : UInt64(wanted))
        var seen: UInt64 = 0
        for index in 0..<Self.bucketCount {
            seen &+= self.buckets[index]
            if seen >= rank {
                let high = Self.bucketRange(index: index).upperBound
                return Swift.max(self.min, Swift.min(high, self.max))
            }
        }
        return self.max
    }

    /// The values under 10 µs, under 100 µs, under 1 ms (each including the ones before) and at least 1 ms.
    /// Exact: `under1ms + atLeast1ms == count`.
    public func bucketCounts() -> (under10us: UInt64, under100us: UInt64, under1ms: UInt64, atLeast1ms: UInt64) {
        let under10 = self.countBelow(Self.bucketIndex(10))
        let under100 = under10 &+ self.countBelow(Self.bucketIndex(100), from: Self.bucketIndex(10))
        let under1000 = under100 &+ self.countBelow(Self.bucketIndex(1000), from: Self.bucketIndex(100))
        return (under10, under100, under1000, self.count &- under1000)
    }

    /// Forgets every value, keeping the storage.
    public mutating func reset() {
        for index in 0..<Self.bucketCount { self.buckets[index] = 0 }
        self.count = 0
        self.sum = 0
        self.minimum = .max
        self.maximum = 0
    }

    /// Adds every value of `other` to this histogram, as if they had been recorded here.
    public mutating func merge(_ other: LatencyHistogram) {
        for index in 0..<Self.bucketCount { self.buckets[index] &+= other.buckets[index] }
        self.count &+= other.count
        let (sum, overflow) = self.sum.addingReportingOverflow(other.sum)
        self.sum = overflow ? .max : sum
        self.minimum = Swift.min(self.minimum, other.minimum)
        self.maximum = Swift.max(self.maximum, other.maximum)
    }

    /// The values recorded since `earlier`, a copy of this histogram taken before: bucket counts, count and sum are
    /// exact; `min` and `max` are the bounds of the lowest and highest non-empty bucket (capped at this `max`).
    /// A histogram that was reset since `earlier` gives itself.
    public func since(_ earlier: LatencyHistogram) -> LatencyHistogram {
        guard earlier.count <= self.count else { return self }
        var interval = LatencyHistogram()
        for index in 0..<Self.bucketCount {
            let now = self.buckets[index]
            let before = earlier.buckets[index]
            guard now >= before else { return self }
            let delta = now - before
            guard delta > 0 else { continue }
            interval.buckets[index] = delta
            let range = Self.bucketRange(index: index)
            interval.minimum = Swift.min(interval.minimum, range.lowerBound)
            interval.maximum = Swift.max(interval.maximum, Swift.min(range.upperBound, self.maximum))
        }
        interval.count = self.count - earlier.count
        interval.sum = self.sum >= earlier.sum ? self.sum - earlier.sum : 0
        return interval
    }

    /// The values counted in the same bucket as `micros` (values above 60 s count in the top bucket).
    public static func bucketRange(containing micros: UInt64) -> ClosedRange<UInt64> {
        self.bucketRange(index: self.bucketIndex(Swift.min(micros, self.highestTrackableValue)))
    }

    /// The address of the bucket storage: unchanged by `record` (the counters are incremented in place).
    public var storageIdentity: UInt {
        self.buckets.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
    }

    /// The index of the bucket counting `value`: the value itself below 128, then 64 buckets per power of two.
    static func bucketIndex(_ value: UInt64) -> Int {
        guard value >= UInt64(2 * subBucketCount) else { return Int(value) }
        let shift = (UInt64.bitWidth - 1 - value.leadingZeroBitCount) - subBucketBits
        return shift * subBucketCount + Int(value >> UInt64(shift))
    }

    /// The values counted by bucket `index`.
    static func bucketRange(index: Int) -> ClosedRange<UInt64> {
        guard index >= 2 * subBucketCount else { return UInt64(index)...UInt64(index) }
        let shift = index / subBucketCount - 1
        let low = UInt64(index - shift * subBucketCount) << UInt64(shift)
        return low...(low + (1 << UInt64(shift)) - 1)
    }

    private func countBelow(_ end: Int, from start: Int = 0) -> UInt64 {
        var total: UInt64 = 0
        for index in start..<end { total &+= self.buckets[index] }
        return total
    }
}

import PortSyncCore
import Testing

/// The latency histogram: exact fixed buckets, percentiles within 2 %, fixed memory.
@Suite("LatencyHistogram")
struct LatencyHistogramTests {
    static func histogram(_ values: some Sequence<UInt64>) -> LatencyHistogram {
        var histogram = LatencyHistogram()
        for value in values { histogram.record(value) }
        return histogram
    }

    /// Whether `actual` is within 2 % of `expected`.
    static func within2Percent(_ actual: UInt64, _ expected: UInt64) -> Bool {
        let difference = actual > expected ? actual - expected : expected - actual
        return Double(difference) <= 0.02 * Double(expected)
    }

    @Test("An empty histogram reports zeros")
    func empty() {
        let histogram = LatencyHistogram()
        #expect(histogram.count == 0)
        #expect(histogram.min == 0)
        #expect(histogram.max == 0)
        #expect(histogram.mean == 0)
        #expect(histogram.percentile(50) == 0)
        #expect(histogram.percentile(100) == 0)
        let buckets = histogram.bucketCounts()
        #expect([buckets.under10us, buckets.under100us, buckets.under1ms, buckets.atLeast1ms] == [0, 0, 0, 0])
    }

    @Test("The fixed buckets are exact at 9, 10, 99, 100, 999 and 1000 µs")
    func boundaries() {
        let buckets = Self.histogram([9, 10, 99, 100, 999, 1000]).bucketCounts()
        #expect(buckets.under10us == 1)
        #expect(buckets.under100us == 3)
        #expect(buckets.under1ms == 5)
        #expect(buckets.atLeast1ms == 1)
    }

    @Test(
        "Each boundary value alone lands on its side",
        arguments: [
            (0, 1, 1, 1, 0), (9, 1, 1, 1, 0), (10, 0, 1, 1, 0), (99, 0, 1, 1, 0), (100, 0, 0, 1, 0),
            (999, 0, 0, 1, 0), (1000, 0, 0, 0, 1), (1001, 0, 0, 0, 1), (60_000_000, 0, 0, 0, 1),
            (UInt64.max, 0, 0, 0, 1),
        ] as [(UInt64, UInt64, UInt64, UInt64, UInt64)])
    func boundaryAlone(value: UInt64, under10: UInt64, under100: UInt64, under1ms: UInt64, atLeast1ms: UInt64) {
        let buckets = Self.histogram([value]).bucketCounts()
        #expect(buckets.under10us == under10)
        #expect(buckets.under100us == under100)
        #expect(buckets.under1ms == under1ms)
        #expect(buckets.atLeast1ms == atLeast1ms)
    }

    @Test("Every value 0…2000 counts in the right fixed bucket")
    func fixedBucketsDense() {
        let buckets = Self.histogram(0...2000).bucketCounts()
        #expect(buckets.under10us == 10)
        #expect(buckets.under100us == 100)
        #expect(buckets.under1ms == 1000)
        #expect(buckets.atLeast1ms == 1001)
    }

    @Test("Buckets: exact below 128 µs, then no wider than 1/64 of their lowest value, with 10/100/1000 as edges")
    func layout() {
        for value: UInt64 in 0..<128 { #expect(LatencyHistogram.bucketRange(containing: value) == value...value) }
        var value: UInt64 = 128
        var previous = LatencyHistogram.bucketRange(containing: 127)
        while value <= LatencyHistogram.highestTrackableValue {
            let range = LatencyHistogram.bucketRange(containing: value)
            #expect(range.contains(value))
            #expect(range.lowerBound == previous.upperBound + 1, "buckets are contiguous at \(value)")
            #expect((range.upperBound - range.lowerBound + 1) * 64 <= range.lowerBound)
            previous = range
            value = range.upperBound + 1
        }
        #expect(LatencyHistogram.bucketRange(containing: 1000).lowerBound == 1000)
        #expect(LatencyHistogram.bucketRange(containing: 999).upperBound == 999)
        #expect(LatencyHistogram.bucketRange(containing: .max) == previous)
        #expect(LatencyHistogram.bucketCount < 2000, "fixed memory")
    }

    @Test("p50, p99 and p99.9 of 1…100 000 are within 2 %")
    func percentilesOfRange() {
        let histogram = Self.histogram(1...100_000)
        #expect(Self.within2Percent(histogram.percentile(50), 50_000))
        #expect(Self.within2Percent(histogram.percentile(99), 99_000))
        #expect(Self.within2Percent(histogram.percentile(99.9), 99_900))
        #expect(histogram.percentile(50) >= 50_000, "an upper bound")
        #expect(histogram.percentile(0) == 1)
        #expect(histogram.percentile(100) == 100_000)
        #expect(histogram.count == 100_000)
        #expect(histogram.min == 1)
        #expect(histogram.max == 100_000)
        #expect(histogram.mean == 50_000.5)
    }

    @Test("Percentiles of a uniform distribution over 50 µs…5 s (stride 37) are within 2 %")
    func percentilesUniform() {
        let values = Array(stride(from: UInt64(50), through: 5_000_000, by: 37))
        let histogram = Self.histogram(values)
        for p in [0.1, 1, 5, 10, 25, 33.3, 50, 66.6, 75, 90, 95, 99, 99.5, 99.9, 99.99] {
            let rank = Int((p / 100 * Double(values.count)).rounded(.up))
            let expected = values[rank - 1]
            let actual = histogram.percentile(p)
            #expect(Self.within2Percent(actual, expected), "p\(p): \(actual) for \(expected)")
            #expect(actual >= expected, "p\(p) is an upper bound")
        }
    }

    @Test("Small values are exact")
    func smallExact() {
        let histogram = Self.histogram([3, 3, 3, 7, 7, 42, 90, 127])
        #expect(histogram.percentile(25) == 3)
        #expect(histogram.percentile(50) == 7)
        #expect(histogram.percentile(75) == 42)
        #expect(histogram.percentile(87.5) == 90)
        #expect(histogram.percentile(99) == 127)
    }

    @Test("Out-of-range percentiles are clamped")
    func percentileClamped() {
        let histogram = Self.histogram([5, 500, 5000])
        #expect(histogram.percentile(-10) == 5)
        #expect(histogram.percentile(.nan) == 5)
        #expect(histogram.percentile(250) == 5000)
        #expect(histogram.percentile(.infinity) == 5000)
    }

    @Test("Values above 60 s count in the top bucket; max and mean keep them as they are")
    func aboveRange() {
        let histogram = Self.histogram([120_000_000, 120_000_000, 100])
        #expect(histogram.count == 3)
        #expect(histogram.max == 120_000_000)
        #expect(histogram.mean == Double(240_000_100) / 3)
        #expect(Self.within2Percent(histogram.percentile(50), 60_000_000))
        #expect(histogram.percentile(100) == 120_000_000)
        #expect(histogram.bucketCounts().atLeast1ms == 2)
        let huge = Self.histogram([.max, .max])
        #expect(huge.max == .max)
        #expect(huge.mean == Double(UInt64.max) / 2, "the sum saturates instead of trapping")
    }

    @Test("Merging two histograms equals recording everything in one")
    func merge() {
        var first = Self.histogram(stride(from: UInt64(1), through: 200_000, by: 3))
        let second = Self.histogram(stride(from: UInt64(7), through: 9_000_000, by: 1013))
        first.merge(second)
        let together = Self.histogram(
            Array(stride(from: UInt64(1), through: 200_000, by: 3))
                + Array(stride(from: UInt64(7), through: 9_000_000, by: 1013)))
        #expect(first == together)
        #expect(first.percentile(99) == together.percentile(99))
        var empty = LatencyHistogram()
        empty.merge(LatencyHistogram())
        #expect(empty == LatencyHistogram())
        #expect(empty.min == 0)
    }

    @Test("Reset forgets everything and keeps the storage")
    func reset() {
        var histogram = Self.histogram([1, 50, 5000, 70_000_000])
        let identity = histogram.storageIdentity
        histogram.reset()
        #expect(histogram == LatencyHistogram())
        #expect(histogram.storageIdentity == identity)
        histogram.record(12)
        #expect(histogram.min == 12)
        #expect(histogram.max == 12)
        #expect(histogram.percentile(50) == 12)
    }

    /// `record` increments counters in place: a million records keep the storage allocated by `init`, checked
    /// after every record.
    @Test("Recording 1 000 000 values keeps the storage allocated at init")
    func recordDoesNotReallocate() {
        var histogram = LatencyHistogram()
        let identity = histogram.storageIdentity
        var value: UInt64 = 1
        var moved = 0
        for _ in 0..<1_000_000 {
            value = (value &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407)
            histogram.record(value >> 38)
            if histogram.storageIdentity != identity { moved += 1 }
        }
        #expect(moved == 0, "records after which the storage was elsewhere")
        #expect(histogram.storageIdentity == identity)
        #expect(histogram.count == 1_000_000)
    }
}

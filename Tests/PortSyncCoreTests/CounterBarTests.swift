import PortSyncCore
import Testing

/// Counter bars from IFLA_STATS64 samples, on a test clock.
@Suite("CounterBars")
struct CounterBarTests {
    static func sample(_ second: Double, rx: UInt64, tx: UInt64 = 0, ifindex: Int32 = 5) -> CounterSample {
        CounterSample(
            ifindex: ifindex, timeMicros: UInt64(second * 1_000_000),
            stats: LinkStatistics(rxPackets: rx / 100, txPackets: tx / 100, rxBytes: rx, txBytes: tx))
    }

    @Test("Volumes over two intervals add up to the bytes sent; OHLC is ordered; the rates are right")
    func volumes() {
        var builder = CounterBarBuilder(intervalMicros: 10_000_000, historyCapacity: 10)
        var closed: [CounterBar] = []
        // 1 s samples from t = 10 s: 1000 B/s for 10 s, then 3000 B/s for 10 s.
        var bytes: UInt64 = 50_000
        for second in 10...30 {
            closed += builder.add(Self.sample(Double(second), rx: bytes))
            bytes += second < 20 ? 1000 : 3000
        }
        closed += builder.close(upTo: 40_000_000)
        #expect(closed.count >= 2)
        let first = closed[0]
        let second = closed[1]
        #expect(first.startMicros == 10_000_000 && first.endMicros == 20_000_000)
        #expect(first.rxBytes == 9000)  // samples at 10…19: nine deltas of 1000
        #expect(second.rxBytes == 1000 + 9 * 3000)  // the delta into t = 20 came from the 19 → 20 second
        let total = closed.compactMap(\.rxBytes).reduce(0, +)
        #expect(total == bytes - 50_000 - 3000)  // every delta between the first and the last sample
        for bar in closed {
            guard let ohlc = bar.rxBitsPerSecond else { continue }
            #expect(
                ohlc.high >= ohlc.open && ohlc.high >= ohlc.close && ohlc.low <= ohlc.open && ohlc.low <= ohlc.close)
        }
        #expect(first.rxBitsPerSecond == OHLC(8000))
        #expect(second.rxBitsPerSecond?.high == 24_000 && second.rxBitsPerSecond?.low == 8000)
    }

    @Test("A port deleted and created again mid-interval splits the bar, flagged reset, with no negative rate")
    func reset() {
        var builder = CounterBarBuilder(intervalMicros: 10_000_000, historyCapacity: 10)
        var closed: [CounterBar] = []
        closed += builder.add(Self.sample(10, rx: 900_000))
        closed += builder.add(Self.sample(12, rx: 1_000_000))
        closed += builder.add(Self.sample(14, rx: 200, ifindex: 9))  // new interface: counters from zero
        closed += builder.add(Self.sample(16, rx: 2200, ifindex: 9))
        closed += builder.close(upTo: 20_000_000)
        #expect(closed.count == 2)
        #expect(closed[0].reset && closed[0].endMicros == 14_000_000 && closed[0].rxBytes == 100_000)
        // The new interface's 200 bytes before its first sample count too: its counters started at zero.
        #expect(!closed[1].reset && closed[1].startMicros == 14_000_000 && closed[1].rxBytes == 2200)
        for bar in closed {
            #expect((bar.rxBitsPerSecond?.low ?? 0) >= 0 && (bar.rxBitsPerSecond?.high ?? 0) <= 400_000)
        }
        // A counter that went backwards on the same ifindex is a reset too.
        var same = CounterBarBuilder(intervalMicros: 10_000_000, historyCapacity: 10)
        _ = same.add(Self.sample(1, rx: 5000))
        let split = same.add(Self.sample(2, rx: 10))
        #expect(split.count == 1 && split[0].reset)
    }

    @Test("An interval without a sample is a gap (nil), not zero; history keeps the last N bars")
    func gaps() {
        var builder = CounterBarBuilder(intervalMicros: 1_000_000, historyCapacity: 3)
        _ = builder.add(Self.sample(0.5, rx: 0))
        let closed = builder.add(Self.sample(3.5, rx: 3000))
        #expect(closed.count == 3)
        #expect(!closed[0].isGap && closed[1].isGap && closed[2].isGap)
        #expect(closed[1].rxBytes == nil && closed[1].rxBitsPerSecond == nil)
        _ = builder.close(upTo: 10_000_000)
        #expect(builder.history.count == 3)
    }
}

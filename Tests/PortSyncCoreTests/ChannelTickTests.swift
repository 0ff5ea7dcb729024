import PortSyncCore
import Testing

/// The tick at scale: bars close at their end for every port, in port-name order, whatever the order the ports
/// came in; a tick with nothing due says nothing; a full history keeps the newest bars, oldest first.
@Suite("Channel ticks")
struct ChannelTickTests {
    static let second: UInt64 = 1_000_000

    @Test("Every port's bar closes at the first tick past its end, in name order; the ticks between say nothing")
    func closesInNameOrder() {
        var channels = PortChannels(settings: ChannelSettings())
        let names = (0..<300).reversed().map { "Ethernet\($0 * 4)" }
        var fromStats = 0
        for second in 0..<25 {
            // The tick just after the second begins, the statistics dump half a second later.
            let tick = channels.tick(now: UInt64(second) * Self.second + 100_000)
            let closing = second == 10 || second == 20
            let bars = tick.compactMap { if case .bar(let port, let bar) = $0 { (port, bar.bar) } else { nil } }
            #expect(bars.count == tick.count)
            #expect(bars.count == (closing ? names.count : 0))
            #expect(bars.map(\.0) == bars.map(\.0).sorted())
            #expect(bars.allSatisfy { $0.1.endMicros == UInt64(second) * Self.second && $0.1.samples == 10 })
            for (index, name) in names.enumerated() {
                fromStats +=
                    channels.stats(
                        port: name, ifindex: Int32(index + 2), stats: LinkStatistics(rxBytes: UInt64(second) * 1000),
                        now: UInt64(second) * Self.second + 500_000
                    ).count
            }
        }
        #expect(fromStats == 0)
        #expect(channels.bars(port: "Ethernet4", intervalMicros: 10 * Self.second).count == 2)
    }

    @Test("A full history is a ring: the newest bars, oldest first")
    func historyRing() {
        var builder = CounterBarBuilder(intervalMicros: Self.second, historyCapacity: 4)
        for second in 0..<11 {
            _ = builder.add(CounterSample(ifindex: 3, timeMicros: UInt64(second) * Self.second + 1, stats: .init()))
        }
        #expect(builder.history.map(\.startMicros) == [6, 7, 8, 9].map { $0 * Self.second })
        _ = builder.close(upTo: 13 * Self.second)
        #expect(builder.history.map(\.startMicros) == [9, 10, 11, 12].map { $0 * Self.second })
    }
}

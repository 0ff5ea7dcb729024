import PortSyncCore
import Testing

/// The channels together on a test clock: link deduplication with source context, damping (monitor and
/// enforce), counter bars from link messages, and the flap alert.
@Suite("PortChannels")
struct PortChannelsTests {
    static let second: UInt64 = 1_000_000

    static func event(
        trace: UInt64, up: Bool = true, carrier: UInt32 = 0, mtu: UInt32 = 9100, rx: UInt64? = nil, at time: UInt64 = 0
    ) -> LinkEvent {
        let flags: InterfaceFlags = up ? [.up, .running, .lowerUp] : [.up]
        let message = LinkMessage(
            kind: .newLink, ifindex: 7, flags: flags, name: InterfaceName("Ethernet0"), mtu: mtu,
            carrierChanges: carrier, stats: rx.map { LinkStatistics(rxBytes: $0) })
        return LinkEvent(trace: trace, receivedAt: time, message: message)
    }

    static func links(_ outputs: [ChannelOutput]) -> [BusEventData.PortState] {
        outputs.compactMap { if case .linkChange(_, let state) = $0 { state } else { nil } }
    }

    @Test("Identical consecutive messages fold into one event; the next event says how many it stood for")
    func dedup() {
        var channels = PortChannels(settings: ChannelSettings())
        #expect(Self.links(channels.link(Self.event(trace: 1, at: 5), port: "Ethernet0", now: 0)).count == 1)
        for trace in 2...4 {
            #expect(Self.links(channels.link(Self.event(trace: UInt64(trace)), port: "Ethernet0", now: 1)).isEmpty)
        }
        let next = Self.links(channels.link(Self.event(trace: 5, mtu: 1500), port: "Ethernet0", now: 2))
        #expect(next.count == 1 && next[0].repeats == 3 && next[0].traceID == 5 && next[0].ifindex == 7)
        #expect(channels.duplicatesFolded == 3)
    }

    @Test("Monitor reports damping and changes nothing; enforce holds a damped port's events until release")
    func damping() {
        var settings = ChannelSettings()
        settings.dampingMode = .monitor
        var monitor = PortChannels(settings: settings)
        settings.dampingMode = .enforce
        var enforce = PortChannels(settings: settings)
        var monitorOut: [ChannelOutput] = []
        var enforceOut: [ChannelOutput] = []
        // Carrier flaps: each message is two transitions later (down then up, or the reverse).
        for n in 0..<6 {
            let event = Self.event(trace: UInt64(n), up: n % 2 == 0, carrier: UInt32(n * 2 + (n % 2)))
            monitorOut += monitor.link(event, port: "Ethernet0", now: UInt64(n) * 100_000)
            enforceOut += enforce.link(event, port: "Ethernet0", now: UInt64(n) * 100_000)
        }
        let health = { (outputs: [ChannelOutput]) in
            outputs.compactMap { if case .health(_, let health) = $0 { health.damped } else { nil } }
        }
        #expect(health(monitorOut) == [true])
        #expect(monitor.isDamped("Ethernet0") && enforce.isDamped("Ethernet0"))
        #expect(Self.links(monitorOut).count == 6)
        #expect(Self.links(enforceOut).count < 6)
        // Released after the penalty decays: enforce then publishes the held (latest) state.
        let released = enforce.tick(now: 120 * Self.second)
        #expect(health(released) == [false])
        #expect(Self.links(released).last?.traceID == 5)
    }

    @Test("10 flaps raise port_flapping once; quiet clears it once")
    func flapAlert() {
        var channels = PortChannels(settings: ChannelSettings())
        var raised = 0
        var cleared = 0
        func count(_ outputs: [ChannelOutput]) {
            for case .alert(_, let change) in outputs {
                if change.kind == .raised { raised += 1 } else { cleared += 1 }
            }
        }
        for n in 0...40 {
            // One message per 250 ms, each one a down and an up later.
            count(
                channels.link(
                    Self.event(trace: UInt64(n), carrier: UInt32(n * 2)), port: "Ethernet0",
                    now: UInt64(n) * 250_000))
        }
        #expect(raised == 1 && cleared == 0)
        for second in 11...100 { count(channels.tick(now: UInt64(second) * Self.second)) }
        #expect(raised == 1 && cleared == 1)
    }

    @Test("Counter bars come from the statistics in link messages too; a deleted port closes its bar")
    func bars() {
        var channels = PortChannels(settings: ChannelSettings())
        var outputs: [ChannelOutput] = []
        for n in 0..<25 {
            outputs += channels.link(
                Self.event(trace: UInt64(n), rx: UInt64(n) * 1000), port: "Ethernet0", now: UInt64(n) * Self.second)
        }
        outputs += channels.deleted(port: "Ethernet0", now: 30 * Self.second)
        let bars = outputs.compactMap { if case .bar(_, let bar) = $0 { bar.bar } else { nil } }
        #expect(bars.count >= 2)
        #expect(bars.compactMap(\.rxBytes).reduce(0, +) == 24_000)
    }
}

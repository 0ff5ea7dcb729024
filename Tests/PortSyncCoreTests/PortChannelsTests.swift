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

/// The rules an operator writes (`[[alerts.rules]]`), each condition measured where it belongs, and the moves of
/// ports between channel shards.
@Suite("PortChannels rules and shards")
struct PortChannelRulesTests {
    static let second: UInt64 = 1_000_000

    static func alerts(_ outputs: [ChannelOutput]) -> [AlertChange] {
        outputs.compactMap { if case .alert(_, let change) = $0 { change } else { nil } }
    }

    static func settings(_ rules: [AlertRule]) -> ChannelSettings {
        var settings = ChannelSettings()
        settings.rules = rules
        return settings
    }

    @Test("error_rate: raised from the counters' growth between samples, cleared below clear after the cooldown")
    func errorRate() {
        var channels = PortChannels(
            settings: Self.settings([
                AlertRule(
                    name: "rx_errors", condition: .errorRate, severity: .major, raiseAt: 100, clearBelow: 10,
                    cooldownMicros: 5 * Self.second)
            ]))
        var changes: [AlertChange] = []
        var errors: UInt64 = 0
        for second in 0..<20 {
            // 150 errors a second for 5 s, then 1 a second.
            errors += (1..<6).contains(second) ? 150 : 1
            changes += Self.alerts(
                channels.stats(
                    port: "Ethernet0", ifindex: 3, stats: LinkStatistics(rxErrors: errors),
                    now: UInt64(second) * Self.second))
        }
        #expect(changes.map(\.kind) == [.raised, .cleared])
        #expect(changes.first?.condition == .errorRate && changes.first?.value == 150)
        // A counter reset (re-created port) is never a rate.
        #expect(
            Self.alerts(
                channels.stats(port: "Ethernet0", ifindex: 9, stats: LinkStatistics(), now: 30 * Self.second)
            ).isEmpty)
    }

    @Test("utilisation: the busier direction's bit rate in percent of speed_mbps")
    func utilisation() {
        var channels = PortChannels(
            settings: Self.settings([
                AlertRule(name: "busy", condition: .utilisation, severity: .warning, raiseAt: 80, speedMbps: 1)
            ]))
        // 1 Mb/s link; 110 000 bytes/s sent = 88 %.
        _ = channels.stats(port: "Ethernet4", ifindex: 4, stats: LinkStatistics(txBytes: 0), now: 0)
        let changes = Self.alerts(
            channels.stats(port: "Ethernet4", ifindex: 4, stats: LinkStatistics(txBytes: 110_000), now: Self.second))
        #expect(changes.count == 1 && changes[0].kind == .raised && abs(changes[0].value - 88) < 0.001)
    }

    @Test("utilisation without speed_mbps: each port's CONFIG_DB speed; a port without one is not measured")
    func utilisationFromConfigSpeed() {
        var channels = PortChannels(
            settings: Self.settings([AlertRule(name: "busy", condition: .utilisation, severity: .warning, raiseAt: 50)])
        )
        channels.linkSpeedsMbps = ["Ethernet0": 1, "Ethernet4": 100]
        var changes: [AlertChange] = []
        for port in ["Ethernet0", "Ethernet4", "Ethernet8"] {
            _ = channels.stats(port: port, ifindex: 4, stats: LinkStatistics(rxBytes: 0), now: 0)
            // 100 000 bytes/s received: 80 % of 1 Mb/s, 0.8 % of 100 Mb/s, and no speed for Ethernet8.
            changes += Self.alerts(
                channels.stats(port: port, ifindex: 4, stats: LinkStatistics(rxBytes: 100_000), now: Self.second))
        }
        #expect(changes.map(\.subject) == ["Ethernet0"] && abs((changes.first?.value ?? 0) - 80) < 0.001)
    }

    @Test("damped: raised when damping starts, cleared when it ends; queue_depth measured per shard")
    func dampedAndChannel() {
        var channels = PortChannels(
            settings: Self.settings([
                AlertRule(name: "damped_port", condition: .damped, severity: .major, raiseAt: 1),
                AlertRule(name: "backlog", condition: .queueDepth, severity: .critical, raiseAt: 1000, clearBelow: 10),
            ]))
        var changes: [AlertChange] = []
        for n in 0..<6 {
            let message = LinkMessage(
                kind: .newLink, ifindex: 7, flags: n % 2 == 0 ? [.up, .running, .lowerUp] : [.up],
                name: InterfaceName("Ethernet0"), mtu: 9100, carrierChanges: UInt32(n * 2 + (n % 2)))
            changes += Self.alerts(
                channels.link(
                    LinkEvent(trace: UInt64(n), receivedAt: 0, message: message), port: "Ethernet0",
                    now: UInt64(n) * 100_000))
        }
        #expect(changes.map(\.rule) == ["damped_port"] && changes.map(\.kind) == [.raised])
        changes = Self.alerts(channels.tick(now: 120 * Self.second))
        #expect(changes.map(\.kind) == [.cleared])
        let backlog = Self.alerts(
            channels.channel(subject: "channels/1", queueDepth: 5000, latencyMillis: 0, now: 121 * Self.second))
        #expect(backlog.map(\.subject) == ["channels/1"] && backlog.map(\.kind) == [.raised])
        #expect(channels.alerts.active.map(\.subject) == ["channels/1"])
    }

    @Test("Several bar lengths: each port gets bars of each")
    func severalIntervals() {
        var settings = ChannelSettings()
        settings.barIntervalsMicros = [10 * Self.second, 60 * Self.second]
        var channels = PortChannels(settings: settings)
        for second in 0...120 {
            _ = channels.stats(
                port: "Ethernet0", ifindex: 3, stats: LinkStatistics(rxBytes: UInt64(second) * 100),
                now: UInt64(second) * Self.second)
        }
        _ = channels.tick(now: 121 * Self.second)
        let short = channels.bars(port: "Ethernet0", intervalMicros: 10 * Self.second)
        let long = channels.bars(port: "Ethernet0", intervalMicros: 60 * Self.second)
        #expect(short.count >= 11 && long.count >= 1)
        #expect(long.allSatisfy { $0.intervalMicros == 60 * Self.second })
        // The same traffic, whichever length it is cut into.
        let start = long.first?.startMicros ?? 0
        let end = long.last?.endMicros ?? 0
        let inside = short.filter { $0.startMicros >= start && $0.endMicros <= end }
        let shortVolume: UInt64 = inside.compactMap(\.rxBytes).reduce(0, +)
        let longVolume: UInt64 = long.compactMap(\.rxBytes).reduce(0, +)
        #expect(shortVolume == longVolume && longVolume > 0)
    }

    @Test("split and absorb move ports with their bars and alerts, and nothing else")
    func splitAbsorb() {
        var channels = PortChannels(
            settings: Self.settings([AlertRule(name: "any_errors", condition: .errorRate, severity: .info, raiseAt: 1)])
        )
        for port in ["Ethernet0", "Ethernet4", "Ethernet8"] {
            _ = channels.stats(port: port, ifindex: 1, stats: LinkStatistics(rxErrors: 0), now: 0)
            _ = channels.stats(port: port, ifindex: 1, stats: LinkStatistics(rxErrors: 5), now: Self.second)
        }
        _ = channels.tick(now: 30 * Self.second)
        let before = channels.bars(port: "Ethernet4", intervalMicros: 10 * Self.second)
        #expect(!before.isEmpty && channels.alerts.active.count == 3)
        let part = channels.split { $0 == "Ethernet4" }
        #expect(part.portNames == ["Ethernet4"] && channels.portNames == ["Ethernet0", "Ethernet8"])
        #expect(part.bars(port: "Ethernet4", intervalMicros: 10 * Self.second) == before)
        #expect(part.alerts.active.map(\.subject) == ["Ethernet4"])
        #expect(channels.alerts.active.map(\.subject) == ["Ethernet0", "Ethernet8"])
        channels.absorb(part)
        #expect(channels.portNames == ["Ethernet0", "Ethernet4", "Ethernet8"] && channels.alerts.active.count == 3)
    }

    @Test("A deleted port's alerts clear at once")
    func deletedClears() {
        var channels = PortChannels(
            settings: Self.settings([AlertRule(name: "any_errors", condition: .errorRate, severity: .info, raiseAt: 1)])
        )
        _ = channels.stats(port: "Ethernet0", ifindex: 1, stats: LinkStatistics(rxErrors: 0), now: 0)
        _ = channels.stats(port: "Ethernet0", ifindex: 1, stats: LinkStatistics(rxErrors: 5), now: Self.second)
        let changes = Self.alerts(channels.deleted(port: "Ethernet0", now: 2 * Self.second))
        #expect(changes.map(\.kind) == [.cleared] && channels.alerts.active.isEmpty)
    }
}

/// Flood control across ports: a storm of alerts of one rule publishes at most `floodLimit` events a second.
@Suite("PortChannels flood control")
struct PortChannelFloodTests {
    @Test("8192 ports down at once with port_down: 100 alert_raised events, 8092 held and reported, all active")
    func storm() {
        var settings = ChannelSettings()
        settings.rules = [AlertRule(name: "port_down", condition: .operDown, severity: .warning, raiseAt: 1)]
        var channels = PortChannels(settings: settings)
        for port in 0..<8192 {
            let message = LinkMessage(
                kind: .newLink, ifindex: Int32(port + 1), flags: [.up], name: InterfaceName("Ethernet\(port * 4)"),
                mtu: 9100, carrierChanges: 1)
            _ = channels.link(
                LinkEvent(trace: UInt64(port), receivedAt: 0, message: message), port: "Ethernet\(port * 4)",
                now: 500_000)
        }
        let storm = channels.tick(now: 2_000_000)
        let raised = storm.filter { if case .alert = $0 { true } else { false } }
        #expect(raised.count == 100)
        #expect(channels.alerts.active.count == 8192)
        #expect(channels.floodHeldTotal == ["port_down": 8092])
        // The next second reports the held events once, and nothing more is raised.
        let next = channels.tick(now: 3_000_000)
        let floods = next.compactMap { if case .flood(let rule, let held) = $0 { "\(rule) \(held)" } else { nil } }
        #expect(floods == ["port_down 8092"])
        #expect(!next.contains { if case .alert = $0 { true } else { false } })
    }
}

/// A port deleted and re-created in the middle of a bar: the traffic before and after is all in the bars, the bars
/// on both sides are flagged reset, and no rate is negative.
@Suite("PortChannels re-created port")
struct PortChannelRecreateTests {
    static let second: UInt64 = 1_000_000

    static func bars(_ outputs: [ChannelOutput]) -> [CounterBar] {
        outputs.compactMap { if case .bar(_, let bar) = $0 { bar.bar } else { nil } }
    }

    @Test("Deleted at 13.5 s (its last counters in the deletion), re-created at 14.2 s with a new ifindex")
    func recreated() {
        var channels = PortChannels(settings: ChannelSettings())
        var bars: [CounterBar] = []
        // 1000 bytes/s sent from 10 s to 13 s; the deletion message says 3500.
        for second in 10...13 {
            bars += Self.bars(
                channels.stats(
                    port: "Ethernet0", ifindex: 5, stats: LinkStatistics(txBytes: UInt64(second - 10) * 1000),
                    now: UInt64(second) * Self.second))
        }
        bars += Self.bars(
            channels.deleted(
                port: "Ethernet0", now: 13_500_000, ifindex: 5, stats: LinkStatistics(txBytes: 3500)))
        #expect(bars.count == 1 && bars[0].reset && bars[0].txBytes == 3500 && bars[0].endMicros == 13_500_000)
        // Re-created as ifindex 9, which has sent 200 bytes by its first sample, then 1000 bytes/s.
        bars += Self.bars(
            channels.stats(port: "Ethernet0", ifindex: 9, stats: LinkStatistics(txBytes: 200), now: 14_200_000))
        for second in 15...21 {
            bars += Self.bars(
                channels.stats(
                    port: "Ethernet0", ifindex: 9, stats: LinkStatistics(txBytes: 200 + UInt64(second - 14) * 1000),
                    now: UInt64(second) * Self.second))
        }
        bars += Self.bars(channels.tick(now: 21 * Self.second))
        #expect(bars.count == 2)
        let after = bars[1]
        #expect(after.reset && after.startMicros == 14_200_000 && after.endMicros == 20_000_000)
        // 200 bytes before its first sample, then 1000 a second from 15 s to 19 s (the 20 s sample is the next bar's).
        #expect(after.txBytes == 5200)
        #expect(bars.allSatisfy { ($0.txBitsPerSecond?.low ?? 0) >= 0 && ($0.txBitsPerSecond?.high ?? 0) < 1e9 })
        // The history of the port goes on across its re-creation.
        #expect(channels.bars(port: "Ethernet0", intervalMicros: 10 * Self.second).count == 2)
    }
}

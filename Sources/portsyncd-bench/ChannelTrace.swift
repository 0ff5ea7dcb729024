import PortSyncCore

/// `portsyncd-bench channels trace`: one seeded random scenario through `PortChannels`, every output and, now and
/// then, the answers of its queries printed as text. A random configuration (damping off, monitor or enforce;
/// `port_down` or not; short and long bars and histories), up to 40 ports, 30 000 steps of random time: link
/// messages (flaps, carrier jumps, MTU and ifindex changes, repeats, counter resets, messages without counters or
/// carrier count), statistics samples, deletions, reloads and ticks. Two builds of the channels behave the same if
/// they print the same text for the same seeds (with `SWIFT_DETERMINISTIC_HASHING=1`; outputs whose order is a
/// dictionary's are printed sorted).
enum ChannelTrace {
    static func run(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var config = Config()
        config.channels.dampingMode = ["off", "monitor", "enforce"][random.below(3)]
        config.alerts.portDownAfterMs = [0, 3000, 20_000][random.below(3)]
        config.channels.barHistory = [1, 3, 60][random.below(3)]
        config.channels.barIntervalsMs = [[1000], [10_000], [1000, 10_000]][random.below(3)]
        config.alerts.flapRaise = [2, 10][random.below(2)]
        config.alerts.flapCooldownMs = [0, 5000, 60_000][random.below(3)]
        var channels = PortChannels(settings: ChannelSettings(config))
        let interval = UInt64(config.channels.barIntervalsMs[0]) * 1000
        print("config \(config.channels) \(config.alerts)")
        let ports = 1 + random.below(40)
        var up = [Bool](repeating: true, count: ports)
        var carrier = [UInt32](repeating: 0, count: ports)
        var mtu = [UInt32](repeating: 9100, count: ports)
        var ifindex = (0..<ports).map { Int32($0 + 2) }
        var rx = [UInt64](repeating: 0, count: ports)
        var now: UInt64 = UInt64(random.below(1_000_000_000))
        func show(_ step: Int, _ what: String, _ outputs: [ChannelOutput]) {
            if !outputs.isEmpty { print("\(step) \(what) \(outputs)") }
        }
        for step in 0..<30_000 {
            now += UInt64(random.below(400_000))
            let port = random.below(ports)
            let name = "Ethernet\(port * 4)"
            let action = random.below(100)
            if action < 55 {
                switch random.below(10) {
                case 0, 1, 2:
                    up[port].toggle()
                    carrier[port] += 1
                case 3:
                    carrier[port] += 2
                case 4: mtu[port] = mtu[port] == 9100 ? 1500 : 9100
                case 5 where random.below(10) == 0: ifindex[port] += 100
                default: break
                }
                rx[port] += UInt64(random.below(1_000_000))
                if random.below(200) == 0 { rx[port] = 0 }
                let stats = random.below(5) == 0 ? nil : LinkStatistics(rxPackets: rx[port] / 100, rxBytes: rx[port])
                let message = LinkMessage(
                    kind: .newLink, ifindex: ifindex[port], flags: up[port] ? [.up, .running, .lowerUp] : [.up],
                    name: InterfaceName(name), mtu: mtu[port],
                    carrierChanges: random.below(20) == 0 ? nil : carrier[port], stats: stats)
                let event = LinkEvent(trace: UInt64(step), receivedAt: now, message: message)
                show(step, "link \(name)", channels.link(event, port: name, now: now))
            } else if action < 70 {
                rx[port] += UInt64(random.below(1_000_000))
                show(
                    step, "stats \(name)",
                    channels.stats(
                        port: name, ifindex: ifindex[port], stats: LinkStatistics(rxBytes: rx[port]), now: now))
            } else if action < 72 {
                show(step, "deleted \(name)", channels.deleted(port: name, now: now))
            } else if action < 73 {
                var next = config
                next.channels.flapPenalty = [500, 1000][random.below(2)]
                next.alerts.portDownAfterMs = [0, 3000][random.below(2)]
                next.alerts.flapRaise = [2, 10][random.below(2)]
                // The engine's own order here is a dictionary's: compared as a set.
                show(
                    step, "update",
                    channels.update(ChannelSettings(next), now: now).sorted {
                        String(describing: $0) < String(describing: $1)
                    })
            } else {
                show(step, "tick", channels.tick(now: now))
            }
            if step % 97 == 0 {
                print(
                    "\(step) query \(channels.portCount) \(channels.duplicatesFolded) \(channels.isDamped(name)) "
                        + "\(channels.alerts.active) \(channels.alerts.suppressedTotal.sorted { $0.key < $1.key }) "
                        + "\(channels.bars(port: name, intervalMicros: interval).map(\.startMicros))")
            }
            if step % 997 == 0 { print("\(step) bars \(channels.bars(port: name, intervalMicros: interval))") }
        }
    }
}

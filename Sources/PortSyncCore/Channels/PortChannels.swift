/// What the channels decided about one input: events for the bus and lines for the journal.
public enum ChannelOutput: Sendable, Hashable {
    /// A link change (deduplicated: `repeats` identical kernel messages followed the previous one of this port).
    case linkChange(port: String, BusEventData.PortState)
    /// Damping started or ended (`port_health`).
    case health(port: String, BusEventData.PortHealth)
    /// A closed counter bar (`counter_bar`).
    case bar(port: String, BusEventData.Bar)
    /// An alert raised or cleared.
    case alert(port: String, AlertChange)
}

/// The channels' settings (`[channels]` and `[alerts]` in the file).
public struct ChannelSettings: Sendable, Hashable {
    public enum DampingMode: String, Sendable, Hashable, CaseIterable, Codable {
        /// No damping computed.
        case off
        /// Computed and reported (`port_health`, journal, metrics); nothing else changes.
        case monitor
        /// As `monitor`, and the link channel holds a damped port's state until it is released.
        case enforce
    }

    public var dampingMode: DampingMode = .monitor
    public var damping = FlapDamper.Parameters()
    /// Bar lengths (several may be configured), microseconds.
    public var barIntervalsMicros: [UInt64] = [10_000_000]
    /// Closed bars kept per port and interval.
    public var barHistory = 60
    /// Flap-rate window for the flap alert, microseconds.
    public var flapWindowMicros: UInt64 = 10_000_000
    /// The alert rules: `port_flapping` (metric: flaps in the window) and `port_down` (metric: seconds oper down).
    public var rules: [AlertRule] = [
        AlertRule(
            name: "port_flapping", metric: "flap_rate", severity: .major, raiseAt: 10, clearBelow: 5,
            cooldownMicros: 60_000_000)
    ]

    public init() {}
}

/// Every port's channel state: the link channel's deduplication, damping, counter bars and the alert engine.
/// A value on an injected clock (monotonic microseconds); the runtime feeds it and publishes what it returns.
public struct PortChannels: Sendable {
    private struct Port: Sendable {
        var lastKey: LinkKey?
        var repeats: UInt64 = 0
        var damper: FlapDamper
        var flapWindow: SlidingWindowCounter
        var bars: [CounterBarBuilder]
        var operDownSince: UInt64?
        var heldState: BusEventData.PortState?
    }

    private struct LinkKey: Sendable, Hashable {
        var admin: Bool
        var oper: Bool
        var mtu: UInt32?
        var carrierChanges: UInt32?
        var ifindex: Int32
    }

    public private(set) var settings: ChannelSettings
    private var ports: [String: Port] = [:]
    public private(set) var alerts: AlertEngine
    /// Identical consecutive kernel messages folded into the previous link event.
    public private(set) var duplicatesFolded: UInt64 = 0

    public init(settings: ChannelSettings) {
        self.settings = settings
        self.alerts = AlertEngine(rules: settings.rules)
    }

    public var portCount: Int { self.ports.count }

    /// A reload: damping parameters and rules apply now; bar intervals apply to ports seen from now on.
    public mutating func update(_ settings: ChannelSettings, now: UInt64) -> [ChannelOutput] {
        self.settings = settings
        for name in self.ports.keys { self.ports[name]?.damper.parameters = settings.damping }
        return self.alerts.update(rules: settings.rules, now: now).map { .alert(port: $0.subject, $0) }
    }

    /// One accepted kernel link message.
    public mutating func link(_ event: LinkEvent, port name: String, now: UInt64) -> [ChannelOutput] {
        let message = event.message
        var port = self.ports[name] ?? self.newPort()
        defer { self.ports[name] = port }
        var outputs: [ChannelOutput] = []
        if let stats = message.stats {
            outputs += self.addStats(&port, name, ifindex: message.ifindex, stats: stats, now: now)
        }
        // Damping and the flap alert, from the carrier-change counter.
        let flapsBefore = port.damper.flaps
        if self.settings.dampingMode != .off || !self.settings.rules.isEmpty {
            switch port.damper.sample(carrierChanges: message.carrierChanges, operUp: message.isOperUp, now: now) {
            case .damped where self.settings.dampingMode != .off:
                outputs.append(.health(port: name, self.health(port.damper, damped: true, now: now)))
            case .released where self.settings.dampingMode != .off:
                outputs.append(.health(port: name, self.health(port.damper, damped: false, now: now)))
                if let held = port.heldState {
                    port.heldState = nil
                    outputs.append(.linkChange(port: name, held))
                }
            default: break
            }
        }
        let flaps = Int(port.damper.flaps - flapsBefore)
        let rate = flaps > 0 ? port.flapWindow.add(flaps, now: now) : port.flapWindow.count(at: now)
        if let change = self.alerts.observe(
            rule: "port_flapping", subject: name, value: Double(rate), now: now, occurrence: flaps > 0)
        {
            outputs.append(.alert(port: name, change))
        }
        port.operDownSince = message.isOperUp ? nil : (port.operDownSince ?? now)
        // The link channel: identical consecutive messages fold into the previous event.
        let key = LinkKey(
            admin: message.isAdminUp, oper: message.isOperUp, mtu: message.mtu, carrierChanges: message.carrierChanges,
            ifindex: message.ifindex)
        if key == port.lastKey {
            port.repeats += 1
            self.duplicatesFolded += 1
            return outputs
        }
        port.lastKey = key
        let state = BusEventData.PortState(
            admin: message.isAdminUp ? "up" : "down", oper: message.isOperUp ? "up" : "down", mtu: message.mtu ?? 0,
            carrierChanges: message.carrierChanges, ifindex: message.ifindex, traceID: event.trace,
            repeats: port.repeats, receivedMicros: event.receivedAt, sequence: message.sequence)
        port.repeats = 0
        if self.settings.dampingMode == .enforce && port.damper.damped {
            port.heldState = state  // released with the port
        } else {
            outputs.append(.linkChange(port: name, state))
        }
        return outputs
    }

    /// A counter sample from a periodic dump.
    public mutating func stats(port name: String, ifindex: Int32, stats: LinkStatistics, now: UInt64)
        -> [ChannelOutput]
    {
        var port = self.ports[name] ?? self.newPort()
        defer { self.ports[name] = port }
        return self.addStats(&port, name, ifindex: ifindex, stats: stats, now: now)
    }

    /// The port is gone: its open bars close (flagged reset) and its state is forgotten.
    public mutating func deleted(port name: String, now: UInt64) -> [ChannelOutput] {
        guard var port = self.ports.removeValue(forKey: name) else { return [] }
        var outputs: [ChannelOutput] = []
        for index in port.bars.indices {
            for bar in port.bars[index].close(upTo: now) { outputs.append(.bar(port: name, Self.bar(bar))) }
        }
        if port.damper.damped {
            outputs.append(.health(port: name, self.health(port.damper, damped: false, now: now)))
        }
        port.heldState = nil
        return outputs
    }

    /// Time passes: bars close, damped ports are released, alerts clear after their quiet period.
    public mutating func tick(now: UInt64) -> [ChannelOutput] {
        var outputs: [ChannelOutput] = []
        for name in self.ports.keys.sorted() {
            guard var port = self.ports[name] else { continue }
            for index in port.bars.indices {
                for bar in port.bars[index].close(upTo: now) { outputs.append(.bar(port: name, Self.bar(bar))) }
            }
            if self.settings.dampingMode != .off, port.damper.tick(now: now) == .released {
                outputs.append(.health(port: name, self.health(port.damper, damped: false, now: now)))
                if let held = port.heldState {
                    port.heldState = nil
                    outputs.append(.linkChange(port: name, held))
                }
            }
            let rate = port.flapWindow.count(at: now)
            if let change = self.alerts.observe(
                rule: "port_flapping", subject: name, value: Double(rate), now: now, occurrence: false)
            {
                outputs.append(.alert(port: name, change))
            }
            if let since = port.operDownSince,
                let change = self.alerts.observe(
                    rule: "port_down", subject: name, value: Double(now - since) / 1_000_000, now: now,
                    occurrence: false)
            {
                outputs.append(.alert(port: name, change))
            } else if port.operDownSince == nil,
                let change = self.alerts.observe(rule: "port_down", subject: name, value: 0, now: now)
            {
                outputs.append(.alert(port: name, change))
            }
            self.ports[name] = port
        }
        outputs += self.alerts.tick(now: now).map { .alert(port: $0.subject, $0) }
        return outputs
    }

    /// The last closed bars of `port` for `intervalMicros` (oldest first).
    public func bars(port name: String, intervalMicros: UInt64) -> [CounterBar] {
        self.ports[name]?.bars.first { $0.intervalMicros == intervalMicros }?.history ?? []
    }

    /// Whether `port` is damped now.
    public func isDamped(_ name: String) -> Bool { self.ports[name]?.damper.damped ?? false }

    private func newPort() -> Port {
        Port(
            damper: FlapDamper(parameters: self.settings.damping),
            flapWindow: SlidingWindowCounter(windowMicros: self.settings.flapWindowMicros),
            bars: self.settings.barIntervalsMicros.map {
                CounterBarBuilder(intervalMicros: $0, historyCapacity: self.settings.barHistory)
            })
    }

    private func addStats(_ port: inout Port, _ name: String, ifindex: Int32, stats: LinkStatistics, now: UInt64)
        -> [ChannelOutput]
    {
        var outputs: [ChannelOutput] = []
        let sample = CounterSample(ifindex: ifindex, timeMicros: now, stats: stats)
        for index in port.bars.indices {
            for bar in port.bars[index].add(sample) { outputs.append(.bar(port: name, Self.bar(bar))) }
        }
        return outputs
    }

    private func health(_ damper: FlapDamper, damped: Bool, now: UInt64) -> BusEventData.PortHealth {
        BusEventData.PortHealth(
            damped: damped, mode: self.settings.dampingMode.rawValue, penalty: damper.penalty(at: now).rounded(),
            flaps: damper.flaps, suppressedFlaps: damper.suppressedFlaps)
    }

    static func bar(_ bar: CounterBar) -> BusEventData.Bar {
        BusEventData.Bar(bar)
    }
}

extension ChannelSettings {
    /// The channels' settings from the file's `[channels]` and `[alerts]`.
    public init(_ config: Config) {
        self.init()
        self.dampingMode = DampingMode(rawValue: config.channels.dampingMode) ?? .monitor
        self.damping = FlapDamper.Parameters(
            flapPenalty: Double(config.channels.flapPenalty),
            suppressThreshold: Double(config.channels.suppressThreshold),
            reuseThreshold: Double(config.channels.reuseThreshold),
            halfLifeMicros: UInt64(config.channels.decayHalfLifeMs) * 1000,
            maxSuppressMicros: UInt64(config.channels.maxSuppressMs) * 1000)
        self.barIntervalsMicros = [UInt64(config.channels.barIntervalMs) * 1000]
        self.barHistory = config.channels.barHistory
        self.flapWindowMicros = UInt64(config.alerts.flapWindowMs) * 1000
        var rules = [
            AlertRule(
                name: "port_flapping", metric: "flap_rate",
                severity: AlertSeverity(rawValue: config.alerts.flapSeverity) ?? .major,
                raiseAt: Double(config.alerts.flapRaise), clearBelow: Double(config.alerts.flapClear),
                cooldownMicros: UInt64(config.alerts.flapCooldownMs) * 1000)
        ]
        if config.alerts.portDownAfterMs > 0 {
            rules.append(
                AlertRule(
                    name: "port_down", metric: "oper_down_seconds",
                    severity: AlertSeverity(rawValue: config.alerts.portDownSeverity) ?? .warning,
                    raiseAt: Double(config.alerts.portDownAfterMs) / 1000, clearBelow: 0.001))
        }
        self.rules = rules
    }
}

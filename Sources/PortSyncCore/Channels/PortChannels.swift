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
    /// Flood control held back this many alert events of `rule` in the last second.
    case flood(rule: String, held: Int)
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
    /// Alert events per rule per second at most (flood control across ports); the rest are counted.
    public var floodLimit = 100
    /// The alert rules: the built-in `port_flapping` (flaps in the window) and `port_down` (seconds oper down,
    /// when configured), then the file's own `[[alerts.rules]]`.
    public var rules: [AlertRule] = [
        AlertRule(
            name: "port_flapping", condition: .flapRate, severity: .major, raiseAt: 10, clearBelow: 5,
            cooldownMicros: 60_000_000)
    ]

    public init() {}
}

/// Every port's channel state: the link channel's deduplication, damping, counter bars and the alert engine.
/// A value on an injected clock (monotonic microseconds); the runtime feeds it and publishes what it returns.
/// The runtime may run several, each for the ports a hash gives it (`split` and `absorb` move ports between them).
public struct PortChannels: Sendable {
    fileprivate struct Port: Sendable {
        var lastKey: LinkKey?
        var repeats: UInt64 = 0
        var damper: FlapDamper
        var flaps: SlidingWindowCounter
        var bars: [CounterBarBuilder]
        var operDownSince: UInt64?
        var heldState: BusEventData.PortState?
        /// The previous counter sample, for the rate rules (error rate, utilisation).
        var lastSample: CounterSample?
        /// The bar end this port is filed under in `closing`.
        var closesAt: UInt64?
        /// Whether it is in `watched`.
        var watched = false

        /// What stands in `ports` while the port itself is taken out to be changed (so it is never copied).
        static let vacant = Port(
            damper: FlapDamper(parameters: .init()), flaps: SlidingWindowCounter(windowMicros: 1), bars: [])
    }

    fileprivate struct LinkKey: Sendable, Hashable {
        var admin: Bool
        var oper: Bool
        var mtu: UInt32?
        var carrierChanges: UInt32?
        var ifindex: Int32
    }

    /// The rules by what they measure.
    private struct Rules: Sendable {
        var flapRate: [AlertRule] = []
        var damped: [AlertRule] = []
        var operDown: [AlertRule] = []
        var errorRate: [AlertRule] = []
        var utilisation: [AlertRule] = []
        var channel: [AlertRule] = []
        /// The longest flap-rate window: how long a port remembers its flaps.
        var flapMemoryMicros: UInt64 = 1

        init(_ rules: [AlertRule]) {
            for rule in rules {
                switch rule.condition {
                case .flapRate: self.flapRate.append(rule)
                case .damped: self.damped.append(rule)
                case .operDown: self.operDown.append(rule)
                case .errorRate: self.errorRate.append(rule)
                case .utilisation: self.utilisation.append(rule)
                case .queueDepth, .latency: self.channel.append(rule)
                }
            }
            self.flapMemoryMicros = self.flapRate.map(\.windowMicros).max() ?? 1
        }
    }

    public private(set) var settings: ChannelSettings
    private var rules: Rules
    private var ports: [String: Port] = [:]
    /// Ports by the end of their next bar, for `tick` (an entry whose port has since moved on is skipped there).
    private var closing: [UInt64: [String]] = [:]
    /// Ports `tick` looks at every second: damping decaying, flaps in a window, an alert active or pending, oper
    /// down under an `oper_down` rule. The others only when a bar of theirs ends.
    private var watched: Set<String> = []
    /// The bars of deleted ports, for a re-creation within the longest bar length.
    private var departed: [String: (bars: [CounterBarBuilder], at: UInt64)] = [:]
    public private(set) var alerts: AlertEngine
    /// Identical consecutive kernel messages folded into the previous link event.
    public private(set) var duplicatesFolded: UInt64 = 0
    /// Each port's link speed (CONFIG_DB `speed`, Mb/s), for `utilisation` rules without their own speed.
    public var linkSpeedsMbps: [String: Double] = [:]
    /// Alert events held back by flood control, by rule, over this value's life.
    public private(set) var floodHeldTotal: [String: UInt64] = [:]
    private var floodSecond: UInt64 = 0
    private var floodSent: [String: Int] = [:]
    private var floodHeld: [String: Int] = [:]

    public init(settings: ChannelSettings) {
        self.settings = settings
        self.rules = Rules(settings.rules)
        self.alerts = AlertEngine(rules: settings.rules)
    }

    public var portCount: Int { self.ports.count }

    /// The ports this value holds.
    public var portNames: [String] { self.ports.keys.sorted() }

    /// A reload: damping parameters and rules apply now; bar intervals apply to ports seen from now on.
    public mutating func update(_ settings: ChannelSettings, now: UInt64) -> [ChannelOutput] {
        self.settings = settings
        self.rules = Rules(settings.rules)
        for name in self.ports.keys {
            self.ports[name]?.damper.parameters = settings.damping
            self.ports[name]?.flaps.resize(windowMicros: self.rules.flapMemoryMicros)
            self.ports[name]?.watched = true  // each is judged again at the next tick
        }
        self.watched.formUnion(self.ports.keys)
        var outputs: [ChannelOutput] = []
        for change in self.alerts.update(rules: settings.rules, now: now) { self.emit(change, now, into: &outputs) }
        return outputs
    }

    /// One accepted kernel link message.
    public mutating func link(_ event: LinkEvent, port name: String, now: UInt64) -> [ChannelOutput] {
        let message = event.message
        let slot = self.ports.index(forKey: name)
        var port = slot.map { self.takePort(at: $0) } ?? self.newPort(name, now: now)
        defer { self.put(&port, name, at: slot, watch: true) }
        var outputs: [ChannelOutput] = []
        if let stats = message.stats {
            self.addStats(&port, name, ifindex: message.ifindex, stats: stats, now: now, into: &outputs)
        }
        // Damping and the flap alerts, from the carrier-change counter.
        let flapsBefore = port.damper.flaps
        var dampingChanged = false
        if self.settings.dampingMode != .off || !self.rules.flapRate.isEmpty || !self.rules.damped.isEmpty {
            switch port.damper.sample(carrierChanges: message.carrierChanges, operUp: message.isOperUp, now: now) {
            case .damped where self.settings.dampingMode != .off:
                dampingChanged = true
                outputs.append(.health(port: name, self.health(port.damper, damped: true, now: now)))
            case .released where self.settings.dampingMode != .off:
                dampingChanged = true
                outputs.append(.health(port: name, self.health(port.damper, damped: false, now: now)))
                if let held = port.heldState {
                    port.heldState = nil
                    outputs.append(.linkChange(port: name, held))
                }
            default: break
            }
        }
        let flaps = Int(port.damper.flaps - flapsBefore)
        if flaps > 0 { _ = port.flaps.add(flaps, now: now) }
        for rule in self.rules.flapRate {
            let rate = port.flaps.count(within: rule.windowMicros, at: now)
            self.observe(rule, name, Double(rate), now, occurrence: flaps > 0, into: &outputs)
        }
        if dampingChanged {
            for rule in self.rules.damped {
                self.observe(
                    rule, name, port.damper.damped ? 1 : 0, now, occurrence: port.damper.damped, into: &outputs)
            }
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
        let slot = self.ports.index(forKey: name)
        var port = slot.map { self.takePort(at: $0) } ?? self.newPort(name, now: now)
        // A rate rule may start or end an alert here: the port is judged again then.
        let rated = !self.rules.errorRate.isEmpty || !self.rules.utilisation.isEmpty
        defer { self.put(&port, name, at: slot, watch: slot == nil || rated) }
        var outputs: [ChannelOutput] = []
        self.addStats(&port, name, ifindex: ifindex, stats: stats, now: now, into: &outputs)
        return outputs
    }

    /// The port is gone: its open bars close now, flagged reset (with the counters of the deletion message, when
    /// it has them), its alerts clear and its state is forgotten, but for its bars: a port re-created within the
    /// longest bar length continues them (its first bar flagged reset, its history kept).
    public mutating func deleted(
        port name: String, now: UInt64, ifindex: Int32? = nil, stats: LinkStatistics? = nil
    ) -> [ChannelOutput] {
        guard var port = self.ports.removeValue(forKey: name) else { return [] }
        self.watched.remove(name)
        var outputs: [ChannelOutput] = []
        if let ifindex, let stats {
            self.addStats(&port, name, ifindex: ifindex, stats: stats, now: now, into: &outputs)
        }
        for index in port.bars.indices {
            for bar in port.bars[index].close(upTo: now) { outputs.append(.bar(port: name, Self.bar(bar))) }
            if let bar = port.bars[index].cut(at: now) { outputs.append(.bar(port: name, Self.bar(bar))) }
        }
        self.departed[name] = (port.bars, now)
        if port.damper.damped {
            outputs.append(.health(port: name, self.health(port.damper, damped: false, now: now)))
        }
        port.heldState = nil
        for change in self.alerts.forget(subject: name) { self.emit(change, now, into: &outputs) }
        return outputs
    }

    /// Time passes: bars close, damped ports are released, time-based rules are measured, alerts clear after their
    /// quiet period.
    public mutating func tick(now: UInt64) -> [ChannelOutput] {
        // The watched ports and those with a bar ending by now, in name order: nothing is due for any other. (The
        // sort is cheap: a tick files the ports it closed in this order, and a list in order sorts in one pass.)
        let everyPort = self.alerts.raisesAtZero
        var due = everyPort ? Array(self.ports.keys) : Array(self.watched)
        for end in self.closing.keys.filter({ $0 <= now }) { due += self.closing.removeValue(forKey: end) ?? [] }
        due.sort()
        if !self.departed.isEmpty {
            let memory = self.departureMemoryMicros
            self.departed = self.departed.filter { now < $0.value.at || now - $0.value.at <= memory }
        }
        var outputs: [ChannelOutput] = []
        var previous: String?
        for name in due where name != previous {
            previous = name
            guard let slot = self.ports.index(forKey: name) else {
                self.watched.remove(name)
                continue
            }
            let watched = everyPort || self.ports.values[slot].watched
            guard watched || self.ports.values[slot].closesAt ?? .max <= now else { continue }
            var port = self.takePort(at: slot)
            for index in port.bars.indices {
                for bar in port.bars[index].close(upTo: now) { outputs.append(.bar(port: name, Self.bar(bar))) }
            }
            // An unwatched port has no damping to decay, no flap in a window and no alert to measure.
            guard watched else {
                self.put(&port, name, at: slot, watch: false)
                continue
            }
            if self.settings.dampingMode != .off, port.damper.tick(now: now) == .released {
                outputs.append(.health(port: name, self.health(port.damper, damped: false, now: now)))
                if let held = port.heldState {
                    port.heldState = nil
                    outputs.append(.linkChange(port: name, held))
                }
            }
            for rule in self.rules.flapRate {
                let rate = port.flaps.count(within: rule.windowMicros, at: now)
                self.observe(rule, name, Double(rate), now, occurrence: false, into: &outputs)
            }
            for rule in self.rules.damped {
                self.observe(rule, name, port.damper.damped ? 1 : 0, now, occurrence: false, into: &outputs)
            }
            for rule in self.rules.operDown {
                let seconds = port.operDownSince.map { now >= $0 ? Double(now - $0) / 1_000_000 : 0 } ?? 0
                self.observe(rule, name, seconds, now, occurrence: false, into: &outputs)
            }
            _ = port.flaps.count(at: now)  // forget what no window needs
            self.put(&port, name, at: slot, watch: true)
        }
        for change in self.alerts.tick(now: now) { self.emit(change, now, into: &outputs) }
        self.closeFloodWindow(now, into: &outputs)
        return outputs
    }

    /// A channel shard's own figures, for the channel-level rules (`queue_depth`, `latency`); `subject` names the
    /// shard (`channels/0`).
    public mutating func channel(subject: String, queueDepth: Int, latencyMillis: Double, now: UInt64)
        -> [ChannelOutput]
    {
        var outputs: [ChannelOutput] = []
        for rule in self.rules.channel {
            let value = rule.condition == .queueDepth ? Double(queueDepth) : latencyMillis
            self.observe(rule, subject, value, now, occurrence: false, into: &outputs)
        }
        return outputs
    }

    /// The last closed bars of `port` for `intervalMicros` (oldest first).
    public func bars(port name: String, intervalMicros: UInt64) -> [CounterBar] {
        self.ports[name]?.bars.first { $0.intervalMicros == intervalMicros }?.history ?? []
    }

    /// Whether this value knows `port`.
    public func knows(_ name: String) -> Bool { self.ports[name] != nil }

    /// Whether `port` is damped now.
    public func isDamped(_ name: String) -> Bool { self.ports[name]?.damper.damped ?? false }

    /// Moves the ports (and their alerts) that `take` selects into a new value with the same settings
    /// (re-sharding). Channel-level alerts stay.
    public mutating func split(where take: (String) -> Bool) -> PortChannels {
        var part = PortChannels(settings: self.settings)
        part.linkSpeedsMbps = self.linkSpeedsMbps
        for (name, port) in self.ports where take(name) {
            part.ports[name] = port
            self.ports[name] = nil
        }
        part.alerts = self.alerts.split { name in take(name) && !name.hasPrefix(Self.channelSubjectPrefix) }
        self.reindex()
        part.reindex()
        return part
    }

    /// Takes over `other`'s ports, alerts and counts (re-sharding; the port sets are disjoint).
    public mutating func absorb(_ other: PortChannels) {
        for (name, port) in other.ports { self.ports[name] = port }
        self.reindex()
        self.alerts.absorb(other.alerts)
        self.duplicatesFolded += other.duplicatesFolded
        for (rule, count) in other.floodHeldTotal { self.floodHeldTotal[rule, default: 0] += count }
    }

    /// How channel-level alert subjects begin.
    public static let channelSubjectPrefix = "channels/"

    private mutating func observe(
        _ rule: AlertRule, _ subject: String, _ value: Double, _ now: UInt64, occurrence: Bool,
        into outputs: inout [ChannelOutput]
    ) {
        if let change = self.alerts.observe(
            rule: rule.name, subject: subject, value: value, now: now, occurrence: occurrence)
        {
            self.emit(change, now, into: &outputs)
        }
    }

    /// Flood control across subjects: at most `floodLimit` alert events per rule per second leave this value;
    /// the rest are counted (the alerts themselves stay exact, for `/v1/alerts`), and one `.flood` output per
    /// rule says how many were held back when the second ends.
    private mutating func emit(_ change: AlertChange, _ now: UInt64, into outputs: inout [ChannelOutput]) {
        let second = now / 1_000_000
        if second != self.floodSecond { self.closeFloodWindow(now, into: &outputs) }
        self.floodSecond = second
        let sent = self.floodSent[change.rule, default: 0]
        if sent < self.settings.floodLimit {
            self.floodSent[change.rule] = sent + 1
            outputs.append(.alert(port: change.subject, change))
        } else {
            self.floodHeld[change.rule, default: 0] += 1
            self.floodHeldTotal[change.rule, default: 0] += 1
        }
    }

    private mutating func closeFloodWindow(_ now: UInt64, into outputs: inout [ChannelOutput]) {
        guard now / 1_000_000 != self.floodSecond else { return }
        for rule in self.floodHeld.keys.sorted() {
            outputs.append(.flood(rule: rule, held: self.floodHeld[rule] ?? 0))
        }
        self.floodHeld = [:]
        self.floodSent = [:]
    }

    /// Takes the port at `index` out of `ports`, leaving `Port.vacant` there until `put`: changed alone, its
    /// arrays are not copied.
    private mutating func takePort(at index: [String: Port].Index) -> Port {
        var port = Port.vacant
        swap(&port, &self.ports.values[index])
        return port
    }

    /// Puts the port back (at `index`, where it was taken, or as a new one), filed under the end of its next bar
    /// and, when `watch`, judged again: among the watched ports or not.
    private mutating func put(_ port: inout Port, _ name: String, at index: [String: Port].Index?, watch: Bool) {
        var closesAt: UInt64?
        for bar in port.bars.indices {
            if let end = port.bars[bar].nextCloseMicros, end < closesAt ?? .max { closesAt = end }
        }
        if let closesAt, closesAt != port.closesAt { self.closing[closesAt, default: []].append(name) }
        port.closesAt = closesAt
        if watch {
            let decaying = port.damper.damped || port.damper.penalty != 0
            let needsTick =
                ((self.settings.dampingMode != .off || !self.rules.damped.isEmpty) && decaying)
                || !port.flaps.isEmpty || self.alerts.isTracking(name)
                || (port.operDownSince != nil && !self.rules.operDown.isEmpty)
            if needsTick != port.watched {
                if needsTick { self.watched.insert(name) } else { self.watched.remove(name) }
                port.watched = needsTick
            }
        }
        if let index { swap(&port, &self.ports.values[index]) } else { self.ports[name] = port }
    }

    /// `closing` and `watched` again from the ports (after ports moved in or out); every port is judged at the
    /// next tick.
    private mutating func reindex() {
        self.closing = [:]
        for (name, port) in self.ports {
            if let end = port.closesAt { self.closing[end, default: []].append(name) }
        }
        for name in self.ports.keys { self.ports[name]?.watched = true }
        self.watched = Set(self.ports.keys)
    }

    private mutating func newPort(_ name: String, now: UInt64) -> Port {
        var bars = self.settings.barIntervalsMicros.map {
            CounterBarBuilder(intervalMicros: $0, historyCapacity: self.settings.barHistory)
        }
        if let gone = self.departed.removeValue(forKey: name), now - gone.at <= self.departureMemoryMicros,
            gone.bars.map(\.intervalMicros) == bars.map(\.intervalMicros)
        {
            bars = gone.bars
        }
        return Port(
            damper: FlapDamper(parameters: self.settings.damping),
            flaps: SlidingWindowCounter(windowMicros: self.rules.flapMemoryMicros), bars: bars)
    }

    /// How long a deleted port's bars wait for its re-creation: the longest bar length.
    private var departureMemoryMicros: UInt64 { self.settings.barIntervalsMicros.max() ?? 0 }

    private mutating func addStats(
        _ port: inout Port, _ name: String, ifindex: Int32, stats: LinkStatistics, now: UInt64,
        into outputs: inout [ChannelOutput]
    ) {
        let sample = CounterSample(ifindex: ifindex, timeMicros: now, stats: stats)
        for index in port.bars.indices {
            for bar in port.bars[index].add(sample) { outputs.append(.bar(port: name, Self.bar(bar))) }
        }
        defer { port.lastSample = sample }
        guard !self.rules.errorRate.isEmpty || !self.rules.utilisation.isEmpty, let last = port.lastSample,
            let rates = Self.rates(from: last, to: sample)
        else { return }
        for rule in self.rules.errorRate {
            self.observe(rule, name, rates.errors, now, occurrence: rates.errors >= rule.raiseAt, into: &outputs)
        }
        for rule in self.rules.utilisation {
            guard let speed = rule.speedMbps > 0 ? rule.speedMbps : self.linkSpeedsMbps[name], speed > 0 else {
                continue
            }
            let percent = rates.bits / (speed * 1_000_000) * 100
            self.observe(rule, name, percent, now, occurrence: percent >= rule.raiseAt, into: &outputs)
        }
    }

    /// Errors and drops per second, and the busier direction's bits per second, between two samples of the same
    /// interface; nil across a counter reset or an ifindex change (never a negative or huge rate).
    static func rates(from old: CounterSample, to new: CounterSample) -> (errors: Double, bits: Double)? {
        guard old.ifindex == new.ifindex, new.timeMicros > old.timeMicros else { return nil }
        let a = old.stats
        let b = new.stats
        let counters: [(UInt64, UInt64)] = [
            (a.rxErrors, b.rxErrors), (a.txErrors, b.txErrors), (a.rxDropped, b.rxDropped),
            (a.txDropped, b.txDropped), (a.rxBytes, b.rxBytes), (a.txBytes, b.txBytes),
        ]
        guard counters.allSatisfy({ $0.1 >= $0.0 }) else { return nil }
        let seconds = Double(new.timeMicros - old.timeMicros) / 1_000_000
        let errors = counters[0..<4].reduce(0.0) { $0 + Double($1.1 - $1.0) } / seconds
        let bits = Double(Swift.max(b.rxBytes - a.rxBytes, b.txBytes - a.txBytes)) * 8 / seconds
        return (errors, bits)
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
        self.barIntervalsMicros = config.channels.barIntervalsMs.map { UInt64($0) * 1000 }
        self.barHistory = config.channels.barHistory
        self.floodLimit = config.alerts.floodLimit
        var rules = [
            AlertRule(
                name: "port_flapping", condition: .flapRate,
                severity: AlertSeverity(rawValue: config.alerts.flapSeverity) ?? .major,
                raiseAt: Double(config.alerts.flapRaise), clearBelow: Double(config.alerts.flapClear),
                cooldownMicros: UInt64(config.alerts.flapCooldownMs) * 1000,
                windowMicros: UInt64(config.alerts.flapWindowMs) * 1000)
        ]
        if config.alerts.portDownAfterMs > 0 {
            rules.append(
                AlertRule(
                    name: "port_down", condition: .operDown,
                    severity: AlertSeverity(rawValue: config.alerts.portDownSeverity) ?? .warning,
                    raiseAt: Double(config.alerts.portDownAfterMs) / 1000, clearBelow: 0.001))
        }
        self.rules = rules + config.alerts.rules
    }
}

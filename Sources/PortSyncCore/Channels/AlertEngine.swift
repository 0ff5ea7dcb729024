/// How bad an alert is.
public enum AlertSeverity: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case info
    case warning
    case major
    case critical

    private var rank: Int { Self.allCases.firstIndex(of: self) ?? 0 }
    public static func < (lhs: AlertSeverity, rhs: AlertSeverity) -> Bool { lhs.rank < rhs.rank }
}

/// What a rule measures, and where (a port's channel, or a channel shard itself).
public enum AlertCondition: String, Sendable, Hashable, Codable, CaseIterable {
    /// Link-down transitions (from the kernel's carrier-change counter) within the rule's window: the link channel.
    case flapRate = "flap_rate"
    /// 1 while the port is damped, else 0: port health.
    case damped
    /// Seconds the port has been oper down: the link channel.
    case operDown = "oper_down"
    /// Errors and drops per second, received and sent together, between two counter samples: counter bars.
    case errorRate = "error_rate"
    /// The busier direction's bit rate between two counter samples, in percent of the rule's link speed.
    case utilisation
    /// Inputs waiting in a channel shard's intake (the subject is the shard, `channels/N`).
    case queueDepth = "queue_depth"
    /// A channel shard's processing latency p99 over the last second, in milliseconds (subject `channels/N`).
    case latency

    /// Measured per channel shard rather than per port.
    public var isChannelLevel: Bool { self == .queueDepth || self == .latency }
}

/// A channel monitor's rule: raise when a measured value stays at or above `raiseAt` for `forMicros`; clear
/// (when `autoResolve`) once it has stayed below `clearBelow` (hysteresis: `clearBelow ≤ raiseAt`) for
/// `cooldownMicros`. Observations at or above `raiseAt` while the alert is active are repeats: suppressed and
/// counted (flood control), never a second `alert_raised`.
public struct AlertRule: Sendable, Hashable, Codable {
    public var name: String
    /// What is measured.
    public var condition: AlertCondition
    public var severity: AlertSeverity
    public var raiseAt: Double
    public var clearBelow: Double
    public var forMicros: UInt64
    public var cooldownMicros: UInt64
    public var autoResolve: Bool
    /// The window of a `flap_rate` rule.
    public var windowMicros: UInt64
    /// The link speed a `utilisation` rule divides by, in Mb/s; 0: each port's CONFIG_DB `speed`.
    public var speedMbps: Double

    public init(
        name: String, condition: AlertCondition, severity: AlertSeverity, raiseAt: Double, clearBelow: Double? = nil,
        forMicros: UInt64 = 0, cooldownMicros: UInt64 = 0, autoResolve: Bool = true,
        windowMicros: UInt64 = 10_000_000, speedMbps: Double = 0
    ) {
        self.name = name
        self.condition = condition
        self.severity = severity
        self.raiseAt = raiseAt
        self.clearBelow = Swift.min(clearBelow ?? raiseAt, raiseAt)
        self.forMicros = forMicros
        self.cooldownMicros = cooldownMicros
        self.autoResolve = autoResolve
        self.windowMicros = Swift.max(windowMicros, 1)
        self.speedMbps = speedMbps
    }
}

/// What the engine decided.
public struct AlertChange: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        case raised
        case cleared
    }

    public var kind: Kind
    public var rule: String
    public var condition: AlertCondition
    public var subject: String
    public var severity: AlertSeverity
    public var value: Double
    /// Repeats suppressed while the alert was active (on `cleared`), 0 on `raised`.
    public var suppressed: UInt64

    public init(
        kind: Kind, rule: AlertRule, subject: String, value: Double, suppressed: UInt64
    ) {
        self.kind = kind
        self.rule = rule.name
        self.condition = rule.condition
        self.subject = subject
        self.severity = rule.severity
        self.value = value
        self.suppressed = suppressed
    }
}

/// One active alert, as `/v1/alerts` shows it.
public struct ActiveAlert: Sendable, Hashable, Codable {
    public var rule: String
    public var condition: AlertCondition
    public var subject: String
    public var severity: AlertSeverity
    /// The latest measured value.
    public var value: Double
    /// When it was raised (monotonic microseconds).
    public var raisedAtMicros: UInt64
    /// Repeats suppressed since it was raised.
    public var suppressed: UInt64

    enum CodingKeys: String, CodingKey {
        case rule, condition, subject, severity, value, suppressed
        case raisedAtMicros = "raised_at_us"
    }
}

/// The state of every (rule, subject) pair: a value owned by one channel queue, on an injected clock.
public struct AlertEngine: Sendable {
    fileprivate struct State: Sendable {
        var active = false
        /// Since when the value has been at or above `raiseAt` (not active yet).
        var pendingSince: UInt64?
        /// Since when the value has been below `clearBelow` (active).
        var quietSince: UInt64?
        var raisedAt: UInt64 = 0
        var suppressed: UInt64 = 0
        var lastValue: Double = 0

        /// Neither active nor pending: the same as no state at all (`lastValue` is only read while active).
        var isIdle: Bool { !self.active && self.pendingSince == nil && self.quietSince == nil && self.suppressed == 0 }
    }

    public private(set) var rules: [String: AlertRule]
    /// The pairs that are active or pending; an idle pair is not kept.
    private var states: [String: [String: State]] = [:]
    /// Repeats suppressed over the engine's life, by rule.
    public private(set) var suppressedTotal: [String: UInt64] = [:]

    public init(rules: [AlertRule]) {
        self.rules = Dictionary(rules.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
    }

    /// New rules (a reload): alerts of removed rules, or of rules whose condition changed, are cleared; kept rules
    /// keep their state.
    public mutating func update(rules: [AlertRule], now: UInt64) -> [AlertChange] {
        let next = Dictionary(rules.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
        var changes: [AlertChange] = []
        for (name, subjects) in self.states where next[name]?.condition != self.rules[name]?.condition {
            for (subject, state) in subjects.sorted(by: { $0.key < $1.key }) where state.active {
                if let rule = self.rules[name] {
                    changes.append(
                        AlertChange(
                            kind: .cleared, rule: rule, subject: subject, value: state.lastValue,
                            suppressed: state.suppressed))
                }
            }
            self.states[name] = nil
        }
        self.rules = next
        return changes
    }

    /// How many alerts are active now (what `active` would list, without building it).
    public var activeCount: Int {
        self.states.reduce(0) { count, entry in
            self.rules[entry.key] == nil ? count : count + entry.value.values.count(where: \.active)
        }
    }

    /// The alerts active now, by rule then subject.
    public var active: [ActiveAlert] {
        var result: [ActiveAlert] = []
        for (name, subjects) in self.states {
            guard let rule = self.rules[name] else { continue }
            for (subject, state) in subjects where state.active {
                result.append(
                    ActiveAlert(
                        rule: name, condition: rule.condition, subject: subject, severity: rule.severity,
                        value: state.lastValue, raisedAtMicros: state.raisedAt, suppressed: state.suppressed))
            }
        }
        return result.sorted { ($0.rule, $0.subject) < ($1.rule, $1.subject) }
    }

    /// One measurement of `rule`'s metric for `subject` (a port, a channel) at `now`. `occurrence` says whether
    /// something happened (a flap, an error burst) rather than a periodic re-measurement: only occurrences at or
    /// above `raiseAt` while the alert is active count as suppressed repeats.
    public mutating func observe(
        rule name: String, subject: String, value: Double, now: UInt64, occurrence: Bool = true
    ) -> AlertChange? {
        guard let rule = self.rules[name] else { return nil }
        var state = self.states[name]?[subject] ?? State()
        defer { self.store(state, rule: name, subject: subject) }
        state.lastValue = value
        if state.active {
            if value >= rule.raiseAt && occurrence {
                state.suppressed += 1
                self.suppressedTotal[name, default: 0] += 1
            }
            if value < rule.clearBelow {
                if state.quietSince == nil { state.quietSince = now }
            } else {
                state.quietSince = nil
            }
            return self.clearIfDue(rule, subject, &state, now: now)
        }
        guard value >= rule.raiseAt else {
            state.pendingSince = nil
            return nil
        }
        let since = state.pendingSince ?? now
        state.pendingSince = since
        guard now - since >= rule.forMicros else { return nil }
        state.active = true
        state.pendingSince = nil
        state.quietSince = nil
        state.suppressed = 0
        state.raisedAt = now
        return AlertChange(kind: .raised, rule: rule, subject: subject, value: value, suppressed: 0)
    }

    /// Time passes without a measurement: clears alerts whose quiet period has lasted the cooldown.
    public mutating func tick(now: UInt64) -> [AlertChange] {
        var changes: [AlertChange] = []
        for (name, subjects) in self.states {
            guard let rule = self.rules[name] else { continue }
            for (subject, var state) in subjects where state.active {
                if let change = self.clearIfDue(rule, subject, &state, now: now) { changes.append(change) }
                self.store(state, rule: name, subject: subject)
            }
        }
        return changes.sorted { ($0.rule, $0.subject) < ($1.rule, $1.subject) }
    }

    /// A subject is gone (a deleted port): its alerts clear now, whatever their cooldown.
    public mutating func forget(subject: String) -> [AlertChange] {
        var changes: [AlertChange] = []
        for name in self.states.keys.sorted() {
            guard let state = self.states[name]?.removeValue(forKey: subject), state.active,
                let rule = self.rules[name]
            else { continue }
            changes.append(
                AlertChange(
                    kind: .cleared, rule: rule, subject: subject, value: state.lastValue, suppressed: state.suppressed))
        }
        return changes
    }

    /// The part of the engine about the subjects `keep` selects; the rest stays here (re-sharding).
    public mutating func split(where keep: (String) -> Bool) -> AlertEngine {
        var part = AlertEngine(rules: Array(self.rules.values))
        for (name, subjects) in self.states {
            for (subject, state) in subjects where keep(subject) {
                part.states[name, default: [:]][subject] = state
                self.states[name]?[subject] = nil
            }
        }
        return part
    }

    /// Takes over `other`'s subjects (re-sharding; subjects are disjoint) and its suppression totals.
    public mutating func absorb(_ other: AlertEngine) {
        for (name, subjects) in other.states {
            for (subject, state) in subjects { self.states[name, default: [:]][subject] = state }
        }
        for (name, count) in other.suppressedTotal { self.suppressedTotal[name, default: 0] += count }
    }

    /// Whether `subject` has an alert active or pending under any rule (it must be measured again even when
    /// nothing happens to it).
    func isTracking(_ subject: String) -> Bool {
        self.states.values.contains { $0[subject] != nil }
    }

    /// Whether a measurement of 0 can raise an alert (a rule with `raiseAt ≤ 0`): then every subject must be
    /// measured, tracked or not.
    var raisesAtZero: Bool { self.rules.values.contains { $0.raiseAt <= 0 } }

    private mutating func store(_ state: State, rule name: String, subject: String) {
        if !state.isIdle {
            self.states[name, default: [:]][subject] = state
        } else if self.states[name]?[subject] != nil {
            self.states[name]?[subject] = nil
        }
    }

    private func clearIfDue(_ rule: AlertRule, _ subject: String, _ state: inout State, now: UInt64) -> AlertChange? {
        guard rule.autoResolve, let quiet = state.quietSince, now >= quiet, now - quiet >= rule.cooldownMicros
        else { return nil }
        state.active = false
        state.quietSince = nil
        let suppressed = state.suppressed
        state.suppressed = 0
        return AlertChange(kind: .cleared, rule: rule, subject: subject, value: state.lastValue, suppressed: suppressed)
    }
}

/// Events within a sliding window (flaps per window, errors per window), on an injected clock.
public struct SlidingWindowCounter: Sendable, Hashable {
    public private(set) var windowMicros: UInt64
    private var times: [UInt64] = []

    public init(windowMicros: UInt64) {
        self.windowMicros = Swift.max(windowMicros, 1)
    }

    /// A new window length (a reload); events older than it are forgotten at the next count.
    public mutating func resize(windowMicros: UInt64) {
        self.windowMicros = Swift.max(windowMicros, 1)
    }

    /// Adds `count` events at `now`; returns how many fall within the window ending at `now`.
    public mutating func add(_ count: Int = 1, now: UInt64) -> Int {
        for _ in 0..<Swift.max(count, 0) { self.times.append(now) }
        return self.count(at: now)
    }

    /// Events within the last `window` (at most the counter's own) ending at `now`; nothing is forgotten.
    public func count(within window: UInt64, at now: UInt64) -> Int {
        let horizon = now >= window ? now - window : 0
        var count = 0
        for time in self.times.reversed() {
            guard time > horizon || (horizon == 0 && time == 0) else { break }
            count += 1
        }
        return count
    }

    /// No event kept (none within the window at the last count, none added since).
    var isEmpty: Bool { self.times.isEmpty }

    /// Events within the window ending at `now` (older ones are forgotten).
    public mutating func count(at now: UInt64) -> Int {
        let horizon = now >= self.windowMicros ? now - self.windowMicros : 0
        if let keep = self.times.firstIndex(where: { $0 > horizon || (horizon == 0 && $0 == 0) }) {
            self.times.removeFirst(keep)
        } else {
            self.times.removeAll()
        }
        return self.times.count
    }
}

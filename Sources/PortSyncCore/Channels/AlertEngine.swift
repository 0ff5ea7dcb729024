/// How bad an alert is.
public enum AlertSeverity: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case info
    case warning
    case major
    case critical

    private var rank: Int { Self.allCases.firstIndex(of: self) ?? 0 }
    public static func < (lhs: AlertSeverity, rhs: AlertSeverity) -> Bool { lhs.rank < rhs.rank }
}

/// A channel monitor's rule: raise when a measured value stays at or above `raiseAt` for `forMicros`; clear
/// (when `autoResolve`) once it has stayed below `clearBelow` (hysteresis: `clearBelow ≤ raiseAt`) for
/// `cooldownMicros`. Observations at or above `raiseAt` while the alert is active are repeats: suppressed and
/// counted (flood control), never a second `alert_raised`.
public struct AlertRule: Sendable, Hashable, Codable {
    public var name: String
    /// What is measured, for the journal and the event (`flap_rate`, `oper_down_seconds`, `error_rate`, …).
    public var metric: String
    public var severity: AlertSeverity
    public var raiseAt: Double
    public var clearBelow: Double
    public var forMicros: UInt64
    public var cooldownMicros: UInt64
    public var autoResolve: Bool

    public init(
        name: String, metric: String, severity: AlertSeverity, raiseAt: Double, clearBelow: Double? = nil,
        forMicros: UInt64 = 0, cooldownMicros: UInt64 = 0, autoResolve: Bool = true
    ) {
        self.name = name
        self.metric = metric
        self.severity = severity
        self.raiseAt = raiseAt
        self.clearBelow = Swift.min(clearBelow ?? raiseAt, raiseAt)
        self.forMicros = forMicros
        self.cooldownMicros = cooldownMicros
        self.autoResolve = autoResolve
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
    public var subject: String
    public var severity: AlertSeverity
    public var value: Double
    /// Repeats suppressed while the alert was active (on `cleared`), 0 on `raised`.
    public var suppressed: UInt64

    public init(kind: Kind, rule: String, subject: String, severity: AlertSeverity, value: Double, suppressed: UInt64) {
        self.kind = kind
        self.rule = rule
        self.subject = subject
        self.severity = severity
        self.value = value
        self.suppressed = suppressed
    }
}

/// The state of every (rule, subject) pair: a value owned by one channel queue, on an injected clock.
public struct AlertEngine: Sendable {
    private struct State: Sendable {
        var active = false
        /// Since when the value has been at or above `raiseAt` (not active yet).
        var pendingSince: UInt64?
        /// Since when the value has been below `clearBelow` (active).
        var quietSince: UInt64?
        var suppressed: UInt64 = 0
        var lastValue: Double = 0
    }

    public private(set) var rules: [String: AlertRule]
    private var states: [String: [String: State]] = [:]
    /// Repeats suppressed over the engine's life, by rule.
    public private(set) var suppressedTotal: [String: UInt64] = [:]

    public init(rules: [AlertRule]) {
        self.rules = Dictionary(rules.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
    }

    /// New rules (a reload): alerts of removed rules are cleared; kept rules keep their state.
    public mutating func update(rules: [AlertRule], now: UInt64) -> [AlertChange] {
        let next = Dictionary(rules.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
        var changes: [AlertChange] = []
        for (name, subjects) in self.states where next[name] == nil {
            for (subject, state) in subjects where state.active {
                if let rule = self.rules[name] {
                    changes.append(
                        AlertChange(
                            kind: .cleared, rule: name, subject: subject, severity: rule.severity,
                            value: state.lastValue, suppressed: state.suppressed))
                }
            }
            self.states[name] = nil
        }
        self.rules = next
        return changes
    }

    /// The alerts active now, as (rule, subject).
    public var active: [(rule: String, subject: String)] {
        self.states.flatMap { rule, subjects in
            subjects.filter(\.value.active).map { (rule: rule, subject: $0.key) }
        }.sorted { ($0.rule, $0.subject) < ($1.rule, $1.subject) }
    }

    /// One measurement of `rule`'s metric for `subject` (a port, a channel) at `now`. `occurrence` says whether
    /// something happened (a flap, an error burst) rather than a periodic re-measurement: only occurrences at or
    /// above `raiseAt` while the alert is active count as suppressed repeats.
    public mutating func observe(
        rule name: String, subject: String, value: Double, now: UInt64, occurrence: Bool = true
    ) -> AlertChange? {
        guard let rule = self.rules[name] else { return nil }
        var state = self.states[name]?[subject] ?? State()
        defer { self.states[name, default: [:]][subject] = state }
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
        return AlertChange(
            kind: .raised, rule: name, subject: subject, severity: rule.severity, value: value, suppressed: 0)
    }

    /// Time passes without a measurement: clears alerts whose quiet period has lasted the cooldown.
    public mutating func tick(now: UInt64) -> [AlertChange] {
        var changes: [AlertChange] = []
        for (name, subjects) in self.states {
            guard let rule = self.rules[name] else { continue }
            for (subject, var state) in subjects where state.active {
                if let change = self.clearIfDue(rule, subject, &state, now: now) { changes.append(change) }
                self.states[name]?[subject] = state
            }
        }
        return changes.sorted { ($0.rule, $0.subject) < ($1.rule, $1.subject) }
    }

    private func clearIfDue(_ rule: AlertRule, _ subject: String, _ state: inout State, now: UInt64) -> AlertChange? {
        guard rule.autoResolve, let quiet = state.quietSince, now >= quiet, now - quiet >= rule.cooldownMicros
        else { return nil }
        state.active = false
        state.quietSince = nil
        let suppressed = state.suppressed
        state.suppressed = 0
        return AlertChange(
            kind: .cleared, rule: rule.name, subject: subject, severity: rule.severity, value: state.lastValue,
            suppressed: suppressed)
    }
}

/// Events within a sliding window (flaps per window, errors per window), on an injected clock.
public struct SlidingWindowCounter: Sendable, Hashable {
    public let windowMicros: UInt64
    private var times: [UInt64] = []

    public init(windowMicros: UInt64) {
        self.windowMicros = Swift.max(windowMicros, 1)
    }

    /// Adds `count` events at `now`; returns how many fall within the window ending at `now`.
    public mutating func add(_ count: Int = 1, now: UInt64) -> Int {
        for _ in 0..<Swift.max(count, 0) { self.times.append(now) }
        return self.count(at: now)
    }

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

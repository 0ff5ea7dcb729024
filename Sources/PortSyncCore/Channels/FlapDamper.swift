internal import Foundation

/// Link-event damping with the parameters and meaning of SONiC's Link Event Damping design.
///
/// Every link-down transition adds `flapPenalty` to the port's penalty, which decays exponentially with
/// `halfLife`. When the penalty rises above `suppressThreshold` the port is damped (suppressed): its flapping is
/// not propagated. When it decays below `reuseThreshold` the port is released. The penalty never exceeds
/// `reuseThreshold × 2^(maxSuppress / halfLife)`, so no port stays damped longer than `maxSuppress` after its
/// last flap.
///
/// Flaps are counted from the kernel's carrier-change counter, not from messages: the kernel rate-limits link
/// events, so one message can stand for several transitions. Time is passed in (monotonic microseconds).
public struct FlapDamper: Sendable, Hashable {
    public struct Parameters: Sendable, Hashable, Codable {
        public var flapPenalty: Double
        public var suppressThreshold: Double
        public var reuseThreshold: Double
        public var halfLifeMicros: UInt64
        public var maxSuppressMicros: UInt64

        public init(
            flapPenalty: Double = 1000, suppressThreshold: Double = 1600, reuseThreshold: Double = 1200,
            halfLifeMicros: UInt64 = 15_000_000, maxSuppressMicros: UInt64 = 30_000_000
        ) {
            self.flapPenalty = flapPenalty
            self.suppressThreshold = suppressThreshold
            self.reuseThreshold = reuseThreshold
            self.halfLifeMicros = Swift.max(halfLifeMicros, 1)
            self.maxSuppressMicros = maxSuppressMicros
        }

        /// The ceiling of the penalty: `reuse × 2^(maxSuppress / halfLife)`.
        public var maxPenalty: Double {
            self.reuseThreshold * exp2(Double(self.maxSuppressMicros) / Double(self.halfLifeMicros))
        }
    }

    /// What a sample changed.
    public enum Transition: Sendable, Hashable {
        case none
        /// The penalty crossed `suppressThreshold`: damping starts.
        case damped
        /// The penalty decayed below `reuseThreshold`: damping ends.
        case released
    }

    public var parameters: Parameters
    public private(set) var penalty: Double = 0
    public private(set) var damped = false
    /// Link-down transitions seen.
    public private(set) var flaps: UInt64 = 0
    /// Link-down transitions seen while damped (suppressed).
    public private(set) var suppressedFlaps: UInt64 = 0
    private var updatedAt: UInt64?
    private var lastCarrierChanges: UInt32?
    private var lastOperUp: Bool?

    public init(parameters: Parameters) {
        self.parameters = parameters
    }

    /// The penalty at `now`, decayed since the last update.
    public func penalty(at now: UInt64) -> Double {
        guard let updatedAt = self.updatedAt, now > updatedAt else { return self.penalty }
        return self.penalty * exp2(-Double(now - updatedAt) / Double(self.parameters.halfLifeMicros))
    }

    /// A link message's state: its carrier-change counter and oper state. Counts the link-down transitions since
    /// the previous sample (alternating from the previous oper state), adds their penalty, and says whether
    /// damping started or ended.
    public mutating func sample(carrierChanges: UInt32?, operUp: Bool, now: UInt64) -> Transition {
        var downs: UInt64 = 0
        if let previous = self.lastCarrierChanges, let current = carrierChanges, current >= previous {
            let transitions = UInt64(current - previous)
            // Transitions alternate starting from the previous state: from up, the odd ones are downs.
            let wasUp = self.lastOperUp ?? !operUp
            downs = wasUp ? (transitions + 1) / 2 : transitions / 2
        } else if carrierChanges == nil, let wasUp = self.lastOperUp, wasUp && !operUp {
            downs = 1  // no counter (a driver without carrier stats): count the state change itself
        }
        if carrierChanges != nil { self.lastCarrierChanges = carrierChanges }
        self.lastOperUp = operUp
        return self.flap(count: downs, now: now)
    }

    /// Adds `count` flaps at `now` (used by `sample`, and by tests).
    public mutating func flap(count: UInt64, now: UInt64) -> Transition {
        var current = self.penalty(at: now)
        if count > 0 {
            self.flaps += count
            if self.damped { self.suppressedFlaps += count }
            current = Swift.min(current + Double(count) * self.parameters.flapPenalty, self.parameters.maxPenalty)
        }
        self.penalty = current
        self.updatedAt = now
        return self.judge(current)
    }

    /// Lets time pass (a periodic check): releases the port once the penalty decayed below reuse.
    public mutating func tick(now: UInt64) -> Transition {
        let current = self.penalty(at: now)
        self.penalty = current
        self.updatedAt = now
        return self.judge(current)
    }

    /// When, from `now`, the penalty will decay below `reuseThreshold` (`nil` when not damped).
    public func releaseDelayMicros(at now: UInt64) -> UInt64? {
        guard self.damped else { return nil }
        let current = self.penalty(at: now)
        guard current >= self.parameters.reuseThreshold else { return 0 }
        let halfLives = log2(current / self.parameters.reuseThreshold)
        return UInt64((halfLives * Double(self.parameters.halfLifeMicros)).rounded(.up)) + 1
    }

    private mutating func judge(_ current: Double) -> Transition {
        if !self.damped && current > self.parameters.suppressThreshold {
            self.damped = true
            return .damped
        }
        if self.damped && current < self.parameters.reuseThreshold {
            self.damped = false
            return .released
        }
        return .none
    }
}

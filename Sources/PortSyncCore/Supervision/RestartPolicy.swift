/// How important a worker is to the daemon, which decides what happens when it cannot be kept running.
public enum WorkerCriticality: String, Sendable, Hashable, Codable, CaseIterable {
    /// The port path (netlink reader and pipeline, Redis writer): past its restart intensity the process exits
    /// with status 1, so that systemd restarts it and the start-up sync reconciles Redis with the kernel; a stall
    /// withholds `WATCHDOG=1`.
    case critical
    /// Past its restart intensity it is stopped and reported; the daemon runs degraded.
    case important
    /// As `important`, for conveniences (analytics, threshold tuning).
    case optional
}

/// Exponential backoff with jitter and an OTP-style restart intensity: at most `intensity` restarts within any
/// `periodMicros`.
public struct RestartPolicy: Sendable, Hashable {
    /// The delay before the first restart within the period, in microseconds.
    public var initialMicros: UInt64
    /// The longest delay, in microseconds.
    public var maxMicros: UInt64
    /// The delay is spread by up to ± this fraction of itself (0 … 1), so that workers failing together do not
    /// restart together.
    public var jitter: Double
    /// Restarts allowed within `periodMicros`; one more is an escalation.
    public var intensity: Int
    /// The sliding window of the intensity, in microseconds.
    public var periodMicros: UInt64

    public init(initialMicros: UInt64, maxMicros: UInt64, jitter: Double, intensity: Int, periodMicros: UInt64) {
        self.initialMicros = initialMicros
        self.maxMicros = Swift.max(initialMicros, maxMicros)
        self.jitter = Swift.min(Swift.max(jitter, 0), 1)
        self.intensity = Swift.max(intensity, 0)
        self.periodMicros = periodMicros
    }

    /// The delay before the `attempt`-th restart within the period (1 for the first), before jitter:
    /// `initial × 2^(attempt−1)`, capped at `maxMicros`.
    public func baseDelay(attempt: Int) -> UInt64 {
        let shift = Swift.max(attempt - 1, 0)
        guard shift < 63 else { return self.maxMicros }
        let (delay, overflow) = self.initialMicros.multipliedReportingOverflow(by: UInt64(1) << UInt64(shift))
        return overflow ? self.maxMicros : Swift.min(delay, self.maxMicros)
    }
}

/// What the supervisor does about a failed worker.
public enum RestartDecision: Sendable, Hashable {
    /// Start it again after `delayMicros`; this is restart number `attempt` within the period.
    case restart(delayMicros: UInt64, attempt: Int)
    /// `restarts` restarts happened within the period already: escalate (exit for a critical worker, stop and
    /// report otherwise).
    case giveUp(restarts: Int)
}

/// The failures of one worker, kept to apply a `RestartPolicy`. A value owned by the supervisor; time is passed in
/// (monotonic microseconds), so tests need no clock.
public struct RestartTracker: Sendable, Hashable {
    public private(set) var policy: RestartPolicy
    /// When each restart within the period was decided, oldest first.
    public private(set) var restarts: [UInt64] = []
    /// Restarts over the worker's life.
    public private(set) var totalRestarts = 0

    public init(policy: RestartPolicy) {
        self.policy = policy
    }

    /// A new policy (a reload) applies from the next failure; the history is kept.
    public mutating func update(policy: RestartPolicy) {
        self.policy = policy
    }

    /// Restarts within the period ending at `now`.
    public mutating func recentRestarts(now: UInt64) -> Int {
        self.forget(before: now)
        return self.restarts.count
    }

    /// Decides about a failure at `now`. `random` is a value in 0 … 1 (drawn by the caller; 0.5 means no jitter).
    public mutating func failed(now: UInt64, random: Double) -> RestartDecision {
        self.forget(before: now)
        guard self.restarts.count < self.policy.intensity else { return .giveUp(restarts: self.restarts.count) }
        self.restarts.append(now)
        self.totalRestarts += 1
        let attempt = self.restarts.count
        let base = Double(self.policy.baseDelay(attempt: attempt))
        let spread = (Swift.min(Swift.max(random, 0), 1) * 2 - 1) * self.policy.jitter
        let delay = Swift.max(0, (base * (1 + spread)).rounded())
        return .restart(delayMicros: UInt64(delay), attempt: attempt)
    }

    /// Forgets the restarts that are `periodMicros` or more before `now`.
    private mutating func forget(before now: UInt64) {
        let period = self.policy.periodMicros
        if let keep = self.restarts.firstIndex(where: { now < $0 || now - $0 < period }) {
            self.restarts.removeFirst(keep)
        } else {
            self.restarts.removeAll()
        }
    }
}

/// Where a supervised worker is in its life.
public enum WorkerPhase: String, Sendable, Hashable, Codable, CaseIterable {
    /// Being started, or waiting for a restart after a failure.
    case starting
    /// Started and beating.
    case running
    /// Started, but its heartbeat is older than the stall timeout: its queue is stuck.
    case stalled
    /// Waiting for its restart delay after a failure.
    case restarting
    /// Given up on (restart intensity exceeded) or stopped: a degraded daemon.
    case failed
    /// Stopped on purpose (shutdown).
    case stopped
}

/// One worker's state as the supervisor reports it (`STATUS=`, metrics, and later `/v1/health`).
public struct WorkerStatus: Sendable, Hashable, Codable {
    public var name: String
    public var criticality: WorkerCriticality
    public var phase: WorkerPhase
    /// Restarts over the process's life.
    public var restarts: Int
    /// Microseconds since the last heartbeat (0 when not running).
    public var heartbeatAgeMicros: UInt64
    /// Why it last failed or stalled.
    public var lastError: String?

    public init(
        name: String, criticality: WorkerCriticality, phase: WorkerPhase, restarts: Int = 0,
        heartbeatAgeMicros: UInt64 = 0, lastError: String? = nil
    ) {
        self.name = name
        self.criticality = criticality
        self.phase = phase
        self.restarts = restarts
        self.heartbeatAgeMicros = heartbeatAgeMicros
        self.lastError = lastError
    }

    /// Not doing its job now: stalled, failed, or waiting to restart.
    public var isDegraded: Bool { [.stalled, .failed, .restarting].contains(self.phase) }
}

/// The watchdog rule: `WATCHDOG=1` is sent only while no critical worker is stalled, failed or restarting.
public enum WatchdogGate {
    /// The critical workers that withhold the watchdog, by name; empty means "send it".
    public static func blockers(_ workers: [WorkerStatus]) -> [String] {
        workers.filter { $0.criticality == .critical && $0.phase == .stalled }.map(\.name)
    }

    /// Whether a heartbeat last seen at `lastBeat` is stale at `now` for a stall timeout of `timeoutMicros`.
    public static func isStale(lastBeat: UInt64, now: UInt64, timeoutMicros: UInt64) -> Bool {
        now > lastBeat && now - lastBeat > timeoutMicros
    }
}

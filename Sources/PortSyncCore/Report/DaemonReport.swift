/// The daemon's state at one moment, gathered by the telemetry worker from the port path, the supervisor, the
/// config worker and the analytics: the one source of `STATUS=` and of the metrics.
public struct DaemonReport: Sendable, Equatable, Codable {
    public enum Phase: String, Sendable, Codable {
        /// Before the first sync: waiting for Redis, dumping, copying CONFIG_DB.
        case starting
        /// The port path runs; READY=1 not sent yet.
        case syncing
        case ready
        case stopping
    }

    /// The outcome of the latest reload.
    public struct Reload: Sendable, Equatable, Codable {
        /// `config_last_reload_successful`: false while the file on disk is refused.
        public var successful = true
        /// When the running configuration was loaded, Unix seconds.
        public var lastSuccessUnixSeconds: Double = 0
        /// Why the file was refused (`file:line:col: message`).
        public var error: String?
        /// Keys changed by reloads that only take effect after a restart.
        public var pendingRestart: [String] = []

        public init(
            successful: Bool = true, lastSuccessUnixSeconds: Double = 0, error: String? = nil,
            pendingRestart: [String] = []
        ) {
            self.successful = successful
            self.lastSuccessUnixSeconds = lastSuccessUnixSeconds
            self.error = error
            self.pendingRestart = pendingRestart
        }
    }

    public var phase: Phase = .starting
    /// What start-up is doing, before the port path exists.
    public var startupStatus: String?
    /// `cold`, `warm` or `rejoin` (statement 31), once start-up has decided.
    public var startKind: String?
    public var portsSynced = 0
    /// Ports in CONFIG_DB's PORT table.
    public var portsConfigured = 0
    /// Interfaces brought down at a cold start and ignored since (statements 22, 28).
    public var portsIgnored = 0
    /// The configured ports by sync state (`synced`, `pending`, `awaiting_appl_db`, `ignored_old_interface`,
    /// `not_in_kernel`): why a configured port has no STATE_DB row.
    public var configuredPorts: [String: Int] = [:]
    /// Configured ports not created yet (PortInitDone waits for them).
    public var portsAwaited = 0
    public var eventsPerSecond = 0.0
    /// `connected`, `down (reason)`, …
    public var redis = "connecting"
    public var redisConnected = false
    /// A write has waited for Redis's answer longer than `redis.stall_threshold_ms` (and still does).
    public var redisStalled = false
    /// How long the oldest unanswered write has waited, in µs (0: none waits).
    public var redisOldestWriteMicros: UInt64 = 0
    /// Stalls so far.
    public var redisStalls = 0
    public var pipeline: PipelineSnapshot?
    public var adaptive: AdaptiveThresholds?
    public var workers: [WorkerStatus] = []
    public var watchdogWithheldBy: [String] = []
    public var reload = Reload()
    public var analytics = Analytics.Figures()
    public var lastError: String?

    public init() {}

    /// The workers not doing their job now.
    public var degradedWorkers: [WorkerStatus] { self.workers.filter(\.isDegraded) }

    /// The configured ports without a STATE_DB row, and why, e.g. `2 of 32 configured ports not in STATE_DB
    /// (1 not_in_kernel, 1 ignored_old_interface)`; nil when every configured port is synced or on its way.
    public var unsyncedSummary: String? {
        let missing = self.configuredPorts.filter { $0.key != PortSyncReason.synced.rawValue && $0.value > 0 }
            .filter { $0.key != PortSyncReason.pending.rawValue }
        let count = missing.values.reduce(0, +)
        guard count > 0 else { return nil }
        let reasons = missing.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        return "\(count) of \(self.portsConfigured) configured ports not in STATE_DB (\(reasons))"
    }

    /// systemd's `STATUS=`: short and current, e.g.
    /// `ready, 32 ports synced, 120 events/s, redis connected, msgs 4000 (0 malformed), sent 3990, handoff 0/2048
    /// p99 40µs, drops 0, redis p99 180µs`, then what is wrong, if anything: degraded workers, a refused config,
    /// the last error.
    public func statusLine() -> String {
        if self.phase == .starting, let startup = self.startupStatus { return startup }
        var parts = [
            self.phase.rawValue + (self.startKind.map { " (\($0) start)" } ?? ""),
            "\(self.portsSynced) ports synced",
            "\(Int(self.eventsPerSecond.rounded())) events/s",
            self.redisStalled
                ? "redis stalled (a write unanswered for \(self.redisOldestWriteMicros / 1000) ms)"
                : "redis \(self.redis)",
        ]
        if self.portsAwaited > 0 { parts.append("awaiting \(self.portsAwaited) ports") }
        if let unsynced = self.unsyncedSummary { parts.append(unsynced) }
        if !self.watchdogWithheldBy.isEmpty {
            parts.append("stalled: \(self.watchdogWithheldBy.joined(separator: ", ")), watchdog withheld")
        }
        let degraded = self.degradedWorkers
        if !degraded.isEmpty {
            parts.append("degraded: " + degraded.map { "\($0.name) \($0.phase.rawValue)" }.joined(separator: ", "))
        }
        if let pipeline = self.pipeline { parts.append(pipeline.statusSummary()) }
        if !self.reload.pendingRestart.isEmpty {
            parts.append("restart to apply \(self.reload.pendingRestart.joined(separator: " "))")
        }
        if let error = self.reload.error {
            parts.append("config refused, old kept: \(error)")
        } else if let error = self.lastError {
            parts.append("last error: \(error)")
        }
        return parts.joined(separator: ", ")
    }
}

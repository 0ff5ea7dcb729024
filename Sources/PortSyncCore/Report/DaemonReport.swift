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
    public var portsSynced = 0
    /// Configured ports not created yet (PortInitDone waits for them).
    public var portsAwaited = 0
    public var eventsPerSecond = 0.0
    /// `connected`, `down (reason)`, …
    public var redis = "connecting"
    public var redisConnected = false
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

    /// systemd's `STATUS=`: short and current, e.g.
    /// `ready, 32 ports synced, 120 events/s, redis connected, msgs 4000 (0 malformed), sent 3990, handoff 0/2048
    /// p99 40µs, drops 0, redis p99 180µs`, then what is wrong, if anything: degraded workers, a refused config,
    /// the last error.
    public func statusLine() -> String {
        if self.phase == .starting, let startup = self.startupStatus { return startup }
        var parts = [
            self.phase.rawValue,
            "\(self.portsSynced) ports synced",
            "\(Int(self.eventsPerSecond.rounded())) events/s",
            "redis \(self.redis)",
        ]
        if self.portsAwaited > 0 { parts.append("awaiting \(self.portsAwaited) ports") }
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

/// portsyncd's settings: an immutable, validated value decoded from the TOML file.
///
/// Every setting has a default, so a missing file means `Config()` (SONiC needs none, statement 1). The shipped
/// `etc/portsyncd.toml` documents each key with its default and unit; a test keeps the two equal.
public struct Config: Sendable, Hashable {
    public struct Redis: Sendable, Hashable {
        public init() {}

        /// SONiC's database map (socket, ids and separators).
        public var databaseConfig = SonicDatabaseConfig.defaultPath
        /// Overrides the unix socket of the database map's instance; empty means the map's.
        public var unixSocket = ""
        /// First delay before reconnecting to Redis, in milliseconds.
        public var reconnectInitialMs = 100
        /// Longest delay between reconnect attempts, in milliseconds.
        public var reconnectMaxMs = 5000
    }

    public struct Netlink: Sendable, Hashable {
        public init() {}

        /// The netlink receive buffer, in bytes (`SO_RCVBUFFORCE`, else `SO_RCVBUF`).
        public var receiveBufferBytes = 32 * 1024 * 1024
    }

    public struct Sonic: Sendable, Hashable {
        public init() {}

        /// `false` (SONiC): `Ethernet*` interfaces present at a cold start are old, brought down and ignored.
        /// `true`: they are adopted and synced like new ones (for use outside SONiC).
        public var adoptExistingInterfaces = false
    }

    public struct Daemon: Sendable, Hashable {
        public init() {}

        /// How long a stop may take to drain the hand-off and the Redis writer, in milliseconds.
        public var gracefulShutdownTimeoutMs = 5000
        /// How often `STATUS=` is refreshed, in milliseconds.
        public var statusIntervalMs = 1000
        /// How often the file is checked for changes (mtime and content) besides inotify, in milliseconds; 0: never.
        public var configCheckIntervalMs = 5000
    }

    public struct Pipeline: Sendable, Hashable {
        public init() {}

        /// Capacity of the hand-off between the pipeline and the Redis writer, in events.
        public var streamBufferCapacity = 2048
        /// What the hand-off does when full: block, drop_oldest, drop_newest, coalesce or adaptive.
        public var dropPolicy = "coalesce"
        /// Adaptive policy: block while the oldest queued event has waited less than this, in µs.
        public var adaptiveBlockBelowUs = 100
        /// Adaptive policy: shed (low priority first; high is coalesced, never dropped) above this wait, in µs.
        public var adaptiveShedAboveUs = 1000
        /// Port writes in flight to Redis at most (per sender when `batch_send_mode` is async); past it, events
        /// wait in the hand-off.
        public var writerMaxInFlight = 1024
        /// A port write Redis answers with an error is sent again this many times (with the port's latest state).
        public var sendMaxRetries = 3
        /// Delay before such a retry, in microseconds.
        public var sendRetryDelayUs = 100
        /// How the hand-off is drained into Redis: sync (one sender) or async (one sender per priority), see
        /// `BatchSendMode`.
        public var batchSendMode = BatchSendMode.sync.rawValue
        /// Stage events kept in the ring (trace look-ups, latest-N queries).
        public var stageEventCapacity = 10_000
        /// Flap guard: more than this many admin/oper changes of one port within `flap_window_ms` flags it.
        public var flapRateLimit = 10
        /// Flap guard window, in milliseconds.
        public var flapWindowMs = 1000
        /// Adaptive policy: let the threshold worker move both thresholds with the measured Redis latency (within
        /// a quarter and four times the configured values).
        public var adaptiveAutotune = true
    }

    public struct Supervisor: Sendable, Hashable {
        public init() {}

        /// Delay before the first restart of a failed worker, in milliseconds; it doubles with each restart.
        public var restartInitialMs = 100
        /// Longest delay before a restart, in milliseconds.
        public var restartMaxMs = 30_000
        /// Each delay is spread by up to ± this percentage of itself.
        public var restartJitterPercent = 10
        /// At most this many restarts of one worker within `restart_period_ms`; one more escalates (a critical
        /// worker ends the process with status 1, another is stopped and the daemon runs degraded).
        public var restartIntensity = 5
        /// The window of `restart_intensity`, in milliseconds.
        public var restartPeriodMs = 60_000
        /// How often each worker's queue proves it is alive, in milliseconds.
        public var heartbeatIntervalMs = 1000
        /// A worker without a heartbeat for this long is stalled, in milliseconds. A stalled critical worker
        /// withholds `WATCHDOG=1`; keep it below `WatchdogSec=` minus half of it.
        public var stallTimeoutMs = 4000
    }

    public struct Telemetry: Sendable, Hashable {
        public init() {}

        /// A file rewritten (atomically) with the metrics in Prometheus text format at every status refresh, for
        /// node_exporter's textfile collector; empty: none.
        public var metricsFile = ""
        /// Half-life of the moving averages (event rate, drop rate, hand-off wait, Redis latency), milliseconds.
        public var analyticsHalfLifeMs = 10_000
        /// How often the analytics sample the port path, in milliseconds.
        public var analyticsIntervalMs = 1000
    }

    public struct HTTP: Sendable, Hashable {
        public init() {}

        /// Serve the HTTP API (event streams, health, ports, stats, traces, metrics, the dashboard).
        public var enabled = true
        /// The address to listen on; the loopback by default, so nothing is exposed off the box.
        public var address = "127.0.0.1"
        /// The TCP port; 0 picks a free one (logged).
        public var port = 9470
        /// When set, every request but `/v1/health*` needs `Authorization: Bearer <token>` (or `?access_token=`).
        public var bearerToken = ""
        /// Stream clients (SSE and WebSocket together) at most; more get 503.
        public var maxClients = 256
        /// A comment line sent on idle SSE streams, in milliseconds.
        public var sseHeartbeatMs = 15_000
        /// The reconnect delay SSE clients are told (`retry:`), in milliseconds.
        public var sseRetryMs = 2000
        /// WebSocket ping interval; a peer that does not answer within it is closed, in milliseconds.
        public var wsPingMs = 15_000
        /// Offer the WebSocket stream; false answers its upgrade with 404 (where a proxy cannot carry it,
        /// clients fall back to SSE).
        public var websocket = true
        /// The kernel send buffer of each stream (SSE and WebSocket), in bytes; 0: the kernel's automatic sizing (up to
        /// `net.ipv4.tcp_wmem`, megabytes per client). Bounded, a client that stops reading fills it and then its
        /// own event buffer soon, and is closed as slow, instead of parking megabytes in the kernel.
        public var sendBufferBytes = 65536
        /// The nice value of the HTTP server's threads (0 … 19), which write the event stream to its clients:
        /// above 0, the port path's threads come first when the CPUs are busy, so that a thousand clients being
        /// written to do not hold a port's state back on its way to Redis.
        public var threadNice = 10
    }

    public struct Events: Sendable, Hashable {
        public init() {}

        /// Intake buffer of high-priority events (port state changes, control events).
        public var highCapacity = 1000
        /// Intake buffer of medium-priority events (reloads, workers, health).
        public var mediumCapacity = 500
        /// Intake buffer of low-priority events (counter bars).
        public var lowCapacity = 100
        /// Events kept for resuming streams by `Last-Event-ID`.
        public var replayCapacity = 10_000
        /// Events buffered for one stream client before low priority is dropped and then the client is closed.
        public var clientBufferCapacity = 1000
        /// How long the stream's fan-out may step aside while the port path is busy (a kernel message being
        /// processed, or a Redis write awaiting its reply) before it goes on anyway, in milliseconds; 0: never.
        public var fanoutYieldMs = 5
        /// How long after the port path's Redis writes are answered the fan-out still waits, in microseconds: Redis
        /// is telling its subscribers (SONiC's daemons) of the change, and they come first.
        public var fanoutQuietUs = 1000
        /// A batch for at most this many clients (of one filter, on one event loop) goes out without stepping aside:
        /// a small fan-out costs the port path nothing worth waiting for, and its clients get their events at once.
        public var fanoutYieldAboveClients = 32
    }

    public struct Channels: Sendable, Hashable {
        public init() {}

        /// Link-event damping: off, monitor (computed and reported only) or enforce (a damped port's link events
        /// are held from the event stream until it is released; the SONiC Redis writes are never held).
        public var dampingMode = "monitor"
        /// Penalty added by each link-down transition.
        public var flapPenalty = 1000
        /// Damping starts above this penalty.
        public var suppressThreshold = 1600
        /// Damping ends below this penalty.
        public var reuseThreshold = 1200
        /// The penalty halves in this time, in milliseconds.
        public var decayHalfLifeMs = 15_000
        /// No port stays damped longer than this after its last flap, in milliseconds.
        public var maxSuppressMs = 30_000
        /// Lengths of the counter bars, in milliseconds: each port has bars of each length.
        public var barIntervalsMs = [10_000]
        /// Closed bars kept per port.
        public var barHistory = 60
        /// How often every port's counters are sampled (one RTM_GETLINK dump), in milliseconds; 0: only from
        /// link messages.
        public var statsIntervalMs = 1000
        /// Inputs waiting for each channel shard at most; past it they are dropped and counted.
        public var intakeCapacity = 8192
        /// Channel shards, each on its own queue, a port always on the same one (a hash of its name).
        public var workers = 2
    }

    public struct Alerts: Sendable, Hashable {
        public init() {}

        /// `port_flapping`: raised at this many link-down transitions within `flap_window_ms`.
        public var flapRaise = 10
        /// … and cleared below this many, after `flap_cooldown_ms` of it.
        public var flapClear = 5
        public var flapWindowMs = 10_000
        public var flapCooldownMs = 60_000
        public var flapSeverity = "major"
        /// `port_down`: raised when a port has been oper down this long, in milliseconds; 0: no such alert.
        public var portDownAfterMs = 0
        public var portDownSeverity = "warning"
        /// Alert events per rule per second per channel worker at most; the rest are counted, not published.
        public var floodLimit = 100
        /// The operator's own rules (`[[alerts.rules]]`), after the two built-in ones.
        public var rules: [AlertRule] = []
    }

    public struct Log: Sendable, Hashable {
        public init() {}

        /// The least severe level logged.
        public var level = "notice"
    }

    public var redis = Redis()
    public var netlink = Netlink()
    public var sonic = Sonic()
    public var daemon = Daemon()
    public var pipeline = Pipeline()
    public var supervisor = Supervisor()
    public var telemetry = Telemetry()
    public var http = HTTP()
    public var events = Events()
    public var channels = Channels()
    public var alerts = Alerts()
    public var log = Log()

    public init() {}

    /// The keys a reload applies to the running daemon (`section.key`); a change to any other key is reported as
    /// needing a restart. The shipped file marks each key "(applied on reload)" or "(restart to apply)" to match.
    public static let appliedOnReload: Set<String> = [
        "daemon.graceful_shutdown_timeout_ms", "daemon.status_interval_ms", "daemon.config_check_interval_ms",
        "pipeline.adaptive_block_below_us", "pipeline.adaptive_shed_above_us", "pipeline.adaptive_autotune",
        "pipeline.writer_max_in_flight", "pipeline.send_max_retries", "pipeline.send_retry_delay_us",
        "supervisor.restart_initial_ms", "supervisor.restart_max_ms", "supervisor.restart_jitter_percent",
        "supervisor.restart_intensity", "supervisor.restart_period_ms", "supervisor.heartbeat_interval_ms",
        "supervisor.stall_timeout_ms", "telemetry.metrics_file", "telemetry.analytics_half_life_ms",
        "telemetry.analytics_interval_ms", "log.level", "channels.damping_mode", "channels.flap_penalty",
        "channels.suppress_threshold", "channels.reuse_threshold", "channels.decay_half_life_ms",
        "channels.max_suppress_ms", "alerts.flap_raise", "alerts.flap_clear", "alerts.flap_cooldown_ms",
        "alerts.flap_severity", "alerts.port_down_after_ms", "alerts.port_down_severity", "alerts.flap_window_ms",
        "alerts.rules", "alerts.flood_limit", "channels.workers",
    ]

    /// The keys whose values differ between `self` and `other`, as `section.key`, in schema order.
    public func changedKeys(from other: Config) -> [String] {
        Config.schema.filter { $0.tomlValue(in: self) != $0.tomlValue(in: other) }.map { "\($0.section).\($0.key)" }
    }

    /// The hand-off policies `pipeline.drop_policy` accepts.
    public static let dropPolicies = ["block", "drop_oldest", "drop_newest", "coalesce", "adaptive"]

    /// The damping modes `channels.damping_mode` accepts.
    public static let dampingModes = ["off", "monitor", "enforce"]
    /// The alert severities.
    public static let severities = ["info", "warning", "major", "critical"]
    /// The built-in alert rules' names, which `[[alerts.rules]]` may not reuse.
    public static let builtInAlertRules = ["port_flapping", "port_down"]
    /// The drains `pipeline.batch_send_mode` accepts.
    public static let batchSendModes = BatchSendMode.allCases.map(\.rawValue)

    /// The log levels `log.level` accepts, least severe first.
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
}

/// A configuration error that points into the file.
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// An error about the file as a whole, such as one that cannot be read: line and column are 0.
    public init(file: String, message: String) {
        self.init(file: file, line: 0, column: 0, message: message)
    }

    /// `file:line:col: message`, the way compilers say it; `file: message` for the file as a whole.
    public var description: String {
        self.line > 0
            ? "\(self.file):\(self.line):\(self.column): \(self.message)" : "\(self.file): \(self.message)"
    }
}

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

        /// How long a stop may take to flush pending Redis writes, in milliseconds.
        public var shutdownTimeoutMs = 5000
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
        /// Redis commands in flight at most; past it, events wait in the hand-off.
        public var writerMaxInFlight = 1024
        /// A port write Redis answers with an error is sent again this many times (with the port's latest state).
        public var sendMaxRetries = 3
        /// Delay before such a retry, in microseconds.
        public var sendRetryDelayUs = 100
        /// Stage events kept in the ring (trace look-ups, latest-N queries).
        public var stageEventCapacity = 10_000
        /// Flap guard: more than this many admin/oper changes of one port within `flap_window_ms` flags it.
        public var flapRateLimit = 10
        /// Flap guard window, in milliseconds.
        public var flapWindowMs = 1000
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
    public var log = Log()

    public init() {}

    /// The hand-off policies `pipeline.drop_policy` accepts.
    public static let dropPolicies = ["block", "drop_oldest", "drop_newest", "coalesce", "adaptive"]

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

    /// `file:line:col: message`, the way compilers say it.
    public var description: String { "\(self.file):\(self.line):\(self.column): \(self.message)" }
}

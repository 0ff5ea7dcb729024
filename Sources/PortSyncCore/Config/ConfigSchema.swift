/// The table of every configuration key: where it lives, its type, its range and where it goes in `Config`.
///
/// The decoder walks this table, so a key cannot be accepted without being range-checked, and the shipped file
/// test walks it too, so a key cannot be added without being documented.
public struct ConfigSetting {
    public enum Kind {
        case integer(ClosedRange<Int>, WritableKeyPath<Config, Int>)
        case boolean(WritableKeyPath<Config, Bool>)
        case path(WritableKeyPath<Config, String>, allowEmpty: Bool)
        case choice([String], WritableKeyPath<Config, String>)
    }

    public var section: String
    public var key: String
    public var kind: Kind

    public var typeName: String {
        switch self.kind {
        case .integer: "an integer"
        case .boolean: "a boolean"
        case .path: "a string (an absolute path)"
        case .choice: "a string"
        }
    }

    /// The setting's value in `config`, as TOML would spell it.
    public func tomlValue(in config: Config) -> String {
        switch self.kind {
        case .integer(_, let path): String(config[keyPath: path])
        case .boolean(let path): String(config[keyPath: path])
        case .path(let path, _): "\"" + config[keyPath: path] + "\""
        case .choice(_, let path): "\"" + config[keyPath: path] + "\""
        }
    }
}

extension Config {
    /// Every key of the file, by section.
    public static var schema: [ConfigSetting] {
        [
            .init(section: "redis", key: "database_config", kind: .path(\.redis.databaseConfig, allowEmpty: false)),
            .init(section: "redis", key: "unix_socket", kind: .path(\.redis.unixSocket, allowEmpty: true)),
            .init(
                section: "redis", key: "reconnect_initial_ms", kind: .integer(1...60_000, \.redis.reconnectInitialMs)),
            .init(section: "redis", key: "reconnect_max_ms", kind: .integer(1...600_000, \.redis.reconnectMaxMs)),
            .init(
                section: "netlink", key: "receive_buffer_bytes",
                kind: .integer(4096...1_073_741_824, \.netlink.receiveBufferBytes)),
            .init(section: "sonic", key: "adopt_existing_interfaces", kind: .boolean(\.sonic.adoptExistingInterfaces)),
            .init(
                section: "daemon", key: "graceful_shutdown_timeout_ms",
                kind: .integer(0...600_000, \.daemon.gracefulShutdownTimeoutMs)),
            .init(
                section: "daemon", key: "status_interval_ms", kind: .integer(100...3_600_000, \.daemon.statusIntervalMs)
            ),
            .init(
                section: "daemon", key: "config_check_interval_ms",
                kind: .integer(0...3_600_000, \.daemon.configCheckIntervalMs)
            ),
            .init(
                section: "pipeline", key: "stream_buffer_capacity",
                kind: .integer(1...1_000_000, \.pipeline.streamBufferCapacity)),
            .init(section: "pipeline", key: "drop_policy", kind: .choice(Config.dropPolicies, \.pipeline.dropPolicy)),
            .init(
                section: "pipeline", key: "adaptive_block_below_us",
                kind: .integer(1...60_000_000, \.pipeline.adaptiveBlockBelowUs)),
            .init(
                section: "pipeline", key: "adaptive_shed_above_us",
                kind: .integer(1...60_000_000, \.pipeline.adaptiveShedAboveUs)),
            .init(
                section: "pipeline", key: "writer_max_in_flight",
                kind: .integer(1...1_000_000, \.pipeline.writerMaxInFlight)),
            .init(section: "pipeline", key: "send_max_retries", kind: .integer(0...100, \.pipeline.sendMaxRetries)),
            .init(
                section: "pipeline", key: "send_retry_delay_us",
                kind: .integer(1...60_000_000, \.pipeline.sendRetryDelayUs)),
            .init(
                section: "pipeline", key: "batch_send_mode",
                kind: .choice(Config.batchSendModes, \.pipeline.batchSendMode)),
            .init(
                section: "pipeline", key: "stage_event_capacity",
                kind: .integer(16...10_000_000, \.pipeline.stageEventCapacity)),
            .init(section: "pipeline", key: "flap_rate_limit", kind: .integer(1...1_000_000, \.pipeline.flapRateLimit)),
            .init(section: "pipeline", key: "flap_window_ms", kind: .integer(1...3_600_000, \.pipeline.flapWindowMs)),
            .init(section: "pipeline", key: "adaptive_autotune", kind: .boolean(\.pipeline.adaptiveAutotune)),
            .init(
                section: "supervisor", key: "restart_initial_ms",
                kind: .integer(1...600_000, \.supervisor.restartInitialMs)),
            .init(
                section: "supervisor", key: "restart_max_ms", kind: .integer(1...3_600_000, \.supervisor.restartMaxMs)),
            .init(
                section: "supervisor", key: "restart_jitter_percent",
                kind: .integer(0...100, \.supervisor.restartJitterPercent)),
            .init(
                section: "supervisor", key: "restart_intensity", kind: .integer(0...1000, \.supervisor.restartIntensity)
            ),
            .init(
                section: "supervisor", key: "restart_period_ms",
                kind: .integer(1000...86_400_000, \.supervisor.restartPeriodMs)),
            .init(
                section: "supervisor", key: "heartbeat_interval_ms",
                kind: .integer(10...60_000, \.supervisor.heartbeatIntervalMs)),
            .init(
                section: "supervisor", key: "stall_timeout_ms",
                kind: .integer(50...600_000, \.supervisor.stallTimeoutMs)
            ),
            .init(section: "telemetry", key: "metrics_file", kind: .path(\.telemetry.metricsFile, allowEmpty: true)),
            .init(
                section: "telemetry", key: "analytics_half_life_ms",
                kind: .integer(100...3_600_000, \.telemetry.analyticsHalfLifeMs)),
            .init(
                section: "telemetry", key: "analytics_interval_ms",
                kind: .integer(100...3_600_000, \.telemetry.analyticsIntervalMs)),
            .init(section: "log", key: "level", kind: .choice(Config.logLevels, \.log.level)),
        ]
    }
}

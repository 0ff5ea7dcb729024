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
        /// A numeric IPv4 or IPv6 address (no host names: nothing is resolved at start-up).
        case address(WritableKeyPath<Config, String>)
        /// A secret: printable ASCII, no spaces.
        case token(WritableKeyPath<Config, String>)
        /// A list of integers, each in the range, `count` of them, kept sorted without duplicates.
        case integerList(ClosedRange<Int>, count: ClosedRange<Int>, WritableKeyPath<Config, [Int]>)
        /// Alert rules: an array of tables (`[[alerts.rules]]`), each checked by `AlertRuleDecoder`.
        case alertRules(WritableKeyPath<Config, [AlertRule]>)
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
        case .address: "a string (an IP address)"
        case .token: "a string"
        case .integerList: "an array of integers"
        case .alertRules: "an array of tables"
        }
    }

    /// The setting's value in `config`, as TOML would spell it.
    public func tomlValue(in config: Config) -> String {
        switch self.kind {
        case .integer(_, let path): String(config[keyPath: path])
        case .boolean(let path): String(config[keyPath: path])
        case .path(let path, _): "\"" + config[keyPath: path] + "\""
        case .choice(_, let path): "\"" + config[keyPath: path] + "\""
        case .address(let path): "\"" + config[keyPath: path] + "\""
        case .token(let path): "\"" + config[keyPath: path] + "\""
        case .integerList(_, _, let path): "[" + config[keyPath: path].map(String.init).joined(separator: ", ") + "]"
        case .alertRules(let path): "[" + config[keyPath: path].map(AlertRuleDecoder.toml).joined(separator: ", ") + "]"
        }
    }

    /// Whether `text` is a numeric IPv4 (dotted quad) or IPv6 address.
    public static func isIPAddress(_ text: String) -> Bool {
        let quads = text.split(separator: ".", omittingEmptySubsequences: false)
        if quads.count == 4 {
            return quads.allSatisfy { quad in
                !quad.isEmpty && quad.count <= 3 && quad.allSatisfy(\.isASCII) && (UInt8(quad) != nil)
            }
        }
        guard text.contains(":"), text.count <= 45 else { return false }
        let groups = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (3...8).contains(groups.count), text.ranges(of: "::").count <= 1 else { return false }
        return groups.allSatisfy { group in group.count <= 4 && group.allSatisfy(\.isHexDigit) }
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
                section: "redis", key: "stall_threshold_ms", kind: .integer(10...600_000, \.redis.stallThresholdMs)),
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
            .init(section: "http", key: "enabled", kind: .boolean(\.http.enabled)),
            .init(section: "http", key: "address", kind: .address(\.http.address)),
            .init(section: "http", key: "port", kind: .integer(0...65535, \.http.port)),
            .init(section: "http", key: "bearer_token", kind: .token(\.http.bearerToken)),
            .init(
                section: "http", key: "bearer_token_file", kind: .path(\.http.bearerTokenFile, allowEmpty: true)),
            .init(section: "http", key: "max_clients", kind: .integer(1...100_000, \.http.maxClients)),
            .init(section: "http", key: "max_connections", kind: .integer(1...100_000, \.http.maxConnections)),
            .init(
                section: "http", key: "request_head_timeout_ms",
                kind: .integer(100...600_000, \.http.requestHeadTimeoutMs)),
            .init(section: "http", key: "idle_timeout_ms", kind: .integer(100...3_600_000, \.http.idleTimeoutMs)),
            .init(section: "http", key: "sse_heartbeat_ms", kind: .integer(100...3_600_000, \.http.sseHeartbeatMs)),
            .init(section: "http", key: "sse_retry_ms", kind: .integer(0...3_600_000, \.http.sseRetryMs)),
            .init(section: "http", key: "ws_ping_ms", kind: .integer(100...3_600_000, \.http.wsPingMs)),
            .init(section: "http", key: "websocket", kind: .boolean(\.http.websocket)),
            .init(
                section: "http", key: "send_buffer_bytes", kind: .integer(0...16_777_216, \.http.sendBufferBytes)),
            .init(section: "http", key: "thread_nice", kind: .integer(0...19, \.http.threadNice)),
            .init(section: "events", key: "high_capacity", kind: .integer(1...1_000_000, \.events.highCapacity)),
            .init(section: "events", key: "medium_capacity", kind: .integer(1...1_000_000, \.events.mediumCapacity)),
            .init(section: "events", key: "low_capacity", kind: .integer(1...1_000_000, \.events.lowCapacity)),
            .init(
                section: "events", key: "replay_capacity", kind: .integer(1...10_000_000, \.events.replayCapacity)),
            .init(
                section: "events", key: "client_buffer_capacity",
                kind: .integer(1...1_000_000, \.events.clientBufferCapacity)),
            .init(section: "events", key: "fanout_yield_ms", kind: .integer(0...1000, \.events.fanoutYieldMs)),
            .init(section: "events", key: "fanout_quiet_us", kind: .integer(0...100_000, \.events.fanoutQuietUs)),
            .init(
                section: "events", key: "fanout_yield_above_clients",
                kind: .integer(0...1_000_000, \.events.fanoutYieldAboveClients)),
            .init(section: "channels", key: "damping_mode", kind: .choice(Config.dampingModes, \.channels.dampingMode)),
            .init(section: "channels", key: "flap_penalty", kind: .integer(1...1_000_000, \.channels.flapPenalty)),
            .init(
                section: "channels", key: "suppress_threshold",
                kind: .integer(1...100_000_000, \.channels.suppressThreshold)),
            .init(
                section: "channels", key: "reuse_threshold", kind: .integer(1...100_000_000, \.channels.reuseThreshold)),
            .init(
                section: "channels", key: "decay_half_life_ms",
                kind: .integer(1000...3_600_000, \.channels.decayHalfLifeMs)),
            .init(
                section: "channels", key: "max_suppress_ms", kind: .integer(1000...86_400_000, \.channels.maxSuppressMs)
            ),
            .init(
                section: "channels", key: "bar_intervals_ms",
                kind: .integerList(1000...86_400_000, count: 1...8, \.channels.barIntervalsMs)),
            .init(section: "channels", key: "bar_history", kind: .integer(1...100_000, \.channels.barHistory)),
            .init(
                section: "channels", key: "stats_interval_ms", kind: .integer(0...3_600_000, \.channels.statsIntervalMs)
            ),
            .init(
                section: "channels", key: "intake_capacity", kind: .integer(16...10_000_000, \.channels.intakeCapacity)),
            .init(section: "channels", key: "workers", kind: .integer(1...64, \.channels.workers)),
            .init(section: "alerts", key: "flap_raise", kind: .integer(1...1_000_000, \.alerts.flapRaise)),
            .init(section: "alerts", key: "flap_clear", kind: .integer(0...1_000_000, \.alerts.flapClear)),
            .init(section: "alerts", key: "flap_window_ms", kind: .integer(1000...86_400_000, \.alerts.flapWindowMs)),
            .init(section: "alerts", key: "flap_cooldown_ms", kind: .integer(0...86_400_000, \.alerts.flapCooldownMs)),
            .init(section: "alerts", key: "flap_severity", kind: .choice(Config.severities, \.alerts.flapSeverity)),
            .init(
                section: "alerts", key: "port_down_after_ms", kind: .integer(0...86_400_000, \.alerts.portDownAfterMs)),
            .init(
                section: "alerts", key: "port_down_severity",
                kind: .choice(Config.severities, \.alerts.portDownSeverity)),
            .init(section: "alerts", key: "flood_limit", kind: .integer(1...1_000_000, \.alerts.floodLimit)),
            .init(section: "alerts", key: "rules", kind: .alertRules(\.alerts.rules)),
            .init(section: "log", key: "level", kind: .choice(Config.logLevels, \.log.level)),
        ]
    }
}

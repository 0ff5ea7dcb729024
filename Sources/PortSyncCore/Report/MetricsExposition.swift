/// The metrics in Prometheus's text exposition format (version 0.0.4), named the node_exporter way
/// (`portsyncd_…`, base units, `_total` for counters).
///
/// Labels come from bounded sets only (message types, priorities, stage reasons, worker names), never from raw
/// input, so a hostile interface name cannot create series.
public struct MetricsExposition {
    private var lines: [String] = []

    private init() {}

    /// Every metric of `report`.
    public static func text(_ report: DaemonReport) -> String {
        var out = MetricsExposition()
        out.gauge("portsyncd_ready", "1 once the start-up sync is done (READY=1 sent).", report.phase == .ready ? 1 : 0)
        out.gauge("portsyncd_ports_synced", "Ports whose state is in STATE_DB.", Double(report.portsSynced))
        out.gauge(
            "portsyncd_ports_awaited", "Configured ports the kernel has not created yet.", Double(report.portsAwaited))
        out.gauge("portsyncd_redis_connected", "1 while the Redis writer is connected.", report.redisConnected ? 1 : 0)
        out.gauge(
            "portsyncd_redis_stalled", "1 while a write has waited for Redis longer than redis.stall_threshold_ms.",
            report.redisStalled ? 1 : 0)
        out.gauge(
            "portsyncd_redis_oldest_write_age_seconds", "How long the oldest unanswered Redis write has waited.",
            Double(report.redisOldestWriteMicros) / 1e6)
        out.counter(
            "portsyncd_redis_stalls_total", "Times a write waited for Redis longer than redis.stall_threshold_ms.",
            UInt64(max(0, report.redisStalls)))
        out.startAndPorts(report)
        out.gauge(
            "portsyncd_config_last_reload_successful", "0 while the configuration file on disk is refused.",
            report.reload.successful ? 1 : 0)
        out.gauge(
            "portsyncd_config_last_reload_success_timestamp_seconds",
            "When the running configuration was loaded, Unix time.", report.reload.lastSuccessUnixSeconds)
        out.gauge(
            "portsyncd_config_restart_pending_keys", "Changed settings that take effect only after a restart.",
            Double(report.reload.pendingRestart.count))
        out.gauge(
            "portsyncd_watchdog_withheld", "1 while a stalled critical worker withholds WATCHDOG=1.",
            report.watchdogWithheldBy.isEmpty ? 0 : 1)
        out.workers(report.workers)
        if let pipeline = report.pipeline { out.pipeline(pipeline) }
        if let adaptive = report.adaptive {
            out.gauge(
                "portsyncd_handoff_adaptive_block_below_seconds", "Adaptive hand-off: wait under which it blocks.",
                Double(adaptive.blockBelowMicros) / 1e6)
            out.gauge(
                "portsyncd_handoff_adaptive_shed_above_seconds", "Adaptive hand-off: wait over which it sheds.",
                Double(adaptive.shedAboveMicros) / 1e6)
        }
        out.analytics(report.analytics)
        return out.lines.joined(separator: "\n") + "\n"
    }

    /// The kind of this start and the configured ports by sync state: `portsyncd_configured_ports{sync_state!=
    /// "synced"} > 0` for a while is the alert for a port SONiC's daemons wait for.
    private mutating func startAndPorts(_ report: DaemonReport) {
        self.header(
            "portsyncd_start_kind", "1 for the kind of this process's start (cold, warm, rejoin), 0 for the others.",
            "gauge")
        for kind in StartKind.allNames {
            self.sample("portsyncd_start_kind", ["kind": kind], report.startKind == kind ? 1 : 0)
        }
        self.gauge("portsyncd_ports_configured", "Ports in CONFIG_DB's PORT table.", Double(report.portsConfigured))
        self.gauge(
            "portsyncd_ports_ignored", "Interfaces brought down at a cold start and ignored since (old interfaces).",
            Double(report.portsIgnored))
        self.header(
            "portsyncd_configured_ports", "Configured ports by where their STATE_DB row stands (and why not).",
            "gauge")
        for reason in PortSyncReason.allCases {
            self.sample(
                "portsyncd_configured_ports", ["sync_state": reason.rawValue],
                Double(report.configuredPorts[reason.rawValue] ?? 0))
        }
    }

    private mutating func workers(_ workers: [WorkerStatus]) {
        guard !workers.isEmpty else { return }
        self.header("portsyncd_worker_up", "1 while the supervised worker runs and beats.", "gauge")
        for worker in workers {
            self.sample(
                "portsyncd_worker_up", ["worker": worker.name, "criticality": worker.criticality.rawValue],
                worker.phase == .running ? 1 : 0)
        }
        self.header("portsyncd_worker_restarts_total", "Restarts of the supervised worker.", "counter")
        for worker in workers {
            self.sample("portsyncd_worker_restarts_total", ["worker": worker.name], Double(worker.restarts))
        }
        self.header("portsyncd_worker_heartbeat_age_seconds", "Time since the worker's queue last beat.", "gauge")
        for worker in workers {
            self.sample(
                "portsyncd_worker_heartbeat_age_seconds", ["worker": worker.name],
                Double(worker.heartbeatAgeMicros) / 1e6)
        }
    }

    private mutating func pipeline(_ snapshot: PipelineSnapshot) {
        self.header("portsyncd_netlink_messages_total", "Kernel link messages received, by type.", "counter")
        let messages = snapshot.messages
        for (type, count) in [
            ("newlink", messages.newlink), ("dellink", messages.dellink), ("other", messages.other),
            ("malformed", messages.malformedTotal),
        ] {
            self.sample("portsyncd_netlink_messages_total", ["type": type], Double(count))
        }
        self.counter("portsyncd_netlink_datagrams_total", "Netlink datagrams received.", messages.datagrams)
        self.counter("portsyncd_netlink_bytes_total", "Netlink bytes received.", messages.bytes)
        self.counter(
            "portsyncd_handoff_events_total", "Port updates handed to the Redis writer.", snapshot.candidatesSent)
        self.gauge("portsyncd_handoff_depth", "Port updates waiting in the hand-off.", Double(snapshot.handoff.depth))
        self.gauge(
            "portsyncd_handoff_capacity", "Capacity of the hand-off (stream_buffer_capacity).",
            Double(snapshot.handoff.capacity))
        self.counter(
            "portsyncd_handoff_backpressure_events_total", "Times the hand-off was full or slow.",
            snapshot.handoff.backpressureEvents)
        self.counter(
            "portsyncd_handoff_coalesced_total", "Port updates merged into a later state of the same port.",
            snapshot.handoff.coalesced)
        self.counter("portsyncd_handoff_retries_total", "Redis writes sent again.", snapshot.handoff.retries)
        self.header("portsyncd_handoff_dropped_total", "Port updates dropped, by priority and reason.", "counter")
        for priority in ["high", "medium", "low"] {
            let reasons = snapshot.handoff.dropped[priority] ?? [:]
            if reasons.isEmpty {
                self.sample("portsyncd_handoff_dropped_total", ["priority": priority, "reason": "none"], 0)
            }
            for (reason, count) in reasons.sorted(by: { $0.key < $1.key }) {
                self.sample("portsyncd_handoff_dropped_total", ["priority": priority, "reason": reason], Double(count))
            }
        }
        self.histogram(
            "portsyncd_handoff_wait_seconds", "Time port updates waited in the hand-off.", snapshot.handoff.wait)
        let writer = snapshot.writer
        self.counter("portsyncd_redis_state_writes_total", "STATE_DB port writes acknowledged.", writer.writes)
        self.counter("portsyncd_redis_state_deletes_total", "STATE_DB port deletes acknowledged.", writer.deletes)
        self.counter("portsyncd_redis_errors_total", "Redis commands answered with an error.", writer.errors)
        self.counter("portsyncd_redis_reconnects_total", "Redis connections re-established.", writer.reconnects)
        self.gauge("portsyncd_redis_in_flight", "Redis commands sent and not answered yet.", Double(writer.inFlight))
        self.histogram("portsyncd_redis_write_latency_seconds", "Redis command round trips.", writer.latency)
    }

    private mutating func analytics(_ figures: Analytics.Figures) {
        let values: [(String, String, Double?)] = [
            ("portsyncd_events_per_second_ewma", "Moving average of port updates per second.", figures.eventRate),
            ("portsyncd_drops_per_second_ewma", "Moving average of hand-off drops per second.", figures.dropRate),
            (
                "portsyncd_handoff_wait_p99_ewma_seconds", "Moving average of the hand-off wait's p99.",
                figures.handoffWaitP99.map { $0 / 1e6 }
            ),
            (
                "portsyncd_redis_latency_p99_ewma_seconds", "Moving average of the Redis round trip's p99.",
                figures.writerLatencyP99.map { $0 / 1e6 }
            ),
        ]
        for (name, help, value) in values {
            if let value { self.gauge(name, help, value) }
        }
    }

    // MARK: Format

    private mutating func header(_ name: String, _ help: String, _ type: String) {
        self.lines.append("# HELP \(name) \(help)")
        self.lines.append("# TYPE \(name) \(type)")
    }

    private mutating func sample(_ name: String, _ labels: [String: String] = [:], _ value: Double) {
        let rendered =
            labels.isEmpty
            ? ""
            : "{"
                + labels.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\"\(Self.escape($0.value))\"" }
                .joined(separator: ",") + "}"
        self.lines.append("\(name)\(rendered) \(Self.number(value))")
    }

    private mutating func gauge(_ name: String, _ help: String, _ value: Double) {
        self.header(name, help, "gauge")
        self.sample(name, [:], value)
    }

    private mutating func counter(_ name: String, _ help: String, _ value: UInt64) {
        self.header(name, help, "counter")
        self.sample(name, [:], Double(value))
    }

    /// A histogram from the summary's exact buckets: ≤ 10 µs, ≤ 100 µs, ≤ 1 ms (the summary counts "under", which
    /// for whole microseconds is "at most one less"; the boundaries are 9 µs, 99 µs and 999 µs exactly).
    private mutating func histogram(_ name: String, _ help: String, _ summary: LatencySummary) {
        self.header(name, help, "histogram")
        for (bound, count) in [
            ("0.000009", summary.under10us), ("0.000099", summary.under100us), ("0.000999", summary.under1ms),
        ] {
            self.lines.append("\(name)_bucket{le=\"\(bound)\"} \(count)")
        }
        self.lines.append("\(name)_bucket{le=\"+Inf\"} \(summary.count)")
        self.lines.append("\(name)_sum \(Self.number(Double(summary.sumMicros) / 1e6))")
        self.lines.append("\(name)_count \(summary.count)")
    }

    private static func escape(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    public static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

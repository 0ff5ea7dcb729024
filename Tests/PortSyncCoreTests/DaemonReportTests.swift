import PortSyncCore
import Testing

/// `STATUS=` and the metrics text, from one `DaemonReport`.
@Suite("DaemonReport")
struct DaemonReportTests {
    static func report() -> DaemonReport {
        var report = DaemonReport()
        report.phase = .ready
        report.portsSynced = 32
        report.eventsPerSecond = 119.6
        report.redis = "connected"
        report.redisConnected = true
        report.workers = [
            WorkerStatus(name: "netlink", criticality: .critical, phase: .running),
            WorkerStatus(name: "analytics", criticality: .optional, phase: .failed, restarts: 5),
        ]
        return report
    }

    @Test("STATUS= names state, ports, rate, Redis, then what is wrong")
    func statusLine() {
        var report = Self.report()
        #expect(
            report.statusLine() == "ready, 32 ports synced, 120 events/s, redis connected, degraded: analytics failed")
        report.watchdogWithheldBy = ["netlink"]
        report.reload.error = "/etc/sonic/portsyncd.conf:2:1: log.level = \"loud\" is not one of …"
        report.lastError = "hidden while the config error is shown"
        #expect(
            report.statusLine()
                == "ready, 32 ports synced, 120 events/s, redis connected, stalled: netlink, watchdog withheld, "
                + "degraded: analytics failed, config refused, old kept: /etc/sonic/portsyncd.conf:2:1: "
                + "log.level = \"loud\" is not one of …")
        var pending = Self.report()
        pending.workers = []
        pending.reload.pendingRestart = ["pipeline.drop_policy", "redis.unix_socket"]
        #expect(
            pending.statusLine()
                == "ready, 32 ports synced, 120 events/s, redis connected, "
                + "restart to apply pipeline.drop_policy redis.unix_socket")
        #expect(MetricsExposition.text(pending).contains("\nportsyncd_config_restart_pending_keys 2\n"))
        var starting = DaemonReport()
        starting.startupStatus = "waiting for Redis: connection refused; retry in 200 ms"
        #expect(starting.statusLine() == "waiting for Redis: connection refused; retry in 200 ms")
    }

    @Test("Metrics: HELP and TYPE before each family, bounded labels, histogram buckets cumulative")
    func metrics() {
        var report = Self.report()
        report.reload.successful = false
        var snapshot = PipelineSnapshot()
        snapshot.handoff.wait = LatencySummary(
            count: 10, p50: 5, p99: 2000, p999: 2000, max: 2000, under10us: 6, under100us: 8, under1ms: 9,
            atLeast1ms: 1, sumMicros: 2500)
        snapshot.handoff.dropped = ["low": ["shed": 3]]
        report.pipeline = snapshot
        let text = MetricsExposition.text(report)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.contains("portsyncd_config_last_reload_successful 0"))
        #expect(lines.contains("portsyncd_ports_synced 32"))
        #expect(lines.contains(#"portsyncd_worker_up{criticality="optional",worker="analytics"} 0"#))
        #expect(lines.contains(#"portsyncd_worker_restarts_total{worker="analytics"} 5"#))
        #expect(lines.contains(#"portsyncd_handoff_dropped_total{priority="low",reason="shed"} 3"#))
        #expect(lines.contains(#"portsyncd_handoff_wait_seconds_bucket{le="0.000009"} 6"#))
        #expect(lines.contains(#"portsyncd_handoff_wait_seconds_bucket{le="+Inf"} 10"#))
        #expect(lines.contains("portsyncd_handoff_wait_seconds_sum 0.0025"))
        // Every sample's family has HELP and TYPE lines before it.
        var declared: Set<String> = []
        for line in lines {
            if line.hasPrefix("# TYPE ") {
                declared.insert(String(line.split(separator: " ")[2]))
                continue
            }
            if line.hasPrefix("#") { continue }
            let name = String(line.prefix { $0 != "{" && $0 != " " })
            let family = ["_bucket", "_sum", "_count"].reduce(name) { result, suffix in
                result.hasSuffix(suffix) && declared.contains(String(result.dropLast(suffix.count)))
                    ? String(result.dropLast(suffix.count)) : result
            }
            #expect(declared.contains(family), "\(line)")
        }
    }
}

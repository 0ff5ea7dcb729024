import Dispatch
import Foundation
import Glibc
import Logging
import PortSyncCore

/// Refreshes systemd's `STATUS=` and the metrics file from a `DaemonReport`, on its own queue.
///
/// Each tick asks the port queue for its part of the report (with `async`, so the port path never waits for
/// telemetry), then adds the supervisor's view, the latest reload and the analytics. An important worker: if it
/// cannot be kept running, the daemon goes on without fresh `STATUS=`.
final class TelemetryWorker: SupervisedWorker, @unchecked Sendable {
    let name = "telemetry"
    let criticality = WorkerCriticality.important
    let queue = DispatchQueue(label: "portsyncd.telemetry")
    private let portQueue: DispatchQueue
    private let gather: () -> DaemonReport
    private let notifier: SystemdNotifier
    private let logger: Logger
    private weak var supervisor: Supervisor?

    // Telemetry queue only.
    private var intervalMs: Int
    private var metricsFile: String
    private var timer: (any DispatchSourceTimer)?
    private var reload = DaemonReport.Reload(lastSuccessUnixSeconds: Date().timeIntervalSince1970)
    private var analytics = Analytics.Figures()
    private var lastAccepted: UInt64?
    private var lastTick = MonotonicClock.nowMicroseconds()
    private var eventsPerSecond = 0.0
    private var stopping = false
    private var metricsProblem: String?
    private var workerPhases: [String: WorkerPhase] = [:]
    private(set) var latest = DaemonReport()
    /// Told of each worker whose phase changed since the last report (the event bus publishes `worker_state`).
    var onWorkerChanged: (WorkerStatus) -> Void = { _ in }

    /// - Parameter gather: runs on the port queue and returns the port path's part of the report.
    init(
        portQueue: DispatchQueue, config: Config, notifier: SystemdNotifier, logger: Logger,
        gather: @escaping () -> DaemonReport
    ) {
        self.portQueue = portQueue
        self.gather = gather
        self.notifier = notifier
        self.logger = logger
        self.intervalMs = config.daemon.statusIntervalMs
        self.metricsFile = config.telemetry.metricsFile
    }

    func attach(_ supervisor: Supervisor) { self.supervisor = supervisor }

    func start(_ context: WorkerContext) throws {
        self.schedule()
    }

    func stop() {
        self.timer?.cancel()
        self.timer = nil
    }

    /// A reload: the interval and the metrics file apply at once.
    func update(_ config: Config) {
        self.queue.async { [self] in
            self.metricsFile = config.telemetry.metricsFile
            if config.daemon.statusIntervalMs != self.intervalMs {
                self.intervalMs = config.daemon.statusIntervalMs
                if self.timer != nil { self.schedule() }
            }
        }
    }

    func reloaded(_ reload: DaemonReport.Reload) {
        self.queue.async { [self] in
            self.reload = reload
            self.refresh()
        }
    }

    func analyticsUpdated(_ figures: Analytics.Figures) {
        self.queue.async { [self] in self.analytics = figures }
    }

    /// Shutdown: `STATUS=` belongs to the stop sequence from now on; the metrics file gets one last refresh.
    func beginShutdown() {
        self.queue.async { [self] in
            self.refresh(publishStatus: false)
            self.stopping = true
            self.stop()
        }
    }

    /// Gathers a report now and publishes it (after a worker's phase changed, or a reload).
    func refresh(publishStatus: Bool = true) {
        guard !self.stopping else { return }
        self.portQueue.async { [self] in
            let portPath = self.gather()
            self.queue.async { self.publish(portPath, status: publishStatus) }
        }
    }

    private func schedule() {
        self.timer?.cancel()
        self.timer = DispatchSource.repeating(on: self.queue, every: .milliseconds(self.intervalMs)) {
            [unowned self] in self.refresh()
        }
    }

    /// A report gathered now (for the HTTP API), without publishing it.
    func report() async -> DaemonReport {
        await withCheckedContinuation { result in
            self.portQueue.async {
                let portPath = self.gather()
                self.queue.async { result.resume(returning: self.complete(portPath)) }
            }
        }
    }

    private func publish(_ portPath: DaemonReport, status: Bool) {
        guard !self.stopping else { return }
        let report = self.complete(portPath)
        self.latest = report
        for worker in report.workers where self.workerPhases[worker.name] != worker.phase {
            self.workerPhases[worker.name] = worker.phase
            self.onWorkerChanged(worker)
        }
        if status { self.notifier.status(report.statusLine()) }
        self.writeMetrics(report)
    }

    /// The port path's part completed with the rate, the supervisor's view, the reload and the analytics.
    private func complete(_ portPath: DaemonReport) -> DaemonReport {
        var report = portPath
        let now = MonotonicClock.nowMicroseconds()
        if let accepted = report.pipeline?.candidatesSent {
            let elapsed = Double(now - self.lastTick) / 1_000_000
            if let last = self.lastAccepted, accepted >= last, elapsed >= 0.2 {
                self.eventsPerSecond = Double(accepted - last) / elapsed
                self.lastAccepted = accepted
                self.lastTick = now
            } else if self.lastAccepted == nil || accepted < (self.lastAccepted ?? 0) {
                self.lastAccepted = accepted
                self.lastTick = now
            }
        }
        report.eventsPerSecond = self.eventsPerSecond
        if let supervisor = self.supervisor {
            report.workers = supervisor.statuses()
            report.watchdogWithheldBy = supervisor.watchdogBlockers()
        }
        report.reload = self.reload
        report.analytics = self.analytics
        return report
    }

    /// Rewrites the metrics file atomically (a temporary file renamed over it), as node_exporter's textfile
    /// collector expects. A failure is logged once per distinct problem and does not stop the worker.
    private func writeMetrics(_ report: DaemonReport) {
        guard !self.metricsFile.isEmpty else { return }
        let text = MetricsExposition.text(report)
        let temporary = self.metricsFile + ".tmp"
        var problem: String?
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
            if rename(temporary, self.metricsFile) != 0 {
                problem = SystemError.current("rename(\(temporary), \(self.metricsFile))").description
            }
        } catch {
            problem = "writing \(temporary): \(error.localizedDescription)"
        }
        if let problem, problem != self.metricsProblem {
            self.logger.warning("Cannot write the metrics file: \(problem)", metadata: ["EVENT": "metrics_file"])
        }
        self.metricsProblem = problem
    }
}

/// Moving averages of the port path (`Analytics`), sampled on the port queue at `analytics_interval_ms`, handed to
/// telemetry and to the threshold worker. Optional: without it nothing is tuned and the metrics lack the averages.
final class AnalyticsWorker: SupervisedWorker, @unchecked Sendable {
    let name = "analytics"
    let criticality = WorkerCriticality.optional
    let queue = DispatchQueue(label: "portsyncd.analytics")
    private let portQueue: DispatchQueue
    private let sample: () -> PortPathSample
    private let publish: (Analytics.Figures) -> Void

    // Analytics queue only.
    private var intervalMs: Int
    private var analytics: Analytics
    private var earlierWait: LatencyHistogram?
    private var earlierLatency: LatencyHistogram?
    private var timer: (any DispatchSourceTimer)?

    /// - Parameters:
    ///   - sample: runs on the port queue.
    ///   - publish: runs on the analytics queue with the new averages.
    init(
        portQueue: DispatchQueue, config: Config, sample: @escaping () -> PortPathSample,
        publish: @escaping (Analytics.Figures) -> Void
    ) {
        self.portQueue = portQueue
        self.sample = sample
        self.publish = publish
        self.intervalMs = config.telemetry.analyticsIntervalMs
        self.analytics = Analytics(halfLifeMicros: UInt64(config.telemetry.analyticsHalfLifeMs) * 1000)
    }

    func start(_ context: WorkerContext) throws {
        self.schedule()
    }

    func stop() {
        self.timer?.cancel()
        self.timer = nil
    }

    func update(_ config: Config) {
        self.queue.async { [self] in
            self.analytics.halfLifeMicros = UInt64(config.telemetry.analyticsHalfLifeMs) * 1000
            if config.telemetry.analyticsIntervalMs != self.intervalMs {
                self.intervalMs = config.telemetry.analyticsIntervalMs
                if self.timer != nil { self.schedule() }
            }
        }
    }

    private func schedule() {
        self.timer?.cancel()
        self.timer = DispatchSource.repeating(on: self.queue, every: .milliseconds(self.intervalMs)) {
            [unowned self] in
            self.portQueue.async {
                let sample = self.sample()
                self.queue.async { self.fold(sample) }
            }
        }
    }

    private func fold(_ sample: PortPathSample) {
        self.analytics.update(sample, earlierWait: self.earlierWait, earlierLatency: self.earlierLatency)
        self.earlierWait = sample.handoffWait
        self.earlierLatency = sample.writerLatency
        if self.analytics.samples > 0 { self.publish(self.analytics.figures) }
    }
}

/// Moves the adaptive hand-off thresholds with the analytics (`ThresholdTuner`), when the policy is `adaptive`
/// and `pipeline.adaptive_autotune` is on. Optional: without it the configured thresholds stand.
final class ThresholdWorker: SupervisedWorker, @unchecked Sendable {
    let name = "thresholds"
    let criticality = WorkerCriticality.optional
    let queue = DispatchQueue(label: "portsyncd.thresholds")
    private let apply: (AdaptiveThresholds) -> Void
    private let logger: Logger

    // Thresholds queue only.
    private var tuner: ThresholdTuner
    private var enabled: Bool
    private var current: AdaptiveThresholds
    private var running = false

    /// - Parameter apply: sets the pipeline's thresholds (it hops to the port queue itself).
    init(config: Config, logger: Logger, apply: @escaping (AdaptiveThresholds) -> Void) {
        let base = Self.base(config)
        self.tuner = ThresholdTuner(base: base)
        self.current = base
        self.enabled = Self.enabled(config)
        self.apply = apply
        self.logger = logger
    }

    func start(_ context: WorkerContext) throws { self.running = true }

    func stop() { self.running = false }

    /// New figures from the analytics worker.
    func consider(_ figures: Analytics.Figures) {
        self.queue.async { [self] in
            guard self.running, self.enabled,
                let next = self.tuner.next(current: self.current, figures: figures)
            else { return }
            self.current = next
            self.apply(next)
            self.logger.info(
                "Adaptive hand-off thresholds moved to block below \(next.blockBelowMicros) µs, shed above \(next.shedAboveMicros) µs (Redis p99 \(Int(figures.writerLatencyP99 ?? 0)) µs)",
                metadata: ["WORKER": "thresholds", "EVENT": "thresholds_moved"])
        }
    }

    /// A reload: a new configured pair applies at once (and is the tuner's new base).
    func update(_ config: Config) {
        self.queue.async { [self] in
            let base = Self.base(config)
            self.enabled = Self.enabled(config)
            guard base != self.tuner.base || !self.enabled else { return }
            self.tuner.base = base
            self.current = base
            self.apply(base)
        }
    }

    private static func base(_ config: Config) -> AdaptiveThresholds {
        AdaptiveThresholds(
            blockBelowMicros: UInt64(config.pipeline.adaptiveBlockBelowUs),
            shedAboveMicros: UInt64(config.pipeline.adaptiveShedAboveUs))
    }

    private static func enabled(_ config: Config) -> Bool {
        config.pipeline.dropPolicy == "adaptive" && config.pipeline.adaptiveAutotune
    }
}

public import Dispatch
import Glibc
public import Logging
public import PortSyncCore
import Synchronization

/// A long-lived part of the daemon, run by the `Supervisor` on its own serial queue.
///
/// `start` and `stop` are called on `queue`. A worker reports a failure it cannot handle through
/// `WorkerContext.fail`; the supervisor then calls `stop` and, after the backoff, `start` again with a new context.
/// A worker keeps what must survive a restart (the port state, the pipeline's counters) and rebuilds the rest (its
/// sockets, timers) in `start`.
public protocol SupervisedWorker: AnyObject, Sendable {
    var name: String { get }
    var criticality: WorkerCriticality { get }
    var queue: DispatchQueue { get }
    /// Starts (or restarts) the worker. Throwing counts as a failure.
    func start(_ context: WorkerContext) throws
    /// Stops: cancels every source and timer the worker owns. Must be safe to call when not started.
    func stop()
}

/// A worker with open connections to wind down before the process exits (the HTTP server: stream clients get
/// their last event and a clean close).
public protocol DrainableWorker: SupervisedWorker {
    /// Stops taking new work, lets what is in flight finish, and calls `done` (at most `timeoutMs` later).
    func drain(timeoutMs: Int, _ done: @escaping @Sendable () -> Void)
}

/// A worker built outside the runtime that takes part of a reload: `update` gets each valid new configuration, on
/// the config queue, and applies what it can (the keys in `Config.appliedOnReload`).
public protocol ReloadableWorker: SupervisedWorker {
    func update(_ config: Config)
}

/// One run of one worker: its heartbeat and the way to report a failure. A restart gets a new context, so a failure
/// reported late by an old run is ignored.
public final class WorkerContext: Sendable {
    public let name: String
    let generation: Int
    private let lastBeat: Atomic<UInt64>
    private let onFailure: @Sendable (String, Int) -> Void

    init(name: String, generation: Int, onFailure: @escaping @Sendable (String, Int) -> Void) {
        self.name = name
        self.generation = generation
        self.lastBeat = Atomic(MonotonicClock.nowMicroseconds())
        self.onFailure = onFailure
    }

    /// Proof of life; the supervisor also beats on the worker's queue every heartbeat interval, so a worker only
    /// calls this for extra precision.
    public func beat() {
        self.lastBeat.store(MonotonicClock.nowMicroseconds(), ordering: .relaxed)
    }

    /// When the worker last beat (monotonic microseconds).
    public var lastBeatMicros: UInt64 { self.lastBeat.load(ordering: .relaxed) }

    /// Reports a failure the worker cannot recover from by itself: it is stopped and restarted with backoff.
    public func fail(_ reason: String) {
        self.onFailure(reason, self.generation)
    }
}

/// The supervisor's settings (`[supervisor]` in the file).
public struct SupervisorSettings: Sendable, Hashable {
    public var restart: RestartPolicy
    /// How often each worker's queue is checked for life, µs.
    public var heartbeatIntervalMicros: UInt64
    /// A heartbeat older than this is a stall, µs.
    public var stallTimeoutMicros: UInt64

    public init(_ config: Config.Supervisor) {
        self.restart = RestartPolicy(
            initialMicros: UInt64(config.restartInitialMs) * 1000, maxMicros: UInt64(config.restartMaxMs) * 1000,
            jitter: Double(config.restartJitterPercent) / 100, intensity: config.restartIntensity,
            periodMicros: UInt64(config.restartPeriodMs) * 1000)
        self.heartbeatIntervalMicros = UInt64(config.heartbeatIntervalMs) * 1000
        self.stallTimeoutMicros = UInt64(config.stallTimeoutMs) * 1000
    }
}

/// Runs the workers: restarts a failed one with exponential backoff and jitter within an OTP-style restart
/// intensity, detects stalls by heartbeat, and sends `WATCHDOG=1` only while no critical worker is stalled.
///
/// Escalation: past its intensity a critical worker ends the process with status 1 (systemd restarts it, and the
/// start-up sync reconciles Redis with the kernel); another worker is stopped and reported, and the daemon runs
/// degraded. A stalled critical worker withholds the watchdog, so systemd kills and restarts the process; without a
/// watchdog (not run by systemd, or no `WatchdogSec=`) the stall ends the process itself.
///
/// Everything here runs on the supervisor's own serial queue; the workers' queues are only ever entered with
/// `async`, so a stuck worker cannot stick the supervisor.
public final class Supervisor: @unchecked Sendable {
    private struct Entry {
        var worker: any SupervisedWorker
        var status: WorkerStatus
        var tracker: RestartTracker
        var context: WorkerContext?
        var generation = 0
        var heartbeat: (any DispatchSourceTimer)?
        var stalledSince: UInt64?
    }

    public let queue = DispatchQueue(label: "portsyncd.supervisor")
    private let notifier: SystemdNotifier
    private let logger: Logger
    private let escalate: @Sendable (String) -> Void
    /// Told of every change of a worker's phase (telemetry refreshes `STATUS=` at once).
    private let onChange: @Sendable () -> Void

    // Supervisor queue only.
    private var settings: SupervisorSettings
    private var entries: [Entry] = []
    private var checkTimer: (any DispatchSourceTimer)?
    private var watchdogTimer: (any DispatchSourceTimer)?
    private var lastCheck: UInt64 = 0
    private var stopping = false
    private var withheldBy: [String] = []
    private var randomState: UInt64

    /// - Parameter escalate: ends the process with status 1 after logging (a critical worker is beyond help).
    public init(
        settings: SupervisorSettings, notifier: SystemdNotifier, logger: Logger,
        escalate: @escaping @Sendable (String) -> Void, onChange: @escaping @Sendable () -> Void = {}
    ) {
        self.settings = settings
        self.notifier = notifier
        self.logger = logger
        self.escalate = escalate
        self.onChange = onChange
        self.randomState = MonotonicClock.nowMicroseconds() | 1
    }

    /// Starts `worker` on its queue and supervises it from now on.
    public func add(_ worker: any SupervisedWorker) {
        self.queue.async { [self] in
            let policy = self.settings.restart
            self.entries.append(
                Entry(
                    worker: worker,
                    status: WorkerStatus(name: worker.name, criticality: worker.criticality, phase: .starting),
                    tracker: RestartTracker(policy: policy)))
            self.launch(self.entries.count - 1)
        }
    }

    /// Starts the stall checks and the watchdog (`WATCHDOG=1` at half of `WATCHDOG_USEC`, when systemd asks).
    public func run() {
        self.queue.async { [self] in
            self.lastCheck = MonotonicClock.nowMicroseconds()
            self.scheduleChecks()
            if let usec = self.notifier.watchdogMicroseconds {
                self.watchdogTimer = DispatchSource.repeating(
                    on: self.queue, every: .microseconds(Int(usec / 2)), leeway: .nanoseconds(0)
                ) { [unowned self] in self.watchdogTick() }
            }
        }
    }

    /// New settings (a reload): the restart policy applies from the next failure; heartbeat and stall timing at
    /// once.
    public func update(_ settings: SupervisorSettings) {
        self.queue.async { [self] in
            let timingChanged =
                settings.heartbeatIntervalMicros != self.settings.heartbeatIntervalMicros
                || settings.stallTimeoutMicros != self.settings.stallTimeoutMicros
            self.settings = settings
            for index in self.entries.indices { self.entries[index].tracker.update(policy: settings.restart) }
            if timingChanged {
                self.scheduleChecks()
                for index in self.entries.indices where self.entries[index].heartbeat != nil {
                    self.startHeartbeat(index)
                }
            }
        }
    }

    /// Stops supervising (shutdown): failures are no longer restarted and stalls no longer judged. The watchdog
    /// keeps being sent while the daemon drains.
    public func beginShutdown() {
        self.queue.async { [self] in
            self.stopping = true
            self.checkTimer?.cancel()
            self.checkTimer = nil
        }
    }

    /// Every worker's status, in the order they were added. Not to be called on the supervisor's queue.
    public func statuses() -> [WorkerStatus] {
        dispatchPrecondition(condition: .notOnQueue(self.queue))
        return self.queue.sync { self.currentStatuses() }
    }

    /// The workers that withhold the watchdog now, if any. Not to be called on the supervisor's queue.
    public func watchdogBlockers() -> [String] {
        dispatchPrecondition(condition: .notOnQueue(self.queue))
        return self.queue.sync { self.withheldBy }
    }

    // MARK: Life cycle (supervisor queue)

    private func launch(_ index: Int) {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.entries[index].generation += 1
        let generation = self.entries[index].generation
        let worker = self.entries[index].worker
        let context = WorkerContext(name: worker.name, generation: generation) { [weak self] reason, generation in
            guard let self else { return }
            self.queue.async { self.failed(index, reason: reason, generation: generation) }
        }
        self.entries[index].context = context
        self.entries[index].status.phase = .starting
        self.entries[index].stalledSince = nil
        worker.queue.async { [self] in
            do {
                try worker.start(context)
                context.beat()
                self.queue.async { self.started(index, generation: generation) }
            } catch {
                context.fail("start failed: \(error)")
            }
        }
        self.startHeartbeat(index)
    }

    private func started(_ index: Int, generation: Int) {
        guard self.entries[index].generation == generation, self.entries[index].status.phase == .starting else {
            return
        }
        self.entries[index].status.phase = .running
        self.onChange()
    }

    /// A timer on the worker's own queue beats for it: if the queue is stuck, the beat stops.
    private func startHeartbeat(_ index: Int) {
        self.entries[index].heartbeat?.cancel()
        guard let context = self.entries[index].context else { return }
        self.entries[index].heartbeat = DispatchSource.repeating(
            on: self.entries[index].worker.queue,
            every: .microseconds(Int(self.settings.heartbeatIntervalMicros)), leeway: .milliseconds(10)
        ) { context.beat() }
    }

    private func failed(_ index: Int, reason: String, generation: Int) {
        dispatchPrecondition(condition: .onQueue(self.queue))
        guard self.entries[index].generation == generation, !self.stopping else { return }
        let entry = self.entries[index]
        guard entry.status.phase != .failed, entry.status.phase != .restarting else { return }
        entry.heartbeat?.cancel()
        self.entries[index].heartbeat = nil
        self.entries[index].context = nil
        self.entries[index].status.lastError = reason
        let worker = entry.worker
        worker.queue.async { worker.stop() }
        let decision = self.entries[index].tracker.failed(now: MonotonicClock.nowMicroseconds(), random: self.random())
        self.entries[index].status.restarts = self.entries[index].tracker.totalRestarts
        let metadata: Logger.Metadata = ["WORKER": .string(worker.name), "EVENT": "worker_failed"]
        switch decision {
        case .restart(let delay, let attempt):
            self.entries[index].status.phase = .restarting
            self.logger.warning(
                "Worker \(worker.name) failed (\(reason)); restart \(attempt) of \(self.settings.restart.intensity) within \(self.settings.restart.periodMicros / 1_000_000) s, in \(delay / 1000) ms",
                metadata: metadata)
            self.queue.asyncAfter(deadline: .now() + .microseconds(Int(delay))) { [self] in
                guard !self.stopping, self.entries[index].status.phase == .restarting else { return }
                self.logger.notice(
                    "Restarting worker \(worker.name)",
                    metadata: ["WORKER": .string(worker.name), "EVENT": "worker_restart"])
                self.launch(index)
            }
        case .giveUp(let restarts):
            self.entries[index].status.phase = .failed
            let message =
                "Worker \(worker.name) failed (\(reason)) after \(restarts) restarts within \(self.settings.restart.periodMicros / 1_000_000) s"
            if worker.criticality == .critical {
                self.logger.critical(
                    "\(message); it is critical: exiting so that systemd restarts portsyncd",
                    metadata: ["WORKER": .string(worker.name), "EVENT": "worker_escalated"])
                self.escalate("critical worker \(worker.name) failed: \(reason)")
            } else {
                self.logger.error(
                    "\(message); stopped, running degraded",
                    metadata: ["WORKER": .string(worker.name), "EVENT": "worker_gave_up"])
            }
        }
        self.onChange()
    }

    // MARK: Stalls and the watchdog (supervisor queue)

    private func scheduleChecks() {
        self.checkTimer?.cancel()
        guard !self.stopping else { return }
        self.checkTimer = DispatchSource.repeating(
            on: self.queue, every: .microseconds(Int(max(self.settings.heartbeatIntervalMicros / 2, 1000))),
            leeway: .milliseconds(10)
        ) { [unowned self] in self.checkStalls() }
    }

    private func checkStalls() {
        let now = MonotonicClock.nowMicroseconds()
        defer { self.lastCheck = now }
        #if DEBUG
            FaultInjection.poll(self)
        #endif
        // The supervisor's own tick was late by more than the timeout: the whole process was frozen (SIGSTOP, a
        // suspended machine), not one worker. Judge again at the next tick, once the workers had a chance to beat.
        guard now - self.lastCheck < self.settings.stallTimeoutMicros else { return }
        var changed = false
        for index in self.entries.indices {
            guard let context = self.entries[index].context else { continue }
            let phase = self.entries[index].status.phase
            guard phase == .running || phase == .stalled else { continue }
            let last = context.lastBeatMicros
            let stale = WatchdogGate.isStale(
                lastBeat: last, now: now, timeoutMicros: self.settings.stallTimeoutMicros)
            self.entries[index].status.heartbeatAgeMicros = now > last ? now - last : 0
            let name = self.entries[index].worker.name
            if stale && phase == .running {
                changed = true
                self.entries[index].status.phase = .stalled
                self.entries[index].stalledSince = last
                self.entries[index].status.lastError = "stalled: no heartbeat for \(Self.seconds(now - last))"
                self.stalled(index, age: now - last)
            } else if !stale && phase == .stalled {
                changed = true
                self.entries[index].status.phase = .running
                self.entries[index].stalledSince = nil
                self.logger.notice(
                    "Worker \(name) is beating again", metadata: ["WORKER": .string(name), "EVENT": "worker_recovered"])
            }
        }
        self.withheldBy = WatchdogGate.blockers(self.currentStatuses())
        if changed { self.onChange() }
    }

    private func stalled(_ index: Int, age: UInt64) {
        let worker = self.entries[index].worker
        let metadata: Logger.Metadata = ["WORKER": .string(worker.name), "EVENT": "worker_stalled"]
        guard worker.criticality == .critical else {
            self.logger.error(
                "Worker \(worker.name) stalled (no heartbeat for \(Self.seconds(age))); restarting it",
                metadata: metadata)
            self.failed(index, reason: "stalled for \(Self.seconds(age))", generation: self.entries[index].generation)
            return
        }
        if self.notifier.watchdogMicroseconds != nil {
            self.logger.critical(
                "Critical worker \(worker.name) stalled (no heartbeat for \(Self.seconds(age))); withholding WATCHDOG=1 so that systemd restarts portsyncd",
                metadata: metadata)
            self.notifier.status("stalled: worker \(worker.name), no heartbeat for \(Self.seconds(age))")
        } else {
            self.logger.critical(
                "Critical worker \(worker.name) stalled (no heartbeat for \(Self.seconds(age))) and no watchdog is set: exiting so that the service manager restarts portsyncd",
                metadata: metadata)
            self.escalate("critical worker \(worker.name) stalled")
        }
    }

    private func watchdogTick() {
        if self.withheldBy.isEmpty {
            self.notifier.watchdog()
        } else {
            self.notifier.status("stalled: worker \(self.withheldBy.joined(separator: ", ")); WATCHDOG=1 withheld")
        }
    }

    private func currentStatuses() -> [WorkerStatus] {
        let now = MonotonicClock.nowMicroseconds()
        return self.entries.map { entry in
            var status = entry.status
            if let last = entry.context?.lastBeatMicros, status.phase == .running || status.phase == .stalled {
                status.heartbeatAgeMicros = now > last ? now - last : 0
            } else {
                status.heartbeatAgeMicros = 0
            }
            return status
        }
    }

    /// xorshift64*: jitter needs no quality, only no global state.
    private func random() -> Double {
        self.randomState ^= self.randomState >> 12
        self.randomState ^= self.randomState << 25
        self.randomState ^= self.randomState >> 27
        let value = self.randomState &* 0x2545_F491_4F6C_DD1D
        return Double(value >> 11) / Double(UInt64(1) << 53)
    }

    static func seconds(_ micros: UInt64) -> String {
        let tenths = (micros + 50_000) / 100_000
        return "\(tenths / 10).\(tenths % 10) s"
    }

    // MARK: Fault injection (debug builds only)

    #if DEBUG
        /// Test-only: makes `name` fail as if it had reported `reason`.
        func injectFailure(_ name: String, reason: String) {
            guard let entry = self.entries.first(where: { $0.worker.name == name }), let context = entry.context
            else {
                self.logger.warning("Fault injection: no running worker \(name)", metadata: ["EVENT": "fault"])
                return
            }
            entry.worker.queue.async { context.fail(reason) }
        }

        /// Test-only: blocks `name`'s queue for `milliseconds`, a real stall of everything on that queue.
        func injectStall(_ name: String, milliseconds: Int) {
            guard let entry = self.entries.first(where: { $0.worker.name == name }) else {
                self.logger.warning("Fault injection: no worker \(name)", metadata: ["EVENT": "fault"])
                return
            }
            entry.worker.queue.async {
                let end = MonotonicClock.nowMicroseconds() + UInt64(milliseconds) * 1000
                while MonotonicClock.nowMicroseconds() < end { usleep(10_000) }
            }
        }
    #endif
}

import CMnl
import Dispatch
import Foundation
import Glibc
public import Logging
public import PortSyncCore

/// The portsyncd process: start-up, the supervised workers, systemd, signals and reload, wired together.
///
/// ```
///   main queue           SIGTERM/SIGINT/SIGHUP sources
///   supervisor queue     restarts with backoff, stall checks, WATCHDOG=1 (only while no critical worker stalls)
///   port queue           start-up (blocking Redis, netlink dump, CONFIG_DB copy), then the critical workers:
///                          netlink  LinkMonitor: netlink read source → PortPipeline stages → hand-off
///                          redis    PortStateWriter: hiredis async read/write sources
///   telemetry queue      STATUS= and the metrics file, from a DaemonReport gathered with async hops
///   analytics queue      moving averages of the port path
///   thresholds queue     moves the adaptive hand-off thresholds
///   config queue         inotify + periodic check + SIGHUP → parse, validate, diff, apply
/// ```
/// The port path is one serial queue on purpose: no locks, and per-port order for free. Other queues reach it
/// with `async` only (the config worker alone uses `sync`, to apply a reload atomically), so nothing waits for a
/// client of the port path. Only `Sendable` values cross between queues.
public final class Daemon: DaemonQueries, @unchecked Sendable {
    private let configPath: String
    private let logLevel: LogLevelBox
    private let logger: Logger
    private let notifier = SystemdNotifier()
    private let portQueue = DispatchQueue(label: "portsyncd.port")
    private let startConfig: Config
    /// The event bus: the channels publish every link change; stream clients read it.
    public let events: EventBus
    /// Busy while the port path has a kernel message or a Redis write in hand: the stream's fan-out steps aside.
    private let portPathGate: PortPathGate
    /// The channel pipelines: link channel, port health, counter bars, alerts.
    public let channels: ChannelWorker
    /// Workers built outside this module (the HTTP API), given this daemon to query.
    private let extraWorkers: (Daemon) -> [any SupervisedWorker]

    private let supervisor: Supervisor
    private let telemetry: TelemetryWorker
    private let configWorker: ConfigWorker
    private let analytics: AnalyticsWorker
    private let thresholds: ThresholdWorker

    /// Workers to wind down before exit (set once in `run()`).
    private var drainable: [any DrainableWorker] = []
    /// Workers built outside this module that apply a reload themselves (set once in `run()`).
    private var reloadable: [any ReloadableWorker] = []

    // Main queue only.
    private var signalSources: [any DispatchSourceSignal] = []
    private var stopping = false

    // Port queue only.
    private var config: Config
    private var writer: PortStateWriter?
    private var monitor: LinkMonitor?
    private var startupDelayMs: Int
    private var ready = false
    private var shuttingDown = false
    private var startupStatus = "starting"
    private var configured: Set<String> = []
    private var startKind: StartKind?
    private var watcher: SonicWatcher?
    private var databases: SonicDatabases?
    /// A cold sync after an APPL_DB flush is under way.
    private var resyncingCold = false
    /// The interfaces brought down at a cold start and ignored since (statement 28), by name.
    private var oldInterfaceNames: Set<String> = []

    public init(
        config: Config, configPath: String, missingConfigMeansDefaults: Bool, logLevel: LogLevelBox, logger: Logger,
        extraWorkers: @escaping (Daemon) -> [any SupervisedWorker] = { _ in [] }
    ) {
        self.portPathGate = PortPathGate(
            maxWaitMs: config.events.fanoutYieldMs, quietMicros: config.events.fanoutQuietUs)
        self.events = EventBus(
            epoch: EventBus.newEpoch(),
            capacities: (config.events.highCapacity, config.events.mediumCapacity, config.events.lowCapacity),
            replayCapacity: config.events.replayCapacity, clientBufferCapacity: config.events.clientBufferCapacity,
            gate: self.portPathGate, smallFanout: config.events.fanoutYieldAboveClients)
        self.channels = ChannelWorker(
            settings: ChannelSettings(config), workers: config.channels.workers,
            statsIntervalMs: config.channels.statsIntervalMs, capacity: config.channels.intakeCapacity,
            stallTimeoutMs: config.supervisor.stallTimeoutMs, bus: self.events, logger: logger)
        self.extraWorkers = extraWorkers
        self.config = config
        self.startConfig = config
        self.configPath = configPath
        self.logLevel = logLevel
        self.logger = logger
        self.startupDelayMs = config.redis.reconnectInitialMs
        // The workers call back into this daemon through `owner`, set once construction is over.
        let owner = Owner()
        let notifier = self.notifier
        let portQueue = self.portQueue
        self.supervisor = Supervisor(
            settings: SupervisorSettings(config.supervisor), notifier: notifier, logger: logger,
            escalate: { reason in
                guard let daemon = owner.daemon else { exit(1) }
                daemon.fatal(reason)
            },
            onChange: { owner.daemon?.telemetry.refresh() })
        let telemetry = TelemetryWorker(
            portQueue: portQueue, config: config, notifier: notifier, logger: logger,
            gather: { owner.daemon?.portPathReport() ?? DaemonReport() })
        telemetry.attach(self.supervisor)
        self.telemetry = telemetry
        self.configWorker = ConfigWorker(
            path: configPath, missingMeansDefaults: missingConfigMeansDefaults, config: config, notifier: notifier,
            logger: logger,
            apply: { old, new in owner.daemon?.apply(old: old, new: new) },
            reported: { reload in telemetry.reloaded(reload) })
        let thresholds = ThresholdWorker(config: config, logger: logger) { thresholds in
            portQueue.async { owner.daemon?.monitor?.pipeline.adaptiveThresholds = thresholds }
        }
        self.thresholds = thresholds
        self.analytics = AnalyticsWorker(
            portQueue: portQueue, config: config,
            sample: { owner.daemon?.portPathSample() ?? Daemon.emptySample() },
            publish: { figures in
                telemetry.analyticsUpdated(figures)
                thresholds.consider(figures)
            })
        owner.daemon = self
    }

    /// How the workers, built in `init`, reach the daemon.
    private final class Owner: @unchecked Sendable {
        weak var daemon: Daemon?
    }

    /// Runs the daemon; never returns.
    public func run() -> Never {
        signal(SIGPIPE, SIG_IGN)  // hiredis writes to a socket that Redis may have closed
        for stray in [SIGUSR1, SIGUSR2] { signal(stray, SIG_IGN) }
        self.telemetry.onWorkerChanged = { [events] status in events.publish(.workerState(status)) }
        self.configWorker.onReload = { [events] outcome in events.publish(.configReloaded(outcome)) }
        self.installSignalHandlers()
        self.supervisor.add(self.events)
        self.supervisor.add(self.channels)
        self.supervisor.add(self.configWorker)
        self.supervisor.add(self.telemetry)
        let extra = self.extraWorkers(self)
        self.drainable = extra.compactMap { $0 as? any DrainableWorker }
        self.reloadable = extra.compactMap { $0 as? any ReloadableWorker }
        for worker in extra { self.supervisor.add(worker) }
        self.supervisor.run()
        self.portQueue.async { self.startUp() }
        dispatchMain()
    }

    // MARK: Start-up (port queue)

    private func startUp() {
        dispatchPrecondition(condition: .onQueue(self.portQueue))
        let databases: SonicDatabases
        let client: RedisBlockingClient
        do {
            databases = try ConfigFile.databases(self.config)
            guard let socket = databases.unixSocketPath else {
                throw RedisError("the database map has no unix_socket_path for the redis instance")
            }
            client = try RedisBlockingClient(unixSocket: socket, timeoutMs: 10_000)
        } catch let error as RedisError {
            let delay = self.startupDelayMs
            self.startupDelayMs = min(self.startupDelayMs * 2, self.config.redis.reconnectMaxMs)
            self.startupStatus = "waiting for Redis: \(error.message); retry in \(delay) ms"
            self.notifier.status(self.startupStatus)
            self.logger.warning(
                "Redis is not reachable (\(error.message)); retrying in \(delay) ms", metadata: ["EVENT": "redis_retry"]
            )
            self.portQueue.asyncAfter(deadline: .now() + .milliseconds(delay)) { self.startUp() }
            return
        } catch {
            self.fatal("start-up failed: \(error)")
        }
        do {
            try self.startUp(databases: databases, client: client)
        } catch {
            self.fatal("start-up failed: \(error)")
        }
    }

    private func startUp(databases: SonicDatabases, client: RedisBlockingClient) throws {
        let schema = SonicSchema(databases: databases)
        let startup = SonicStartup(client: client, schema: schema, logger: self.logger)
        let loggerRow = try startup.linkLogger(level: self.config.log.level)
        self.applyLogSettings(level: loggerRow.level, output: loggerRow.output)
        let switchType = try startup.switchType()
        let (decision, configDonePresence, initDonePresence) = try startup.decideStartKind()
        let kind = decision.kind
        self.startKind = kind
        self.logger.notice(
            "Starting: \(kind.name) start (\(decision.reason)); switch_type \(switchType), Redis at \(databases.unixSocketPath ?? "?")",
            metadata: [
                "EVENT": "start", "KIND": .string(kind.name), "REASON": .string(decision.reason),
                "RESTORE_COUNT": "\(kind.restoreCount)",
            ])
        self.startupStatus = "starting (\(kind.name) start): netlink dump and CONFIG_DB"
        self.notifier.status(self.startupStatus)

        // Statement 11: subscribe first, then dump; both before the CONFIG_DB copy.
        let events = try NetlinkSocket(groups: UInt32(RTMGRP_LINK))
        try events.setNonBlocking()
        let buffer = events.setReceiveBuffer(bytes: self.config.netlink.receiveBufferBytes)
        if !buffer.forced {
            self.logger.warning(
                "SO_RCVBUFFORCE is not permitted (no CAP_NET_ADMIN?); the netlink receive buffer is \(buffer.effective) bytes",
                metadata: ["EVENT": "netlink_buffer"])
        }
        let requester = try NetlinkRequester()
        let dump = try requester.dumpLinks()

        let scripts = try startup.loadScripts()
        let ports = try startup.readConfiguredPorts()
        if ports.isEmpty {
            self.logger.notice(
                "ConfigDB does not have port information, however ports can be added later on, continuing...",
                metadata: ["EVENT": "config"])
        }
        var waiting = Set(ports.map(\.name))
        self.configured = waiting
        self.channels.setLinkSpeeds(Self.speeds(ports))
        var oldInterfaces: Set<Int32> = []
        // Which kernel interfaces this process will sync: a STATE_DB row of any other port is stale. Listed after
        // the netlink subscription, so a port created from now on reaches STATE_DB through its NEWLINK, after this.
        let bringDown = kind.isCold && switchType != "dpu" && !self.config.sonic.adoptExistingInterfaces
        let inventory = LinkInventory(dump: dump)
        let kernel = inventory.names.filter { !(bringDown && $0.hasPrefix("Ethernet")) }
        if kind.isCold {
            try startup.copyToApplDB(ports, scripts: scripts)
            self.logger.notice(
                "Copied \(ports.count) ports to APPL_DB; PortConfigDone count=\(ports.count)",
                metadata: ["EVENT": "port_config_done", "KIND": .string(kind.name)])
            waiting.subtract(try startup.portsAlreadyConsumed(ports.map(\.name)))
        }
        // Cold: as swss.sh leaves STATE_DB before one (no row for a port this process will not sync: gone from the
        // kernel, or an old interface ignored from now on). Warm and rejoin: only rows of ports the kernel no longer
        // has; never the row of a live port (statement 32).
        if inventory.isComplete {
            for port in try startup.deleteStaleStateRows(keeping: kernel) {
                self.logger.notice(
                    "Port \(port) has a STATE_DB row but no interface this process syncs (\(kind.name) start); deleted it",
                    metadata: ["PORT": .string(port), "EVENT": "stale_state_row", "KIND": .string(kind.name)])
            }
        } else {
            self.logger.warning(
                "The netlink dump had \(inventory.malformed) malformed messages: no STATE_DB row is deleted at this start",
                metadata: ["EVENT": "stale_state_row", "KIND": .string(kind.name)])
        }
        if bringDown {
            oldInterfaces = self.bringDownOldInterfaces(inventory, requester)
        }
        let initDone: PortSyncState.InitDoneState
        if kind == .rejoin && initDonePresence.isPresent {
            initDone = .written
            self.logger.notice(
                "APPL_DB already holds PortInitDone (\(initDonePresence.rawValue)): not written again",
                metadata: ["EVENT": "port_init_done", "KIND": .string(kind.name)])
        } else {
            initDone = .pending
        }

        let writer = PortStateWriter(
            queue: self.portQueue, schema: schema, socketPath: databases.unixSocketPath ?? "",
            scripts: scripts, state: PortSyncState(waiting: waiting, initDone: initDone),
            reconnectInitialMs: self.config.redis.reconnectInitialMs,
            reconnectMaxMs: self.config.redis.reconnectMaxMs, logger: self.logger)
        writer.maxInFlight = self.config.pipeline.writerMaxInFlight
        writer.setStallThreshold(milliseconds: self.config.redis.stallThresholdMs)
        writer.gate = self.portPathGate
        writer.maxRetries = self.config.pipeline.sendMaxRetries
        writer.retryDelayMicros = self.config.pipeline.sendRetryDelayUs
        let pipeline = PortPipeline(
            queue: self.portQueue, writer: writer, settings: self.config.pipeline, oldInterfaces: oldInterfaces,
            logger: self.logger)
        let monitor = LinkMonitor(
            queue: self.portQueue, socket: events, requester: requester, pipeline: pipeline, writer: writer,
            logger: self.logger)
        self.writer = writer
        self.monitor = monitor
        pipeline.onAccepted = { [channels = self.channels] event, update in
            switch update {
            case .state(let port, _): channels.offer(.link(event, port: port))
            case .deleted(let port):
                channels.offer(
                    .deleted(
                        port: port, ifindex: event.message.ifindex, trace: event.trace, stats: event.message.stats))
            }
        }
        writer.start()
        for datagram in dump {
            datagram.withUnsafeBytes { raw in _ = pipeline.process(datagram: raw) }
        }
        writer.endOfBatch()
        monitor.start()
        // The critical workers adopt what start-up built; from now on failures restart them.
        self.supervisor.add(RedisWorker(writer: writer))
        self.supervisor.add(
            NetlinkWorker(
                monitor: monitor, receiveBufferBytes: self.config.netlink.receiveBufferBytes, logger: self.logger))
        self.supervisor.add(self.analytics)
        self.supervisor.add(self.thresholds)
        let watcher = SonicWatcher(
            socketPath: databases.unixSocketPath ?? "", schema: schema, intervalMs: Self.sonicWatchIntervalMs,
            armed: kind.isCold || configDonePresence.isPresent, applied: (loggerRow.level, loggerRow.output),
            logger: self.logger,
            flushed: { [weak self] in
                guard let daemon = self else { return }
                daemon.portQueue.async { daemon.applDBFlushed() }
            },
            logSettings: { [weak self] level, output in self?.applyLogSettings(level: level, output: output) })
        self.watcher = watcher
        self.databases = databases
        self.supervisor.add(watcher)
        writer.whenIdle { [self] in
            guard !self.shuttingDown else { return }
            self.ready = true
            self.notifier.ready(status: self.portPathReport().statusLine())
            self.telemetry.refresh()
            self.logger.notice(
                "Ready: \(kind.name) start, \(ports.count) configured ports, \(oldInterfaces.count) old interfaces ignored, \(waiting.count) awaited",
                metadata: ["EVENT": "ready", "KIND": .string(kind.name)])
        }
    }

    /// The pipeline's counters at exit, as one journal line with the JSON snapshot in `SNAPSHOT=`.
    private func logSnapshot() {
        guard let pipeline = self.monitor?.pipeline else { return }
        let snapshot = pipeline.snapshot()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = (try? encoder.encode(snapshot)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        self.logger.notice(
            "Pipeline at exit: \(snapshot.statusSummary())", metadata: ["EVENT": "snapshot", "SNAPSHOT": .string(json)])
    }

    /// Statement 22: every `Ethernet*` interface present now is old: brought down (over netlink) and ignored for
    /// the life of the process. Failures are warnings.
    private func bringDownOldInterfaces(_ inventory: LinkInventory, _ requester: NetlinkRequester) -> Set<Int32> {
        var old: Set<Int32> = []
        for interface in inventory.links where interface.name.hasPrefix("Ethernet") {
            old.insert(interface.index)
            self.oldInterfaceNames.insert(interface.name.string)
            do {
                try requester.setLinkDown(ifindex: interface.index)
                self.logger.notice(
                    "Old interface \"\(interface.name.escaped)\" brought down and ignored from now on",
                    metadata: [
                        "PORT": .string(interface.name.escaped), "IFINDEX": "\(interface.index)",
                        "EVENT": "old_interface",
                    ])
            } catch {
                self.logger.warning(
                    "Cannot bring old interface \"\(interface.name.escaped)\" down: \(error), ignoring",
                    metadata: [
                        "PORT": .string(interface.name.escaped), "IFINDEX": "\(interface.index)",
                        "EVENT": "old_interface",
                    ])
            }
        }
        return old
    }

    /// Ends a stop by `signal` once stream clients have their final `shutdown` event and their connections are
    /// closed cleanly (at most a second for each step).
    private func exitAfterStreams(signal number: Int32) {
        let drainable = self.drainable
        let notifier = self.notifier
        self.events.afterSubscribersLeave(timeoutMs: 1000) {
            let group = DispatchGroup()
            for worker in drainable {
                group.enter()
                worker.drain(timeoutMs: 1000) { group.leave() }
            }
            // Not the main queue: a notify socket nobody reads can hold it in sd_notify (STOPPING=1).
            group.notify(queue: .global()) { Self.exitStopped(signal: number, underSystemd: notifier.isConnected) }
        }
    }

    /// The end of a stop by `SIGTERM` or `SIGINT`, once everything is written. Under systemd: status 0, a clean
    /// stop. Without systemd (SONiC's swss container, under supervisord): death by that signal, as SONiC's own
    /// portsyncd dies, having left the signal's default action in place. supervisord counts status 0 as an
    /// expected exit, and SONiC's critical-process listener acts only on an unexpected one, so an exit 0 would
    /// leave the container running without portsyncd. (A stop that supervisord asked for is a stop whatever
    /// the status.)
    private static func exitStopped(signal number: Int32, underSystemd: Bool) -> Never {
        guard !underSystemd else { exit(0) }
        signal(number, SIG_DFL)
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        sigaddset(&unblocked, number)
        pthread_sigmask(SIG_UNBLOCK, &unblocked, nil)
        raise(number)
        // Still here: PID 1 of a PID namespace is not killed by its own signals. The shell's status for it.
        _exit(128 + number)
    }

    private func fatal(_ message: String) -> Never {
        self.logger.critical("\(message)", metadata: ["EVENT": "fatal"])
        self.notifier.status("failed: \(message)")
        exit(1)
    }

    // MARK: SONiC under a running daemon

    /// How often the watcher looks at APPL_DB's `PortConfigDone` and `LOGGER|portsyncd`: a flush or a
    /// `swssloglevel` is acted on within this (plus one round trip).
    static let sonicWatchIntervalMs = 500

    /// Statement 34: CONFIG_DB `LOGGER|portsyncd` sets the level (SONiC's names) and, where it means something, the
    /// output. A level SONiC does not know is refused with a warning, the current level kept. Any queue.
    private func applyLogSettings(level sonicLevel: String?, output: String?) {
        if let sonicLevel {
            if let name = SonicLogLevel.level(fromSonic: sonicLevel), let level = Logger.Level(rawValue: name) {
                if self.logLevel.level != level {
                    // Said before a raise (so it is seen) and after a lowering (so it is seen too).
                    let line = "Log level \(name) (LOGLEVEL=\(sonicLevel) in CONFIG_DB LOGGER|portsyncd)"
                    let metadata: Logger.Metadata = ["EVENT": "log_level", "LOGLEVEL": .string(sonicLevel)]
                    if level > self.logLevel.level {
                        self.logger.notice("\(line)", metadata: metadata)
                        self.logLevel.level = level
                    } else {
                        self.logLevel.level = level
                        self.logger.notice("\(line)", metadata: metadata)
                    }
                }
            } else {
                self.logger.warning(
                    "CONFIG_DB LOGGER|portsyncd has LOGLEVEL=\(sonicLevel.debugDescription), which SONiC does not know (\(SonicLogLevel.names.joined(separator: ", "))); keeping level \(self.logLevel.level)",
                    metadata: ["EVENT": "log_level_refused", "LOGLEVEL": .string(sonicLevel)])
            }
        }
        guard let output else { return }
        let destination: LogDestination?
        switch SonicLogLevel.Output(rawValue: output) {
        case .syslog: destination = nil
        case .stdout: destination = .standardOutput
        case .stderr: destination = .standardError
        case nil:
            self.logger.warning(
                "CONFIG_DB LOGGER|portsyncd has LOGOUTPUT=\(output.debugDescription), which SONiC does not know (SYSLOG, STDOUT, STDERR); output unchanged",
                metadata: ["EVENT": "log_level_refused", "LOGOUTPUT": .string(output)])
            return
        }
        if self.logLevel.destination != destination {
            self.logLevel.destination = destination
            self.logger.notice(
                "Log output \(output) (LOGOUTPUT in CONFIG_DB LOGGER|portsyncd)",
                metadata: ["EVENT": "log_level", "LOGOUTPUT": .string(output)])
        }
    }

    /// Statement 33: APPL_DB lost `PortConfigDone` under a running daemon (swss restarted, `config reload`, Redis
    /// restarted empty): SONiC's cold start again, in this process. A new old-interface snapshot (the interfaces
    /// present now are the ones syncd is about to replace), the CONFIG_DB copy, `PortConfigDone`, STATE_DB rows of
    /// the ports not synced from now on deleted, and `PortInitDone` once every configured port is seen again.
    /// Port queue only.
    private func applDBFlushed() {
        dispatchPrecondition(condition: .onQueue(self.portQueue))
        guard self.ready, !self.shuttingDown, !self.resyncingCold, let writer = self.writer,
            let monitor = self.monitor, let databases = self.databases
        else { return }
        self.resyncingCold = true
        defer { self.resyncingCold = false }
        do {
            let client = try RedisBlockingClient(unixSocket: databases.unixSocketPath ?? "", timeoutMs: 10_000)
            let schema = SonicSchema(databases: databases)
            let startup = SonicStartup(client: client, schema: schema, logger: self.logger)
            // Asked again here: the watcher's look and this one are not one moment.
            guard !(try startup.applPresence().configDone.isPresent) else {
                self.logger.notice(
                    "PortConfigDone is back in APPL_DB: not a flush", metadata: ["EVENT": "appl_db_flushed"])
                return
            }
            self.logger.warning(
                "APPL_DB has no PortConfigDone any more (swss restarted, APPL_DB flushed or Redis restarted empty): running SONiC's cold start again",
                metadata: [
                    "EVENT": "appl_db_flushed", "KIND": "cold",
                    "REASON": "PortConfigDone gone from APPL_DB while running",
                ])
            let started = MonotonicClock.nowMicroseconds()
            let requester = try NetlinkRequester()
            let inventory = LinkInventory(dump: try requester.dumpLinks())
            let scripts = try startup.loadScripts()
            let switchType = try startup.switchType()
            let ports = try startup.readConfiguredPorts()
            let bringDown = switchType != "dpu" && !self.config.sonic.adoptExistingInterfaces
            try startup.copyToApplDB(ports, scripts: scripts)
            var waiting = Set(ports.map(\.name))
            waiting.subtract(try startup.portsAlreadyConsumed(ports.map(\.name)))
            let kernel = inventory.names.filter { !(bringDown && $0.hasPrefix("Ethernet")) }
            if inventory.isComplete {
                for port in try startup.deleteStaleStateRows(keeping: kernel) {
                    self.logger.notice(
                        "Port \(port) has a STATE_DB row but no interface this process syncs (cold start after a flush); deleted it",
                        metadata: ["PORT": .string(port), "EVENT": "stale_state_row", "KIND": "cold"])
                }
            }
            self.oldInterfaceNames = []
            let old = bringDown ? self.bringDownOldInterfaces(inventory, requester) : []
            monitor.pipeline.replaceOldInterfaces(old)
            self.configured = Set(ports.map(\.name))
            self.channels.setLinkSpeeds(Self.speeds(ports))
            self.startKind = .cold
            writer.restartCold(
                waiting: waiting, forgetting: Set(inventory.links.filter { old.contains($0.index) }.map(\.name.string)))
            self.telemetry.refresh()
            self.logger.notice(
                "Cold start after the flush done in \((MonotonicClock.nowMicroseconds() - started) / 1000) ms: \(ports.count) ports copied, PortConfigDone count=\(ports.count), \(old.count) old interfaces ignored, \(waiting.count) awaited",
                metadata: ["EVENT": "port_config_done", "KIND": "cold"])
        } catch {
            self.logger.error(
                "The cold start after the APPL_DB flush failed: \(error); trying again at the next look",
                metadata: ["EVENT": "appl_db_flushed"])
            self.watcher?.rearm()
        }
    }

    // MARK: Reports (port queue)

    /// The port path's part of the daemon's report. Port queue only.
    private func portPathReport() -> DaemonReport {
        dispatchPrecondition(condition: .onQueue(self.portQueue))
        var report = DaemonReport()
        guard let writer = self.writer, let monitor = self.monitor else {
            report.phase = self.shuttingDown ? .stopping : .starting
            report.startupStatus = self.startupStatus
            report.startKind = self.startKind?.name
            return report
        }
        report.phase = self.shuttingDown ? .stopping : (self.ready ? .ready : .syncing)
        report.startKind = self.startKind?.name
        report.portsSynced = writer.state.synced.count
        report.portsConfigured = self.configured.count
        report.portsIgnored = self.oldInterfaceNames.count
        var configuredPorts = Dictionary(uniqueKeysWithValues: PortSyncReason.allCases.map { ($0.rawValue, 0) })
        for port in self.configured {
            configuredPorts[
                writer.state.syncState(of: port, oldInterfaces: self.oldInterfaceNames).rawValue, default: 0] += 1
        }
        report.configuredPorts = configuredPorts
        report.portsAwaited = writer.state.initDone == .written ? 0 : writer.state.waiting.count
        report.redis = writer.connectionState
        report.redisConnected = writer.isConnected
        let now = MonotonicClock.nowMicroseconds()
        writer.checkStall(now: now)
        report.redisOldestWriteMicros = writer.oldestWaitMicros(now: now)
        report.redisStalled = writer.stall.stalledSince != nil
        report.redisStalls = writer.stall.episodes
        report.pipeline = monitor.pipeline.snapshot()
        if self.config.pipeline.dropPolicy == "adaptive" { report.adaptive = monitor.pipeline.adaptiveThresholds }
        report.lastError = writer.lastError ?? monitor.lastError ?? monitor.pipeline.lastError
        return report
    }

    /// CONFIG_DB's `speed` of each port (Mb/s, as SONiC writes it), for the `utilisation` rules.
    static func speeds(_ ports: [(name: String, fields: [(field: [UInt8], value: [UInt8])])]) -> [String: Double] {
        var speeds: [String: Double] = [:]
        for port in ports {
            guard let field = port.fields.first(where: { $0.field == Array("speed".utf8) }),
                let text = String(validating: field.value, as: UTF8.self), let mbps = Double(text), mbps > 0,
                mbps.isFinite
            else { continue }
            speeds[port.name] = mbps
        }
        return speeds
    }

    /// A sample before the port path exists.
    static func emptySample() -> PortPathSample {
        PortPathSample(
            takenAtMicros: MonotonicClock.nowMicroseconds(), eventsAccepted: 0, dropped: 0,
            handoffWait: LatencyHistogram(), writerLatency: LatencyHistogram())
    }

    /// What the analytics worker folds in. Port queue only.
    private func portPathSample() -> PortPathSample {
        dispatchPrecondition(condition: .onQueue(self.portQueue))
        guard let writer = self.writer, let pipeline = self.monitor?.pipeline else { return Self.emptySample() }
        return PortPathSample(
            takenAtMicros: MonotonicClock.nowMicroseconds(), eventsAccepted: pipeline.messages.candidatesSent,
            dropped: pipeline.snapshot().handoff.droppedTotal, handoffWait: pipeline.handoffWait,
            writerLatency: writer.latency)
    }

    // MARK: Queries (any queue; answered by the owning queues)

    public func report() async -> DaemonReport {
        await self.telemetry.report()
    }

    public func ports() async -> [PortView] {
        let states = await self.events.portStates()
        let (synced, wanted, configured, reasons) = await withCheckedContinuation { result in
            self.portQueue.async {
                let state = self.writer?.state
                let wanted = Set(state?.wanted.compactMap { $0.value == .deleted ? nil : $0.key } ?? [])
                result.resume(returning: (state?.synced ?? [], wanted, self.configured, self.syncReasons()))
            }
        }
        return PortView.merge(
            states: states, synced: synced, wanted: wanted, configured: configured, reasons: reasons)
    }

    /// The sync state of every port the port path knows of: configured, written, or ignored. Port queue only.
    private func syncReasons() -> [String: PortSyncReason] {
        dispatchPrecondition(condition: .onQueue(self.portQueue))
        guard let state = self.writer?.state else { return [:] }
        var names = self.configured.union(self.oldInterfaceNames).union(state.synced)
        for (port, wanted) in state.wanted where wanted != .deleted { names.insert(port) }
        var reasons: [String: PortSyncReason] = [:]
        for name in names { reasons[name] = state.syncState(of: name, oldInterfaces: self.oldInterfaceNames) }
        return reasons
    }

    public func trace(_ id: UInt64) async -> [StageEvent] {
        await withCheckedContinuation { result in
            self.portQueue.async { result.resume(returning: self.monitor?.pipeline.ring.events(trace: id) ?? []) }
        }
    }

    // MARK: Reload (config queue)

    /// Applies a valid new configuration to every worker; the port path's part atomically (one `sync` block).
    private func apply(old: Config, new: Config) {
        // Only a change of `[log] level` sets the level: CONFIG_DB's `LOGGER|portsyncd` may have set another since.
        if old.log.level != new.log.level, let level = Logger.Level(rawValue: new.log.level) {
            self.logLevel.level = level
        }
        self.supervisor.update(SupervisorSettings(new.supervisor))
        self.telemetry.update(new)
        self.analytics.update(new)
        self.thresholds.update(new)
        self.channels.update(ChannelSettings(new), workers: new.channels.workers)
        for worker in self.reloadable { worker.update(new) }
        self.portQueue.sync {
            self.config = new
            guard let writer = self.writer else { return }
            writer.maxInFlight = new.pipeline.writerMaxInFlight
            writer.setStallThreshold(milliseconds: new.redis.stallThresholdMs)
            writer.maxRetries = new.pipeline.sendMaxRetries
            writer.retryDelayMicros = new.pipeline.sendRetryDelayUs
        }
    }

    // MARK: Signals and watchdog (main queue)

    private func installSignalHandlers() {
        for number in [SIGTERM, SIGINT, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .main)
            source.setEventHandler { [unowned self] in
                if number == SIGHUP {
                    self.configWorker.reloadOnSignal()
                } else {
                    self.shutDown(signal: number)
                }
            }
            source.resume()
            self.signalSources.append(source)
        }
    }

    private func shutDown(signal number: Int32) {
        if self.stopping {
            self.logger.warning("Second stop signal: exiting at once", metadata: ["EVENT": "stop"])
            exit(1)
        }
        self.stopping = true
        self.supervisor.beginShutdown()
        self.telemetry.beginShutdown()
        self.events.shutDown(reason: "stopping on signal \(number)")
        self.notifier.stopping(status: "stopping: draining the hand-off and Redis writes")
        self.logger.notice("Stopping on signal \(number): draining pending Redis writes", metadata: ["EVENT": "stop"])
        self.portQueue.async { [self] in
            let timeoutMs = self.config.daemon.gracefulShutdownTimeoutMs
            // systemd's stop timeout must cover the drain: ask for it, with a second to exit in.
            self.notifier.extendTimeout(microseconds: UInt64(timeoutMs + 1000) * 1000)
            self.shuttingDown = true
            self.monitor?.stop()
            guard let writer = self.writer, let pipeline = self.monitor?.pipeline else {
                Self.exitStopped(signal: number, underSystemd: self.notifier.isConnected)
            }
            pipeline.pump()
            writer.endOfBatch()
            func exitWhenDrained() {
                writer.whenIdle {
                    guard pipeline.isDrained else {
                        pipeline.pump()
                        writer.endOfBatch()
                        return exitWhenDrained()
                    }
                    self.logger.notice("Every accepted update is in Redis; exiting", metadata: ["EVENT": "stop"])
                    self.logSnapshot()
                    // Nothing more to write: a Redis that goes away while the streams close is not an error.
                    writer.stop()
                    self.exitAfterStreams(signal: number)
                }
            }
            exitWhenDrained()
            self.portQueue.asyncAfter(deadline: .now() + .milliseconds(timeoutMs)) {
                let unwritten =
                    pipeline.queuedCount + (writer.isConnected ? writer.pendingCount : writer.state.wanted.count)
                self.logger.error(
                    "Shutdown timeout (\(timeoutMs) ms): \(unwritten) port updates may not be in Redis",
                    metadata: ["EVENT": "stop"])
                self.logSnapshot()
                self.exitAfterStreams(signal: number)
            }
        }
    }
}

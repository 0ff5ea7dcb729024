import CMnl
import Dispatch
import Foundation
import Glibc
public import Logging
public import PortSyncCore

/// The portsyncd process: start-up, the port path, systemd, signals and reload, wired together.
///
/// ```
///   main queue                      port queue (serial: the whole port path)
///   ──────────                      ─────────────────────────────────────────
///   SIGTERM/SIGINT/SIGHUP sources   start-up (blocking Redis, netlink dump, CONFIG_DB copy)
///   watchdog timer                  LinkMonitor: netlink read source → PortPipeline stages
///                                   PortStateWriter: hiredis async read/write sources
///                                   status timer → STATUS=
/// ```
/// Only `Sendable` values cross between the two queues.
public final class Daemon: @unchecked Sendable {
    private let configPath: String
    private let logLevel: LogLevelBox
    private let logger: Logger
    private let notifier = SystemdNotifier()
    private let portQueue = DispatchQueue(label: "portsyncd.port")

    // Main queue only.
    private var signalSources: [any DispatchSourceSignal] = []
    private var watchdogTimer: (any DispatchSourceTimer)?
    private var configWatcher: ConfigWatcher?
    private var stopping = false

    // Port queue only.
    private var config: Config
    private var writer: PortStateWriter?
    private var monitor: LinkMonitor?
    private var statusTimer: (any DispatchSourceTimer)?
    private var startupDelayMs: Int
    private var ready = false
    private var startupStatus = "starting"
    private var lastAccepted = 0
    private var lastStatusTime = MonotonicClock.nowMicroseconds()
    private var eventsPerSecond = 0.0
    private var reloadError: String?

    public init(config: Config, configPath: String, logLevel: LogLevelBox, logger: Logger) {
        self.config = config
        self.configPath = configPath
        self.logLevel = logLevel
        self.logger = logger
        self.startupDelayMs = config.redis.reconnectInitialMs
    }

    /// Runs the daemon; never returns.
    public func run() -> Never {
        signal(SIGPIPE, SIG_IGN)  // hiredis writes to a socket that Redis may have closed
        for stray in [SIGUSR1, SIGUSR2] { signal(stray, SIG_IGN) }
        self.installSignalHandlers()
        self.startWatchdog()
        let checkIntervalMs = self.config.daemon.configCheckIntervalMs  // read before the port queue runs
        DispatchQueue.main.async { self.watchConfig(checkIntervalMs: checkIntervalMs) }
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
        try startup.linkLogger()
        let switchType = try startup.switchType()
        let mode = try startup.decideStartMode()
        self.logger.notice(
            "Starting \(mode) with switch_type \(switchType), Redis at \(databases.unixSocketPath ?? "?")",
            metadata: ["EVENT": "start"])

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
        var oldInterfaces: Set<Int32> = []
        if case .cold = mode {
            try startup.copyToApplDB(ports, scripts: scripts)
            self.logger.notice(
                "Copied \(ports.count) ports to APPL_DB; PortConfigDone count=\(ports.count)",
                metadata: ["EVENT": "port_config_done"])
            waiting.subtract(try startup.portsAlreadyConsumed(ports.map(\.name)))
            if switchType != "dpu" && !self.config.sonic.adoptExistingInterfaces {
                oldInterfaces = self.bringDownOldInterfaces(requester)
            }
        }

        let writer = PortStateWriter(
            queue: self.portQueue, schema: schema, socketPath: databases.unixSocketPath ?? "",
            scripts: scripts, state: PortSyncState(waiting: waiting),
            reconnectInitialMs: self.config.redis.reconnectInitialMs,
            reconnectMaxMs: self.config.redis.reconnectMaxMs, logger: self.logger)
        writer.maxInFlight = self.config.pipeline.writerMaxInFlight
        writer.maxRetries = self.config.pipeline.sendMaxRetries
        writer.retryDelayMicros = self.config.pipeline.sendRetryDelayUs
        let pipeline = PortPipeline(
            queue: self.portQueue, writer: writer, settings: self.config.pipeline, oldInterfaces: oldInterfaces,
            logger: self.logger)
        let monitor = LinkMonitor(
            queue: self.portQueue, socket: events, requester: requester, pipeline: pipeline, writer: writer,
            logger: self.logger)
        writer.onFatal = { [self] message in self.fatal(message) }
        self.writer = writer
        self.monitor = monitor
        writer.start()
        for datagram in dump {
            datagram.withUnsafeBytes { raw in _ = pipeline.process(datagram: raw) }
        }
        writer.endOfBatch()
        monitor.start()
        self.startStatusTimer()
        writer.whenIdle { [self] in
            self.ready = true
            let status = self.statusLine()
            self.notifier.ready(status: status)
            self.logger.notice(
                "Ready: \(ports.count) configured ports, \(oldInterfaces.count) old interfaces ignored, \(waiting.count) awaited",
                metadata: ["EVENT": "ready"])
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
    private func bringDownOldInterfaces(_ requester: NetlinkRequester) -> Set<Int32> {
        var old: Set<Int32> = []
        for interface in KernelInterfaces.list() where interface.name.hasPrefix("Ethernet") {
            old.insert(interface.index)
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

    private func fatal(_ message: String) -> Never {
        self.logger.critical("\(message)", metadata: ["EVENT": "fatal"])
        self.notifier.status("failed: \(message)")
        exit(1)
    }

    // MARK: Status (port queue)

    private func startStatusTimer() {
        let timer = DispatchSource.makeTimerSource(queue: self.portQueue)
        let interval = self.config.daemon.statusIntervalMs
        timer.schedule(deadline: .now() + .milliseconds(interval), repeating: .milliseconds(interval))
        timer.setEventHandler { [unowned self] in
            self.writer?.checkIdle()
            self.monitor?.pollForMissedEvents()
            self.notifier.status(self.statusLine())
        }
        self.statusTimer = timer
        timer.resume()
    }

    private func statusLine() -> String {
        guard let writer = self.writer, let monitor = self.monitor else { return self.startupStatus }
        let now = MonotonicClock.nowMicroseconds()
        let elapsed = Double(now - self.lastStatusTime) / 1_000_000
        if elapsed >= 0.5 {
            let accepted = Int(monitor.pipeline.messages.candidatesSent)
            self.eventsPerSecond = Double(accepted - self.lastAccepted) / elapsed
            self.lastAccepted = accepted
            self.lastStatusTime = now
        }
        var parts = [
            self.ready ? "ready" : "syncing",
            "\(writer.state.synced.count) ports synced",
            "\(Int(self.eventsPerSecond.rounded())) events/s",
            "redis \(writer.connectionState)",
        ]
        if writer.state.initDone != .written { parts.append("awaiting \(writer.state.waiting.count) ports") }
        parts.append(monitor.pipeline.snapshot().statusSummary())
        if let error = self.reloadError ?? writer.lastError ?? monitor.lastError ?? monitor.pipeline.lastError {
            parts.append("last error: \(error)")
        }
        return parts.joined(separator: ", ")
    }

    // MARK: Signals and watchdog (main queue)

    private func installSignalHandlers() {
        for number in [SIGTERM, SIGINT, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .main)
            source.setEventHandler { [unowned self] in
                if number == SIGHUP { self.reload() } else { self.shutDown(signal: number) }
            }
            source.resume()
            self.signalSources.append(source)
        }
    }

    /// `WATCHDOG=1` every `WATCHDOG_USEC / 2`, when systemd asks for it (honouring `WATCHDOG_PID`).
    private func startWatchdog() {
        guard let usec = self.notifier.watchdogMicroseconds else { return }
        let timer = DispatchSource.makeTimerSource(queue: .main)
        let interval = DispatchTimeInterval.microseconds(Int(usec / 2))
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [notifier] in notifier.watchdog() }
        self.watchdogTimer = timer
        timer.resume()
    }

    private func shutDown(signal number: Int32) {
        if self.stopping {
            self.logger.warning("Second stop signal: exiting at once", metadata: ["EVENT": "stop"])
            exit(1)
        }
        self.stopping = true
        self.notifier.stopping(status: "stopping: flushing Redis writes")
        self.logger.notice("Stopping on signal \(number): flushing pending Redis writes", metadata: ["EVENT": "stop"])
        self.portQueue.async { [self] in
            let timeoutMs = self.config.daemon.shutdownTimeoutMs
            self.statusTimer?.cancel()
            self.monitor?.stop()
            guard let writer = self.writer, let pipeline = self.monitor?.pipeline else { exit(0) }
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
                    exit(0)
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
                exit(0)
            }
        }
    }

    /// Reloads when the file changes (inotify on its directory, and a periodic check), as SIGHUP does.
    private func watchConfig(checkIntervalMs: Int) {
        let watcher = ConfigWatcher(path: self.configPath, queue: .main) { [unowned self] in
            self.logger.notice("The configuration file changed; reloading", metadata: ["EVENT": "config_changed"])
            self.reload()
        }
        if let problem = watcher.start(checkIntervalMs: checkIntervalMs) {
            self.logger.warning(
                "Cannot watch \(self.configPath) with inotify (\(problem)); relying on the periodic check and SIGHUP",
                metadata: ["EVENT": "config_watch"])
        }
        self.configWatcher = watcher
    }

    /// SIGHUP: read the file again; apply what can change at run time, report what needs a restart, and keep
    /// the old configuration if the new one is invalid.
    private func reload() {
        self.configWatcher?.markSeen()
        self.notifier.reloading()
        let newConfig: Config
        do {
            newConfig = try ConfigFile.load(self.configPath)
        } catch {
            self.logger.error(
                "Reload refused, keeping the old configuration: \(error)",
                metadata: [
                    "EVENT": "reload_failed", "CONFIG_FILE": .string(error.file), "CONFIG_LINE": "\(error.line)",
                ])
            self.portQueue.async { [self] in
                self.reloadError = "config: \(error)"
                self.notifier.ready(status: self.statusLine())
            }
            return
        }
        self.portQueue.async { [self] in
            let old = self.config
            let changed = Config.schema.filter { $0.tomlValue(in: old) != $0.tomlValue(in: newConfig) }
                .map { "\($0.section).\($0.key)" }
            if let level = Logger.Level(rawValue: newConfig.log.level) { self.logLevel.level = level }
            let applied = changed.filter { $0 == "log.level" || $0 == "daemon.status_interval_ms" }
            let restart = changed.filter { !applied.contains($0) }
            self.config = newConfig
            self.reloadError = nil
            if applied.contains("daemon.status_interval_ms") {
                self.statusTimer?.cancel()
                self.startStatusTimer()
            }
            let summary = changed.isEmpty ? "no change" : "changed " + changed.joined(separator: ", ")
            let needsRestart =
                restart.isEmpty ? "" : "; needs a restart to take effect: " + restart.joined(separator: ", ")
            self.logger.notice("Configuration reloaded: \(summary)\(needsRestart)", metadata: ["EVENT": "reloaded"])
            self.notifier.ready(status: self.statusLine())
        }
    }
}

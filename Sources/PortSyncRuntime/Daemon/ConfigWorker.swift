import Dispatch
import Foundation
import Logging
import PortSyncCore

/// Hot reload, as an important worker on its own queue: SIGHUP, a change to the file (inotify on its directory,
/// `IN_CLOSE_WRITE` and `IN_MOVED_TO`, so editors' atomic saves are seen) and a periodic check of mtime and content.
///
/// Parse → validate → diff → apply: a valid file is applied to every worker (`apply`), and the journal lists the
/// changed keys, those applied and those that need a restart. An invalid file, or one that cannot be read, keeps
/// the running configuration: the journal gives `file:line:col` (or the path) and the reason, `STATUS=` shows it,
/// and `config_last_reload_successful` is 0 until a valid file is loaded. Nothing at the default path means the
/// defaults, as at start-up. systemd sees `RELOADING=1` (with `MONOTONIC_USEC=`) then `READY=1` either way.
final class ConfigWorker: SupervisedWorker, @unchecked Sendable {
    let name = "config"
    let criticality = WorkerCriticality.important
    let queue = DispatchQueue(label: "portsyncd.config")
    private let path: String
    /// Whether nothing at `path` means the defaults (the default path) rather than an error.
    private let missingMeansDefaults: Bool
    private let notifier: SystemdNotifier
    private let logger: Logger
    private let apply: (Config, Config) -> Void
    private let reported: (DaemonReport.Reload) -> Void
    /// Each reload's outcome as an event (`config_reloaded`).
    var onReload: (BusEventData.ConfigReloaded) -> Void = { _ in }

    // Config queue only.
    private var config: Config
    private var watcher: ConfigWatcher?
    private var state: DaemonReport.Reload
    private var pendingRestart: Set<String> = []
    /// The configuration the process started with, to tell which pending-restart keys are back to it.
    private let startConfig: Config

    /// - Parameters:
    ///   - apply: applies a valid new configuration (old, new) to the workers; runs on the config queue.
    ///   - reported: the outcome of each reload, for telemetry.
    init(
        path: String, missingMeansDefaults: Bool, config: Config, notifier: SystemdNotifier, logger: Logger,
        apply: @escaping (Config, Config) -> Void, reported: @escaping (DaemonReport.Reload) -> Void
    ) {
        self.path = path
        self.missingMeansDefaults = missingMeansDefaults
        self.config = config
        self.startConfig = config
        self.notifier = notifier
        self.logger = logger
        self.apply = apply
        self.reported = reported
        self.state = DaemonReport.Reload(lastSuccessUnixSeconds: Date().timeIntervalSince1970)
    }

    func start(_ context: WorkerContext) throws {
        self.startWatcher()
    }

    private func startWatcher() {
        let watcher = ConfigWatcher(path: self.path, queue: self.queue) { [unowned self] in
            self.logger.notice("The configuration file changed; reloading", metadata: ["EVENT": "config_changed"])
            self.reload()
        }
        if let problem = watcher.start(checkIntervalMs: self.config.daemon.configCheckIntervalMs) {
            self.logger.warning(
                "Cannot watch \(self.path) with inotify (\(problem)); relying on the periodic check and SIGHUP",
                metadata: ["EVENT": "config_watch"])
        }
        self.watcher = watcher
    }

    func stop() {
        self.watcher?.stop()
        self.watcher = nil
    }

    /// SIGHUP (`systemctl reload`).
    func reloadOnSignal() {
        self.queue.async { [self] in self.reload() }
    }

    private func reload() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.watcher?.markSeen()
        self.notifier.reloading()
        defer {
            self.notifier.notify("READY=1")
            self.reported(self.state)
        }
        let loaded: Config?
        do {
            loaded = try ConfigFile.load(self.path, missingMeansDefaults: self.missingMeansDefaults)
        } catch {
            self.state.successful = false
            self.state.error = error.description
            self.onReload(.init(successful: false, error: error.description))
            var metadata: Logger.Metadata = ["EVENT": "reload_failed", "CONFIG_FILE": .string(error.file)]
            if error.line > 0 {
                metadata["CONFIG_LINE"] = "\(error.line)"
                metadata["CONFIG_COLUMN"] = "\(error.column)"
            }
            self.logger.error("Reload refused, keeping the old configuration: \(error)", metadata: metadata)
            return
        }
        if loaded == nil {
            self.logger.notice(
                "No configuration file at \(self.path); the defaults are in use",
                metadata: ["EVENT": "config_defaults", "CONFIG_FILE": .string(self.path)])
        }
        self.applied(loaded ?? Config())
    }

    /// Applies a valid configuration read by `reload`, and reports it.
    private func applied(_ newConfig: Config) {
        let old = self.config
        let changed = newConfig.changedKeys(from: old)
        let applied = changed.filter { Config.appliedOnReload.contains($0) }
        let restart = changed.filter { !Config.appliedOnReload.contains($0) }
        self.config = newConfig
        self.apply(old, newConfig)
        if newConfig.daemon.configCheckIntervalMs != old.daemon.configCheckIntervalMs, self.watcher != nil {
            self.stop()
            self.startWatcher()
        }
        // Keys that need a restart stay pending until they are back to the values the process started with.
        self.pendingRestart.formUnion(restart)
        self.pendingRestart = self.pendingRestart.filter { key in
            newConfig.changedKeys(from: self.startConfig).contains(key)
        }
        self.state = DaemonReport.Reload(
            successful: true, lastSuccessUnixSeconds: Date().timeIntervalSince1970, error: nil,
            pendingRestart: self.pendingRestart.sorted())
        self.onReload(.init(successful: true, changed: changed, applied: applied, restartNeeded: restart))
        let summary = changed.isEmpty ? "no change" : "changed " + changed.joined(separator: ", ")
        let appliedNow = applied.isEmpty ? "" : "; applied: " + applied.joined(separator: ", ")
        let needsRestart =
            restart.isEmpty ? "" : "; needs a restart to take effect: " + restart.joined(separator: ", ")
        self.logger.notice(
            "Configuration reloaded: \(summary)\(appliedNow)\(needsRestart)",
            metadata: [
                "EVENT": "reloaded", "CHANGED": .string(changed.joined(separator: ",")),
                "APPLIED": .string(applied.joined(separator: ",")),
                "RESTART_NEEDED": .string(restart.joined(separator: ",")),
            ])
    }
}

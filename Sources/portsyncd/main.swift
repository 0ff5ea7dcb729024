import ArgumentParser
import Foundation
import Logging
import PortSyncCore
import PortSyncHTTP
import PortSyncRuntime

/// `portsyncd`: argument parsing and wiring only.
struct PortsyncdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portsyncd",
        abstract: "Keep the kernel's port state in SONiC's Redis databases.",
        discussion: """
            Reads link events from the kernel (NETLINK_ROUTE) and writes port state to Redis in SONiC's schema: \
            CONFIG_DB PORT → APPL_DB PORT_TABLE, PortConfigDone, PortInitDone, STATE_DB PORT_TABLE. \
            Runs under systemd (Type=notify); logs to the journal, or to stderr outside it.
            """,
        version: PortsyncdVersion.string
    )

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The TOML configuration file (only the default may be missing: then the defaults apply).",
            valueName: "path"))
    var config: String = ConfigFile.defaultPath

    @Flag(name: .long, help: "Validate the configuration file and exit: 0 if valid, 1 if not.")
    var checkConfig = false

    func run() throws {
        // The unit names the default path too (`--config /etc/sonic/portsyncd.conf`): it may be missing either way.
        let missingMeansDefaults = self.config == ConfigFile.defaultPath
        let loaded: Config?
        do {
            loaded = try ConfigFile.load(self.config, missingMeansDefaults: missingMeansDefaults)
        } catch {
            FileHandle.standardError.write(Data("portsyncd: invalid configuration: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let config = loaded ?? Config()
        if self.checkConfig {
            let verdict = loaded == nil ? "no such file; the defaults are in use" : "configuration is valid"
            FileHandle.standardError.write(Data("portsyncd: \(self.config): \(verdict)\n".utf8))
            return
        }
        let level = LogLevelBox(Logger.Level(rawValue: config.log.level) ?? .notice)
        let destination = LogDestination.detect()
        LoggingSystem.bootstrap { label in PortsyncLogHandler(label: label, destination: destination, level: level) }
        let logger = Logger(label: "portsyncd")
        if loaded == nil {
            logger.notice(
                "No configuration file at \(self.config); the defaults are in use",
                metadata: ["EVENT": "config_defaults", "CONFIG_FILE": .string(self.config)])
        }
        Daemon(
            config: config, configPath: self.config, missingConfigMeansDefaults: missingMeansDefaults,
            logLevel: level, logger: logger
        ) { daemon in
            config.http.enabled ? [HTTPServer(settings: config.http, daemon: daemon, logger: logger)] : []
        }.run()
    }
}

PortsyncdCommand.main()

/// SONiC's log levels and outputs (swss-common's `Logger`, what `swssloglevel` writes into CONFIG_DB
/// `LOGGER|<daemon>`), and portsyncd's levels (swift-log's names, `[log] level`).
public enum SonicLogLevel {
    /// SONiC's names, most severe first.
    public static let names = ["EMERG", "ALERT", "CRIT", "ERROR", "WARN", "NOTICE", "INFO", "DEBUG"]

    /// portsyncd's level (`critical`, `error`, `warning`, `notice`, `info`, `debug`) for SONiC's `LOGLEVEL`;
    /// nil for a name SONiC does not have. EMERG, ALERT and CRIT all mean `critical`, the most severe level
    /// portsyncd has.
    public static func level(fromSonic name: String) -> String? {
        switch name {
        case "EMERG", "ALERT", "CRIT": "critical"
        case "ERROR": "error"
        case "WARN": "warning"
        case "NOTICE": "notice"
        case "INFO": "info"
        case "DEBUG": "debug"
        default: nil
        }
    }

    /// SONiC's name for one of portsyncd's levels (`trace` is `DEBUG`: SONiC has nothing finer).
    public static func sonicName(forLevel level: String) -> String {
        switch level {
        case "critical": "CRIT"
        case "error": "ERROR"
        case "warning": "WARN"
        case "info": "INFO"
        case "debug", "trace": "DEBUG"
        default: "NOTICE"
        }
    }

    /// SONiC's `LOGOUTPUT` values.
    public enum Output: String, Sendable, Hashable, CaseIterable {
        /// The system log: the journal under systemd; stderr otherwise, which supervisord sends to syslog in
        /// SONiC's swss container (`stderr_logfile=syslog`).
        case syslog = "SYSLOG"
        case stdout = "STDOUT"
        case stderr = "STDERR"
    }
}

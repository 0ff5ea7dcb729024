import CSystemd
import Glibc
public import Logging
import Synchronization

/// Where log records go: the journal (with structured fields) when stderr is connected to journald, else
/// stderr as one line per record.
public enum LogDestination: Sendable, Hashable {
    case journal
    case standardError
    case standardOutput

    /// `journal` if `JOURNAL_STREAM` names the device and inode of our stderr (systemd's documented check);
    /// `sd_journal_sendv` reports success even when no journald listens, so it cannot be used to probe.
    public static func detect() -> LogDestination {
        guard let value = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) else { return .standardError }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else {
            return .standardError
        }
        var info = stat()
        guard fstat(STDERR_FILENO, &info) == 0 else { return .standardError }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode ? .journal : .standardError
    }
}

/// A swift-log handler for portsyncd: journal fields or stderr lines.
///
/// Metadata keys become journal fields as they are (`PORT`, `IFINDEX`, `EVENT`, `TRACE_ID`, `WORKER`, …), so
/// `journalctl -u portsyncd PORT=Ethernet0` finds every line about a port. `SYSLOG_IDENTIFIER=portsyncd` and
/// `PRIORITY` are always set.
public struct PortsyncLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let destination: LogDestination
    private let levelBox: LogLevelBox

    public init(label: String, destination: LogDestination, level: LogLevelBox) {
        self.label = label
        self.destination = destination
        self.levelBox = level
        self.logLevel = .trace
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let current = self.levelBox.current
        guard event.level >= current.level else { return }
        var merged = self.metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        switch current.destination ?? self.destination {
        case .journal: self.sendToJournal(event.level, event.message.description, merged, event.source)
        case .standardError: self.writeLine(event.level, event.message.description, merged, to: STDERR_FILENO)
        case .standardOutput: self.writeLine(event.level, event.message.description, merged, to: STDOUT_FILENO)
        }
    }

    private func sendToJournal(_ level: Logger.Level, _ message: String, _ metadata: Logger.Metadata, _ source: String)
    {
        var fields = [
            "MESSAGE=" + message,
            "PRIORITY=" + String(Self.syslogPriority(level)),
            "SYSLOG_IDENTIFIER=portsyncd",
            "LOGGER=" + self.label,
        ]
        for (key, value) in metadata {
            let name = Self.journalFieldName(key)
            guard !name.isEmpty else { continue }
            fields.append(name + "=" + value.description)
        }
        var storage = fields.map { Array($0.utf8) }
        var vectors: [iovec] = []
        vectors.reserveCapacity(storage.count)
        for index in storage.indices {
            storage[index].withUnsafeMutableBytes { raw in
                vectors.append(iovec(iov_base: raw.baseAddress, iov_len: raw.count))
            }
        }
        // The iovecs point into `storage`, which stays alive (and unmoved) until after this call.
        withExtendedLifetime(storage) {
            _ = sd_journal_sendv(vectors, Int32(vectors.count))
        }
    }

    private func writeLine(
        _ level: Logger.Level, _ message: String, _ metadata: Logger.Metadata, to descriptor: Int32
    ) {
        var line = Self.timestamp() + " " + Self.levelName(level) + " " + message
        for key in metadata.keys.sorted() {
            line += " " + key + "=" + (metadata[key]?.description ?? "")
        }
        line += "\n"
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let written = write(descriptor, base + offset, raw.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                offset += written
            }
        }
    }

    /// syslog priorities: notice is 5, the level SONiC logs link messages at.
    static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    static func levelName(_ level: Logger.Level) -> String {
        switch level {
        case .trace: "trace"
        case .debug: "debug"
        case .info: "info"
        case .notice: "notice"
        case .warning: "warning"
        case .error: "error"
        case .critical: "critical"
        }
    }

    /// A journal field name: upper-case letters, digits and `_`, not starting with `_` or a digit.
    static func journalFieldName(_ key: String) -> String {
        var name = ""
        for scalar in key.unicodeScalars {
            switch scalar {
            case "a"..."z": name += String(scalar).uppercased()
            case "A"..."Z", "0"..."9", "_": name.unicodeScalars.append(scalar)
            default: name.append("_")
            }
        }
        while name.first == "_" || name.first?.isNumber == true { name.removeFirst() }
        return String(name.prefix(64))
    }

    static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var time = tm()
        var seconds = spec.tv_sec
        gmtime_r(&seconds, &time)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(time.tm_year + 1900, 4))-\(pad(time.tm_mon + 1, 2))-\(pad(time.tm_mday, 2))T"
            + "\(pad(time.tm_hour, 2)):\(pad(time.tm_min, 2)):\(pad(time.tm_sec, 2)).\(pad(Int32(spec.tv_nsec / 1_000_000), 3))Z"
    }
}

/// The process's log level and output, shared by every handler so a config reload or a change of CONFIG_DB
/// `LOGGER|portsyncd` applies at once. A `Mutex` guards them: they are read on every log call from any queue.
public final class LogLevelBox: Sendable {
    private struct Settings {
        var level: Logger.Level
        /// Overrides the destination found at start (`LOGOUTPUT`); nil: as found.
        var destination: LogDestination?
    }

    private let settings: Mutex<Settings>

    public init(_ level: Logger.Level) {
        self.settings = Mutex(Settings(level: level, destination: nil))
    }

    public var level: Logger.Level {
        get { self.settings.withLock { $0.level } }
        set { self.settings.withLock { $0.level = newValue } }
    }

    /// Where records go instead of the destination found at start; nil: that one.
    public var destination: LogDestination? {
        get { self.settings.withLock { $0.destination } }
        set { self.settings.withLock { $0.destination = newValue } }
    }

    /// Both at once (one lock for every log call).
    var current: (level: Logger.Level, destination: LogDestination?) {
        self.settings.withLock { ($0.level, $0.destination) }
    }
}

import CSystemd
import Glibc

/// Tells systemd about the service (`sd_notify`): READY, STATUS, WATCHDOG, RELOADING, STOPPING.
///
/// Without `NOTIFY_SOCKET` every call is a no-op, so the daemon runs the same outside systemd. The environment is
/// never unset (`unset_environment` = 0): watchdog pings must keep working after READY (statement 25).
public struct SystemdNotifier: Sendable {
    public init() {}

    /// Sends `state` (newline-separated `KEY=value` assignments). Returns whether a socket received it.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        sd_notify(0, state) > 0
    }

    public func ready(status: String) { self.notify("READY=1\nSTATUS=\(Self.clean(status))") }
    public func status(_ status: String) { self.notify("STATUS=\(Self.clean(status))") }
    public func watchdog() { self.notify("WATCHDOG=1") }
    public func stopping(status: String) { self.notify("STOPPING=1\nSTATUS=\(Self.clean(status))") }
    /// `RELOADING=1` with `MONOTONIC_USEC=`, as systemd 253+'s `Type=notify-reload` protocol asks.
    public func reloading() {
        self.notify("RELOADING=1\nMONOTONIC_USEC=\(MonotonicClock.nowMicroseconds())\nSTATUS=reloading configuration")
    }
    /// Asks for more time to stop or start (`EXTEND_TIMEOUT_USEC=`).
    public func extendTimeout(microseconds: UInt64) { self.notify("EXTEND_TIMEOUT_USEC=\(microseconds)") }

    /// The watchdog interval systemd expects for this process (`WATCHDOG_USEC`, honouring `WATCHDOG_PID`), or
    /// `nil` when the watchdog is off.
    public var watchdogMicroseconds: UInt64? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return usec
    }

    private static func clean(_ text: String) -> String {
        String(text.map { $0 == "\n" ? " " : $0 })
    }
}

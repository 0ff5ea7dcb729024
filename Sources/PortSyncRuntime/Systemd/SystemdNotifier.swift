import CSystemd
import Glibc

/// Tells systemd about the service (the `sd_notify` protocol, sent without blocking): READY, STATUS, WATCHDOG,
/// RELOADING, STOPPING, EXTEND_TIMEOUT_USEC.
///
/// Without `NOTIFY_SOCKET` every call is a no-op, so the daemon runs the same outside systemd. The environment is
/// never unset (`unset_environment` = 0): watchdog pings must keep working after READY (statement 25).
public struct SystemdNotifier: Sendable {
    public init() {}

    /// Sends `state` (newline-separated `KEY=value` assignments). Returns whether a socket received it.
    ///
    /// The datagram is sent without blocking (`MSG_DONTWAIT`): `sd_notify` blocks while the receiver's queue is
    /// full, and a notify socket that nobody reads (a stuck service manager, a test harness gone quiet) must never
    /// stop a queue of the daemon, least of all the stop sequence. A message that cannot be queued is dropped.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        guard let path = getenv("NOTIFY_SOCKET").map({ String(cString: $0) }), !path.isEmpty else { return false }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        // An abstract socket is written with a leading '@' and addressed with a leading NUL.
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity, bytes.first == 0 || bytes.first == UInt8(ascii: "/") else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let sent = state.withCString { text in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                    sendto(fd, text, strlen(text), Int32(MSG_DONTWAIT | MSG_NOSIGNAL), socketAddress, length)
                }
            }
        }
        return sent >= 0
    }

    /// Whether systemd gave a notification socket (`NOTIFY_SOCKET`): the daemon runs as a systemd service.
    public var isConnected: Bool {
        guard let path = getenv("NOTIFY_SOCKET") else { return false }
        return path.pointee != 0
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

import Glibc

/// A failed system or C library call: which call, and its errno.
public struct SystemError: Error, Sendable, Hashable, CustomStringConvertible {
    public var call: String
    public var errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// The error of `call` from the thread's current `errno`.
    static func current(_ call: String) -> SystemError { SystemError(call, errno: Glibc.errno) }

    public var description: String { "\(self.call): \(String(cString: strerror(self.errno))) (errno \(self.errno))" }
}

/// The outcome of a non-blocking read: data, or "try again later" as a value rather than an error.
enum ReadResult: Equatable {
    case bytes(Int)
    case wouldBlock
}

enum Syscall {
    /// Runs `body`, retrying on `EINTR`; `EAGAIN`/`EWOULDBLOCK` become `.wouldBlock`; other errors throw.
    static func nonBlocking(_ call: String, _ body: () -> Int) throws(SystemError) -> ReadResult {
        while true {
            let result = body()
            if result >= 0 { return .bytes(result) }
            switch Glibc.errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: throw SystemError.current(call)
            }
        }
    }

    /// Runs `body`, retrying on `EINTR`; a negative result throws.
    @discardableResult
    static func blocking(_ call: String, _ body: () -> Int) throws(SystemError) -> Int {
        while true {
            let result = body()
            if result >= 0 { return result }
            if Glibc.errno == EINTR { continue }
            throw SystemError.current(call)
        }
    }
}

/// Monotonic time in microseconds (`CLOCK_MONOTONIC`), the one unit of time in the runtime.
public enum MonotonicClock {
    public static func nowMicroseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1000
    }
}

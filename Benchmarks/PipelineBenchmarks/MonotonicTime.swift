#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The daemon's clock (`MonotonicClock` in PortSyncRuntime): `CLOCK_MONOTONIC` in microseconds.
enum MonotonicTime {
    @inline(__always)
    static func nowMicroseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1000
    }
}

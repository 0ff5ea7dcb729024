/// One kernel link message after the extract stage: the decoded attributes, the trace id that follows it to the
/// Redis write, and when it was received.
public struct LinkEvent: Sendable, Hashable {
    /// Unique per kernel message within the process; carried to the journal as `TRACE_ID=`.
    public var trace: UInt64
    /// When the datagram was read (monotonic µs).
    public var receivedAt: UInt64
    /// The decoded message: name, ifindex, flags, MTU, master, kind, carrier changes, statistics.
    public var message: LinkMessage
    /// Set by the validate stage when the port changes state faster than the flap guard allows. The event is
    /// still written: the guard flags, it never drops a port's state.
    public var flapping: Bool

    public init(trace: UInt64, receivedAt: UInt64, message: LinkMessage, flapping: Bool = false) {
        self.trace = trace
        self.receivedAt = receivedAt
        self.message = message
        self.flapping = flapping
    }
}

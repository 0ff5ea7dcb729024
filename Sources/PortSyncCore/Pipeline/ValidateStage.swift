/// The validate stage: SONiC's rules that need the decoded attributes (team kind, statement 16; DELLINK with a
/// master, 17), portsyncd's own checks (the name is safe as a Redis key part, the MTU is in range), the
/// hand-off priority, and a per-port flap-rate guard that flags an event but never drops it.
///
/// It keeps, per port, the last admin/oper state it passed (to tell a state change, which goes out at high
/// priority, from a repeat) and the recent change times for the flap guard.
public struct ValidateStage: Sendable {
    /// The MTU range accepted (0: the attribute was absent, written as "0" as SONiC does).
    public static let mtuRange: ClosedRange<UInt32> = 68...65_536

    public struct FlapGuard: Sendable, Hashable {
        /// More than this many admin/oper changes of one port within `windowMicros` flags it as flapping.
        public var limit: Int
        public var windowMicros: UInt64
        public init(limit: Int = 10, windowMicros: UInt64 = 1_000_000) {
            self.limit = limit
            self.windowMicros = windowMicros
        }
    }

    public enum Verdict: Sendable, Hashable {
        case pass(PortUpdate, HandoffPriority)
        case ignore(LinkVerdict.IgnoreReason)
        case reject(StageReason)
    }

    private struct PortMemory: Sendable {
        var flags: InterfaceFlags?
        var windowStart: UInt64 = 0
        var changesInWindow = 0
    }

    public var flapGuard: FlapGuard
    private var ports: [InterfaceName: PortMemory] = [:]

    public init(flapGuard: FlapGuard = FlapGuard()) { self.flapGuard = flapGuard }

    /// Validates `event`; `event.flapping` is set when the port exceeds the flap guard.
    public mutating func check(_ event: inout LinkEvent) -> Verdict {
        let message = event.message
        guard let name = message.name else { return .ignore(.noName) }
        if let reason = Self.sonicIgnoreReason(message) { return .ignore(reason) }
        guard LinkFilter.isSafeKeyPart(name) else { return .reject(.unsafeName) }
        if let mtu = message.mtu, !Self.mtuRange.contains(mtu) { return .reject(.mtuOutOfRange) }
        let port = name.string
        switch message.kind {
        case .delLink:
            self.ports[name] = nil
            return .pass(.deleted(port: port), .high)
        case .newLink:
            let stateBits: InterfaceFlags = [.up, .running]
            var memory = self.ports[name] ?? PortMemory()
            let changed =
                memory.flags.map { $0.intersection(stateBits) != message.flags.intersection(stateBits) } ?? true
            if changed && memory.flags != nil {
                if event.receivedAt &- memory.windowStart > self.flapGuard.windowMicros {
                    memory.windowStart = event.receivedAt
                    memory.changesInWindow = 0
                }
                memory.changesInWindow += 1
                event.flapping = memory.changesInWindow > self.flapGuard.limit
            }
            memory.flags = message.flags
            self.ports[name] = memory
            return .pass(.state(port: port, PortOperState(message)), changed ? .high : .medium)
        }
    }

    /// SONiC's rules on the decoded attributes: kind `team` is teamsyncd's (statement 16), and a DELLINK with a
    /// master is a port leaving a bridge or LAG, not a removal (17). `nil` when neither applies.
    public static func sonicIgnoreReason(_ message: LinkMessage) -> LinkVerdict.IgnoreReason? {
        if let kind = message.linkKind, kind.count == 4, kind.hasPrefix("team") { return .team }
        if message.kind == .delLink && message.master != 0 { return .deleteWithMaster }
        return nil
    }

    /// Forgets what is remembered of `name` (its interface is gone).
    public mutating func forget(_ name: InterfaceName) { self.ports[name] = nil }
}

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

    /// One port's memory, under its name, the name's hash and the name as a string (made once per port, not per
    /// message).
    private struct Entry: Sendable {
        var name: InterfaceName
        var hash: UInt64
        var port: String
        var memory: PortMemory
    }

    public var flapGuard: FlapGuard
    /// Every port seen and not deleted since, in no particular order (a delete moves the last entry into the gap).
    private var entries: ContiguousArray<Entry> = []
    /// `entries` by name: one hash of the name per message.
    private var index = PortHashIndex()
    private let seed = PortHash.randomSeed()

    public init(flapGuard: FlapGuard = FlapGuard()) { self.flapGuard = flapGuard }

    /// Ports remembered (seen, and not deleted since).
    public var portCount: Int { self.entries.count }

    /// Validates `event`; `event.flapping` is set when the port exceeds the flap guard.
    public mutating func check(_ event: inout LinkEvent) -> Verdict {
        let message = event.message
        guard let name = message.name else { return .ignore(.noName) }
        if let reason = Self.sonicIgnoreReason(message) { return .ignore(reason) }
        guard LinkFilter.isSafeKeyPart(name) else { return .reject(.unsafeName) }
        if let mtu = message.mtu, !Self.mtuRange.contains(mtu) { return .reject(.mtuOutOfRange) }
        let (bucket, found) = self.find(name)
        switch message.kind {
        case .delLink:
            guard found else { return .pass(.deleted(port: name.string), .high) }
            let port = self.entries[Int(self.index[bucket])].port
            self.remove(at: bucket)
            return .pass(.deleted(port: port), .high)
        case .newLink:
            let entry: Int
            if found {
                entry = Int(self.index[bucket])
            } else {
                entry = self.entries.count
                let hash = name.portHash(seed: self.seed)
                self.entries.append(Entry(name: name, hash: hash, port: name.string, memory: PortMemory()))
                self.index.insert(Int32(entry), hash: hash, at: bucket)
            }
            let port = self.entries[entry].port
            let stateBits: InterfaceFlags = [.up, .running]
            let flapGuard = self.flapGuard
            let previous = self.entries[entry].memory.flags
            let changed = previous.map { $0.intersection(stateBits) != message.flags.intersection(stateBits) } ?? true
            if changed && previous != nil {
                if event.receivedAt &- self.entries[entry].memory.windowStart > flapGuard.windowMicros {
                    self.entries[entry].memory.windowStart = event.receivedAt
                    self.entries[entry].memory.changesInWindow = 0
                }
                self.entries[entry].memory.changesInWindow += 1
                event.flapping = self.entries[entry].memory.changesInWindow > flapGuard.limit
            }
            self.entries[entry].memory.flags = message.flags
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
    public mutating func forget(_ name: InterfaceName) {
        let (bucket, found) = self.find(name)
        if found { self.remove(at: bucket) }
    }

    /// The bucket of `name`'s entry, or the empty bucket where it would go.
    private func find(_ name: InterfaceName) -> (bucket: Int, found: Bool) {
        let hash = name.portHash(seed: self.seed)
        return self.index.find(hash: hash) { self.entries[Int($0)].hash == hash && self.entries[Int($0)].name == name }
    }

    /// Removes the entry in `bucket`; the last entry moves into its place.
    private mutating func remove(at bucket: Int) {
        let removed = Int(self.index[bucket])
        self.index.remove(at: bucket)
        let last = self.entries.count - 1
        if removed != last {
            let moved = self.entries[last]
            let (slot, found) = self.index.find(hash: moved.hash) { $0 == Int32(last) }
            if found { self.index[slot] = Int32(removed) }
            self.entries[removed] = moved
        }
        self.entries.removeLast()
    }
}

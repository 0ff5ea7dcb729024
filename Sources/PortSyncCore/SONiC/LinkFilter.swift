/// SONiC's per-message rules for link messages (statements 13, 14, 16, 17, 28) plus portsyncd's key-safety check.
///
/// A pure value: given a decoded message, it says whether portsyncd acts on it and what the port update is, or
/// why it does not, in SONiC's order of checks. The daemon applies the same rules split over the pipeline's
/// `PrefilterStage` and `ValidateStage` (which share the attribute rules with this type); this whole-message form
/// serves the decoder benchmark and the rule tests.
public struct LinkFilter: Sendable, Hashable {
    /// Interfaces that existed at a cold start (statement 22): every message for them is ignored (statement 28).
    public var oldInterfaces: Set<Int32>

    public init(oldInterfaces: Set<Int32> = []) { self.oldInterfaces = oldInterfaces }

    public func classify(_ message: LinkMessage) -> LinkVerdict {
        guard let name = message.name else { return .ignore(.noName) }
        guard Self.isPortName(name) else { return .ignore(.notAPort) }
        if let reason = ValidateStage.sonicIgnoreReason(message) { return .ignore(reason) }
        if self.oldInterfaces.contains(message.ifindex) { return .ignore(.oldInterface) }
        guard Self.isSafeKeyPart(name) else { return .reject(.unsafeName) }
        let port = name.string
        switch message.kind {
        case .newLink: return .accept(.state(port: port, PortOperState(message)))
        case .delLink: return .accept(.deleted(port: port))
        }
    }

    /// Statement 14: only `Ethernet*` and `PortChannel*` interfaces are ports (the prefilter applies the same rule
    /// to the raw attribute bytes).
    public static func isPortName(_ name: InterfaceName) -> Bool {
        name.hasPrefix("Ethernet") || name.hasPrefix("PortChannel")
    }

    /// `isPortName` for a name already made a `String` (Redis keys).
    public static func isPortName(_ name: String) -> Bool {
        name.hasPrefix("Ethernet") || name.hasPrefix("PortChannel")
    }

    /// Whether a name can be used as a Redis key part as it is: ASCII letters, digits, `.`, `_` and `-` only.
    /// Every SONiC port name (`Ethernet0`, `Ethernet-IB0`, `Ethernet0.10`, `PortChannel0001`) passes. A
    /// separator (`|`, `:`), a glob character, a control byte or a byte that is not ASCII does not.
    public static func isSafeKeyPart(_ name: InterfaceName) -> Bool {
        name.allWords { word, lanes in Self.safeLanes(word) & lanes == lanes }
    }

    /// The high bit of each byte lane of `word` that holds an allowed byte, eight bytes at once: a lane holding
    /// `x < 0x80` gets its high bit from `x + (0x80 - a)` exactly when `x >= a`, with no carry into the next lane.
    @inline(__always)
    static func safeLanes(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let ascii = ~word & highs
        let low = word & ~highs
        @inline(__always) func atLeast(_ byte: UInt64) -> UInt64 { (low &+ ones &* (0x80 - byte)) & highs }
        @inline(__always) func within(_ first: UInt64, _ last: UInt64) -> UInt64 {
            atLeast(first) & ~atLeast(last + 1)
        }
        let allowed =
            within(0x2D, 0x2E) | within(0x30, 0x39) | within(0x41, 0x5A) | within(0x5F, 0x5F) | within(0x61, 0x7A)
        return allowed & ascii
    }
}

/// What portsyncd does with one link message.
public enum LinkVerdict: Sendable, Hashable {
    case accept(PortUpdate)
    case ignore(IgnoreReason)
    case reject(RejectReason)

    /// Silently skipped, as SONiC does.
    public enum IgnoreReason: String, Sendable, Hashable, CaseIterable {
        case noName = "no_name"
        case notAPort = "not_a_port"
        case team = "team"
        case deleteWithMaster = "dellink_with_master"
        case oldInterface = "old_interface"
    }

    /// Refused with a counter and a warning.
    public enum RejectReason: String, Sendable, Hashable, CaseIterable {
        case unsafeName = "unsafe_name"
    }
}

/// The STATE_DB change one accepted message asks for.
public enum PortUpdate: Sendable, Hashable {
    case state(port: String, PortOperState)
    case deleted(port: String)

    public var port: String {
        switch self {
        case .state(let port, _), .deleted(let port): port
        }
    }

    /// The update of `port` that makes `change`.
    @inlinable
    public init(port: String, change: PortChange) {
        switch change {
        case .state(let state): self = .state(port: port, state)
        case .deleted: self = .deleted(port: port)
        }
    }

    /// What the update does, without the port's name.
    @inlinable
    public var change: PortChange {
        switch self {
        case .state(_, let state): .state(state)
        case .deleted: .deleted
        }
    }
}

/// What an update does to its port's STATE_DB entry, without the port's name: the hand-off's payload, whose key
/// is the name. A plain value (no reference), so queueing and taking it copies a few bytes.
public enum PortChange: Sendable, Hashable {
    case state(PortOperState)
    case deleted
}

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
        guard name.hasPrefix("Ethernet") || name.hasPrefix("PortChannel") else { return .ignore(.notAPort) }
        if let reason = ValidateStage.sonicIgnoreReason(message) { return .ignore(reason) }
        if self.oldInterfaces.contains(message.ifindex) { return .ignore(.oldInterface) }
        guard Self.isSafeKeyPart(name) else { return .reject(.unsafeName) }
        let port = name.string
        switch message.kind {
        case .newLink: return .accept(.state(port: port, PortOperState(message)))
        case .delLink: return .accept(.deleted(port: port))
        }
    }

    /// Whether a name can be used as a Redis key part as it is: ASCII letters, digits, `.`, `_` and `-` only.
    /// Every SONiC port name (`Ethernet0`, `Ethernet-IB0`, `Ethernet0.10`, `PortChannel0001`) passes. A
    /// separator (`|`, `:`), a glob character, a control byte or a byte that is not ASCII does not.
    public static func isSafeKeyPart(_ name: InterfaceName) -> Bool {
        for index in 0..<name.count {
            switch name.byte(at: index) {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                continue
            default:
                return false
            }
        }
        return true
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
}

extension StageReason {
    /// The reason for a malformed netlink message.
    public init(_ error: NetlinkDecodeError) {
        switch error {
        case .truncatedHeader: self = .truncatedHeader
        case .badMessageLength: self = .badMessageLength
        case .truncatedPayload: self = .truncatedPayload
        case .badAttributeLength: self = .badAttributeLength
        case .invalidAttribute: self = .invalidAttribute
        }
    }

    /// The reason SONiC's rules ignore a message.
    public init(_ reason: LinkVerdict.IgnoreReason) {
        switch reason {
        case .noName: self = .noName
        case .notAPort: self = .notAPort
        case .team: self = .team
        case .deleteWithMaster: self = .deleteWithMaster
        case .oldInterface: self = .oldInterface
        }
    }
}

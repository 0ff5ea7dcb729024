/// What one netlink message in a datagram turned out to be.
public enum NetlinkItem: Sendable, Hashable {
    /// An `RTM_NEWLINK` or `RTM_DELLINK` whose attributes all validated.
    case link(LinkMessage)
    /// `NLMSG_DONE`: the end of a multipart dump.
    case done(sequence: UInt32, portID: UInt32)
    /// `NLMSG_ERROR` with its (negative) errno; 0 is an acknowledgement.
    case error(code: Int32, sequence: UInt32)
    /// `NLMSG_OVERRUN`, `NLMSG_NOOP` or any type portsyncd does not handle.
    case other(type: UInt16)
    /// A message that failed validation. When the framing itself is broken the rest of the datagram cannot be
    /// found, and this is the last item.
    case malformed(NetlinkDecodeError)
}

/// Why a netlink message was rejected. Each case is one counter and one log line kind.
public enum NetlinkDecodeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Fewer bytes left than an `nlmsghdr`.
    case truncatedHeader(remaining: Int)
    /// `nlmsg_len` is below the header size or runs past the datagram.
    case badMessageLength(length: Int, remaining: Int)
    /// The payload is shorter than its fixed header (`ifinfomsg`, or the errno of `NLMSG_ERROR`).
    case truncatedPayload(type: UInt16, length: Int)
    /// An attribute's `nla_len` is below 4 or runs past its container.
    case badAttributeLength(attribute: UInt16, length: Int, remaining: Int)
    /// An attribute whose payload does not fit its type (wrong size, missing NUL, name too long, ...).
    case invalidAttribute(attribute: UInt16, reason: InvalidAttributeReason)

    public enum InvalidAttributeReason: String, Sendable, Hashable {
        case wrongSize = "wrong size"
        case missingTerminator = "not NUL-terminated"
        case emptyName = "empty name"
        case nameTooLong = "name longer than IFNAMSIZ"
        case addressTooLong = "address longer than MAX_ADDR_LEN"
        /// A second `IFLA_IFNAME`: the prefilter judges a message by its first name, so one message must not name
        /// two interfaces (the kernel never repeats it).
        case repeated = "given twice"
    }

    /// A short stable label for counters and log fields.
    public var kind: String {
        switch self {
        case .truncatedHeader: "truncated_header"
        case .badMessageLength: "bad_message_length"
        case .truncatedPayload: "truncated_payload"
        case .badAttributeLength: "bad_attribute_length"
        case .invalidAttribute: "invalid_attribute"
        }
    }

    public var description: String {
        switch self {
        case .truncatedHeader(let remaining):
            "truncated netlink header (\(remaining) bytes left)"
        case .badMessageLength(let length, let remaining):
            "bad nlmsg_len \(length) with \(remaining) bytes left"
        case .truncatedPayload(let type, let length):
            "message type \(type) payload of \(length) bytes is truncated"
        case .badAttributeLength(let attribute, let length, let remaining):
            "attribute \(attribute) has bad nla_len \(length) with \(remaining) bytes left"
        case .invalidAttribute(let attribute, let reason):
            "attribute \(attribute) is invalid: \(reason.rawValue)"
        }
    }
}

/// Decodes netlink datagrams into `NetlinkItem`s.
///
/// A pure function of its bytes. It validates every attribute it reads by type, skips unknown attributes,
/// reads integers unaligned-safe, never reads outside the buffer and never traps on any input: every problem is
/// returned as `.malformed`. A message with bad attributes is reported and skipped, and decoding goes on with
/// the next message, since `nlmsg_len` still frames it.
public enum NetlinkDecoder {
    /// Frames `datagram` into its netlink messages by `nlmsg_len` (the receive stage), calling `body` with each
    /// whole message, or with the framing error after which the rest of the datagram cannot be found.
    @inlinable
    public static func forEachMessage(
        in datagram: UnsafeRawBufferPointer, _ body: (Result<UnsafeRawBufferPointer, NetlinkDecodeError>) -> Void
    ) {
        var offset = 0
        let total = datagram.count
        while offset < total {
            let remaining = total - offset
            guard remaining >= NetlinkLayout.messageHeader else {
                body(.failure(.truncatedHeader(remaining: remaining)))
                return
            }
            let length = Int(datagram.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard length >= NetlinkLayout.messageHeader, length <= remaining else {
                body(.failure(.badMessageLength(length: length, remaining: remaining)))
                return
            }
            body(.success(UnsafeRawBufferPointer(rebasing: datagram[offset..<(offset + length)])))
            offset += min(NetlinkLayout.align(length), remaining)
        }
    }

    /// Calls `body` for every message in `datagram`, decoded, in order, without allocating.
    @inlinable
    public static func forEach(in datagram: UnsafeRawBufferPointer, _ body: (NetlinkItem) -> Void) {
        self.forEachMessage(in: datagram) { framed in
            switch framed {
            case .success(let message): body(self.decodeMessage(message))
            case .failure(let error): body(.malformed(error))
            }
        }
    }

    /// Decodes every message of `bytes` (tests and tools; the daemon uses `forEach(in:_:)`).
    public static func decode(_ bytes: [UInt8]) -> [NetlinkItem] {
        var items: [NetlinkItem] = []
        bytes.withUnsafeBytes { buffer in
            self.forEach(in: buffer) { items.append($0) }
        }
        return items
    }

    /// Decodes one message whose `nlmsg_len` has been checked to cover `message` exactly (the extract stage).
    public static func decodeMessage(_ message: UnsafeRawBufferPointer) -> NetlinkItem {
        let type = message.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        let sequence = message.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        let portID = message.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        let payload = UnsafeRawBufferPointer(rebasing: message[NetlinkLayout.messageHeader...])
        switch type {
        case NetlinkMessageType.newLink, NetlinkMessageType.delLink:
            var link = LinkMessage(kind: .newLink, ifindex: 0, flags: [], name: nil)
            if let error = self.extractLink(message, into: &link) { return .malformed(error) }
            return .link(link)
        case NetlinkMessageType.done:
            return .done(sequence: sequence, portID: portID)
        case NetlinkMessageType.error:
            guard payload.count >= 4 else { return .malformed(.truncatedPayload(type: type, length: payload.count)) }
            return .error(code: payload.loadUnaligned(as: Int32.self), sequence: sequence)
        default:
            return .other(type: type)
        }
    }

    /// The extract stage: decodes an `RTM_NEWLINK` or `RTM_DELLINK` (header included, `nlmsg_len` checked, its type
    /// one of the two, as the prefilter passes them) into `link`, which it replaces whole. Writing into the
    /// caller's value spares copying the message around; `decodeMessage` gives the same result as a `NetlinkItem`.
    @usableFromInline
    static func extractLink(_ message: UnsafeRawBufferPointer, into link: inout LinkMessage) -> NetlinkDecodeError? {
        let type = message.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        let payload = UnsafeRawBufferPointer(rebasing: message[NetlinkLayout.messageHeader...])
        guard payload.count >= NetlinkLayout.ifinfo else {
            return .truncatedPayload(type: type, length: payload.count)
        }
        link = LinkMessage(
            kind: type == NetlinkMessageType.newLink ? .newLink : .delLink,
            sequence: message.loadUnaligned(fromByteOffset: 8, as: UInt32.self),
            portID: message.loadUnaligned(fromByteOffset: 12, as: UInt32.self),
            ifindex: payload.loadUnaligned(fromByteOffset: 4, as: Int32.self),
            flags: InterfaceFlags(rawValue: payload.loadUnaligned(fromByteOffset: 8, as: UInt32.self)),
            name: nil
        )
        let attributes = UnsafeRawBufferPointer(rebasing: payload[NetlinkLayout.ifinfo...])
        var offset = 0
        while offset < attributes.count {
            let remaining = attributes.count - offset
            guard remaining >= NetlinkLayout.attributeHeader else {
                return .badAttributeLength(attribute: 0, length: remaining, remaining: remaining)
            }
            let length = Int(attributes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let type =
                attributes.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self)
                & ~NetlinkLayout.attributeFlagsMask
            guard length >= NetlinkLayout.attributeHeader, length <= remaining else {
                return .badAttributeLength(attribute: type, length: length, remaining: remaining)
            }
            let value = UnsafeRawBufferPointer(
                rebasing: attributes[(offset + NetlinkLayout.attributeHeader)..<(offset + length)])
            if let error = self.decodeAttribute(type, value, into: &link) { return error }
            offset += min(NetlinkLayout.align(length), remaining)
        }
        return nil
    }

    /// Decodes one attribute of a link message into `link`; unknown or unused attributes are skipped.
    @inline(__always)
    static func decodeAttribute(
        _ type: UInt16, _ value: UnsafeRawBufferPointer, into link: inout LinkMessage
    ) -> NetlinkDecodeError? {
        switch type {
        case LinkAttribute.ifname:
            guard link.name == nil else { return .invalidAttribute(attribute: type, reason: .repeated) }
            switch self.nulString(value) {
            case .success(let name): link.name = name
            case .failure(let reason): return .invalidAttribute(attribute: type, reason: reason)
            }
        case LinkAttribute.mtu:
            guard value.count == 4 else { return .invalidAttribute(attribute: type, reason: .wrongSize) }
            link.mtu = value.loadUnaligned(as: UInt32.self)
        case LinkAttribute.master:
            guard value.count == 4 else { return .invalidAttribute(attribute: type, reason: .wrongSize) }
            link.master = value.loadUnaligned(as: UInt32.self)
        case LinkAttribute.carrierChanges:
            guard value.count == 4 else { return .invalidAttribute(attribute: type, reason: .wrongSize) }
            link.carrierChanges = value.loadUnaligned(as: UInt32.self)
        case LinkAttribute.operstate:
            guard value.count == 1 else { return .invalidAttribute(attribute: type, reason: .wrongSize) }
            link.operState = value[0]
        case LinkAttribute.address:
            guard value.count <= NetlinkLayout.maxAddressLength else {
                return .invalidAttribute(attribute: type, reason: .addressTooLong)
            }
            link.address = HardwareAddress(raw: value)
        case LinkAttribute.stats64:
            // struct rtnl_link_stats64 has grown over kernel versions; the first eight counters never moved.
            guard value.count >= 64, value.count % 8 == 0 else {
                return .invalidAttribute(attribute: type, reason: .wrongSize)
            }
            link.stats = LinkStatistics(
                rxPackets: value.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                txPackets: value.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                rxBytes: value.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                txBytes: value.loadUnaligned(fromByteOffset: 24, as: UInt64.self),
                rxErrors: value.loadUnaligned(fromByteOffset: 32, as: UInt64.self),
                txErrors: value.loadUnaligned(fromByteOffset: 40, as: UInt64.self),
                rxDropped: value.loadUnaligned(fromByteOffset: 48, as: UInt64.self),
                txDropped: value.loadUnaligned(fromByteOffset: 56, as: UInt64.self)
            )
        case LinkAttribute.linkinfo:
            return self.forEachAttribute(in: value) { innerType, innerValue in
                guard innerType == LinkAttribute.infoKind else { return nil }
                switch self.nulString(innerValue) {
                case .success(let kindName): link.linkKind = kindName
                case .failure(let reason): return .invalidAttribute(attribute: innerType, reason: reason)
                }
                return nil
            }
        default:
            break
        }
        return nil
    }

    /// Walks the TLV attributes of `buffer`, stopping at the first error `body` returns or the first bad length.
    @usableFromInline
    @inline(__always)
    static func forEachAttribute(
        in buffer: UnsafeRawBufferPointer,
        _ body: (UInt16, UnsafeRawBufferPointer) -> NetlinkDecodeError?
    ) -> NetlinkDecodeError? {
        var offset = 0
        while offset < buffer.count {
            let remaining = buffer.count - offset
            guard remaining >= NetlinkLayout.attributeHeader else {
                return .badAttributeLength(attribute: 0, length: remaining, remaining: remaining)
            }
            let length = Int(buffer.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let type =
                buffer.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self)
                & ~NetlinkLayout.attributeFlagsMask
            guard length >= NetlinkLayout.attributeHeader, length <= remaining else {
                return .badAttributeLength(attribute: type, length: length, remaining: remaining)
            }
            let value = UnsafeRawBufferPointer(
                rebasing: buffer[(offset + NetlinkLayout.attributeHeader)..<(offset + length)])
            if let error = body(type, value) { return error }
            offset += min(NetlinkLayout.align(length), remaining)
        }
        return nil
    }

    /// A `MNL_TYPE_NUL_STRING` that must also fit `IFNAMSIZ`.
    @usableFromInline
    static func nulString(
        _ value: UnsafeRawBufferPointer
    ) -> Result<InterfaceName, NetlinkDecodeError.InvalidAttributeReason> {
        var end = 0
        while end < value.count, value[end] != 0 { end += 1 }
        guard end < value.count else { return .failure(.missingTerminator) }
        guard end > 0 else { return .failure(.emptyName) }
        guard end <= InterfaceName.maxLength,
            let name = InterfaceName(raw: UnsafeRawBufferPointer(rebasing: value[..<end]))
        else { return .failure(.nameTooLong) }
        return .success(name)
    }
}

extension NetlinkDecodeError.InvalidAttributeReason: Error {}

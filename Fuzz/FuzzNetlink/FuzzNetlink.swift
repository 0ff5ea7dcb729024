import Foundation
import FuzzSupport
import PortSyncCore

/// A netlink datagram from the kernel, through the decoder and the pipeline's stages (receive → prefilter →
/// extract → validate → hand-off). Beyond never trapping:
///
/// - framing cuts the datagram into whole messages at 4-byte aligned offsets, each `nlmsg_len` long, and a framing
///   error is the last thing it reports;
/// - every message is decoded or reported malformed, and `forEach`, `decode` and `decodeMessage` agree;
/// - a decoded link message holds a non-empty name of at most 15 bytes without NUL, a kind of its header's type,
///   an address of at most 8 bytes kept;
/// - the pipeline sees what the decoder sees, message by message (by trace id), counts each message once per stage
///   it reaches, hands off only names of ports, and drains completely.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let datagram = UnsafeRawBufferPointer(start: data, count: size)
    let items = checkDecoder(datagram)
    checkPipeline(datagram, items: items, policy: policies[size % policies.count])
    return 0
}

let policies = ["coalesce", "block", "drop_oldest", "drop_newest", "adaptive"]

func checkDecoder(_ datagram: UnsafeRawBufferPointer) -> [NetlinkItem] {
    var framed: [Result<UnsafeRawBufferPointer, NetlinkDecodeError>] = []
    NetlinkDecoder.forEachMessage(in: datagram) { framed.append($0) }
    var items: [NetlinkItem] = []
    NetlinkDecoder.forEach(in: datagram) { items.append($0) }
    check(items.count == framed.count, "forEach gave \(items.count) items for \(framed.count) framed messages")
    check(NetlinkDecoder.decode(Array(datagram)) == items, "decode and forEach differ")
    var offset = 0
    for (index, (frame, item)) in zip(framed, items).enumerated() {
        let last = index == framed.count - 1
        switch frame {
        case .failure(let error):
            check(last, "framing went on after \(error)")
            check(item == .malformed(error), "forEach reported \(item) for the framing error \(error)")
            switch error {
            case .truncatedHeader(let remaining):
                check(remaining > 0 && remaining < 16, "truncated header with \(remaining) bytes left")
                check(remaining == datagram.count - offset, "truncated header at the wrong offset")
            case .badMessageLength(let length, let remaining):
                check(length < 16 || length > remaining, "nlmsg_len \(length) fits \(remaining) bytes")
                check(remaining == datagram.count - offset, "bad length at the wrong offset")
            default:
                check(false, "framing reported \(error)")
            }
        case .success(let message):
            check(message.baseAddress == datagram.baseAddress.map { $0 + offset }, "message \(index) misplaced")
            check(message.count >= 16 && offset + message.count <= datagram.count, "message \(index) out of bounds")
            check(Int(message.loadUnaligned(as: UInt32.self)) == message.count, "message \(index) is not nlmsg_len")
            check(NetlinkDecoder.decodeMessage(message) == item, "decodeMessage and forEach differ")
            checkItem(item, type: message.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
            offset += (message.count + 3) & ~3
        }
    }
    check(framed.isEmpty == datagram.isEmpty, "\(framed.count) messages in \(datagram.count) bytes")
    return items
}

func checkItem(_ item: NetlinkItem, type: UInt16) {
    switch item {
    case .link(let link):
        let expected: LinkMessage.Kind? =
            switch type {
            case NetlinkMessageType.newLink: .newLink
            case NetlinkMessageType.delLink: .delLink
            default: nil
            }
        check(link.kind == expected, "a link message of type \(type)")
        for name in [link.name, link.linkKind].compactMap({ $0 }) {
            check((1...InterfaceName.maxLength).contains(name.count), "a name of \(name.count) bytes")
            check(!name.bytes.contains(0), "a name with a NUL")
            check(InterfaceName(bytes: name.bytes) == name, "a name unequal to itself rebuilt")
        }
        if let address = link.address { check(address.count <= 8, "an address of \(address.count) bytes kept") }
    case .malformed(let error):
        switch error {
        case .truncatedHeader, .badMessageLength: check(false, "\(error) for a framed message")
        case .truncatedPayload(let payloadType, _): check(payloadType == type, "truncated payload of another type")
        case .badAttributeLength, .invalidAttribute:
            check(type == NetlinkMessageType.newLink || type == NetlinkMessageType.delLink, "\(error) for \(type)")
        }
    case .done, .error:
        check(type == NetlinkMessageType.done || type == NetlinkMessageType.error, "\(item) of type \(type)")
    case .other(let otherType):
        check(otherType == type, "other type \(otherType) for \(type)")
        check(
            ![
                NetlinkMessageType.newLink, NetlinkMessageType.delLink, NetlinkMessageType.done,
                NetlinkMessageType.error,
            ]
            .contains(type), "type \(type) not decoded")
    }
}

/// What the pipeline tells its owner, by trace id.
struct Recorder: PipelineObserver, Sendable {
    var malformed: [UInt64: NetlinkDecodeError] = [:]
    var messages: [UInt64: LinkMessage] = [:]
    var updates: [UInt64: PortUpdate] = [:]

    mutating func malformed(_ error: NetlinkDecodeError, trace: UInt64) { self.malformed[trace] = error }
    mutating func oldInterface(_ message: LinkMessage, trace: UInt64) { self.messages[trace] = message }
    mutating func ignored(_ message: LinkMessage, trace: UInt64) { self.messages[trace] = message }
    mutating func rejected(_ message: LinkMessage, reason: StageReason, trace: UInt64) {
        self.messages[trace] = message
    }
    mutating func accepted(_ message: LinkMessage, update: PortUpdate, flapping: Bool, trace: UInt64) {
        self.messages[trace] = message
        self.updates[trace] = update
    }
}

func checkPipeline(_ datagram: UnsafeRawBufferPointer, items: [NetlinkItem], policy: String) {
    var settings = Config.Pipeline()
    settings.streamBufferCapacity = 4
    settings.stageEventCapacity = 64
    settings.dropPolicy = policy
    var core = PipelineCore(settings: settings, oldInterfaces: [1, 2, 3], observer: Recorder())
    core.process(datagram: datagram, now: 1)
    // The same datagram again: the validate stage now remembers its ports.
    core.process(datagram: datagram, now: 2)
    let count = UInt64(items.count)
    check(core.lastTrace == 2 * count, "\(core.lastTrace) traces for \(count) messages twice")
    check(core.stages.total(.receive) == 2 * count, "receive counted \(core.stages.total(.receive))")
    check(core.stages.total(.prefilter) == core.stages.total(.receive, .pass), "prefilter count")
    check(core.stages.total(.extract) == core.stages.total(.prefilter, .pass), "extract count")
    check(core.stages.total(.validate) == core.stages.total(.extract, .pass), "validate count")
    let observer = core.observer
    for (trace, error) in observer.malformed {
        check(items[Int((trace - 1) % count)] == .malformed(error), "trace \(trace): the pipeline saw \(error)")
    }
    for (trace, message) in observer.messages {
        check(items[Int((trace - 1) % count)] == .link(message), "trace \(trace): the pipeline saw another message")
    }
    for (trace, update) in observer.updates {
        let name = observer.messages[trace]?.name
        check(
            name?.string == update.port,
            "trace \(trace): update for \(update.port), message for \(String(describing: name))")
        check(update.port.hasPrefix("Ethernet") || update.port.hasPrefix("PortChannel"), "update for \(update.port)")
    }
    var taken = 0
    for now in UInt64(3)...UInt64(10) {
        _ = core.pump(now: now, while: { _ in true }) { _, _ in taken += 1 }
        if core.isDrained { break }
    }
    check(core.isDrained, "the hand-off did not drain (\(core.queuedCount) left)")
    check(taken <= observer.updates.count, "\(taken) updates taken of \(observer.updates.count) accepted")
}

@main
enum FuzzNetlink {
    static func main() { runFuzzer(fuzz) }
}

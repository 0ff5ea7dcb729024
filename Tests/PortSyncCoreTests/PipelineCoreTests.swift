import Testing

@testable import PortSyncCore

/// The pipeline's fast paths checked against the obvious way of doing the same thing: the hash index against a
/// `Dictionary`, the word-at-a-time key check against a byte loop, names read as words against names built byte by
/// byte; and the validate stage and `PipelineCore` through their behaviour.
@Suite("Pipeline fast paths")
struct PipelineCoreTests {

    // MARK: - Hash index

    /// Random inserts and removals with a handful of hash values, so that probe chains are long, wrap around the
    /// end and are cut by deletions; after every step the index finds exactly what a `Dictionary` holds.
    @Test("PortHashIndex finds what a Dictionary holds, through collisions, growth and deletions")
    func hashIndexMatchesDictionary() {
        var random = SplitMix64(seed: 7)
        var index = PortHashIndex()
        var keys: [Int32: UInt64] = [:]  // entry → hash
        var reference: [Int32: Bool] = [:]
        for step in 0..<20_000 {
            let entry = Int32(random.next(below: 300))
            // Eight hash values for 300 keys, some of them near the top of the table (wrap-around).
            let hash = [0, 1, 2, 15, 16, 31, UInt64.max, UInt64.max - 1][Int(entry) % 8] &+ UInt64(entry % 3) << 40
            let (bucket, found) = index.find(hash: hash) { $0 == entry }
            #expect(found == (reference[entry] != nil), "step \(step)")
            if found {
                if random.next(below: 2) == 0 {
                    index.remove(at: bucket)
                    reference[entry] = nil
                    keys[entry] = nil
                }
            } else {
                index.insert(entry, hash: hash, at: bucket)
                reference[entry] = true
                keys[entry] = hash
            }
            if step % 97 == 0 {
                #expect(index.count == reference.count)
                #expect(Set(index.entries) == Set(reference.keys))
                for (key, stored) in keys {
                    #expect(index.find(hash: stored) { $0 == key }.found, "entry \(key) lost at step \(step)")
                }
            }
        }
    }

    @Test("PortHash of a name's words equals PortHash of its bytes and of its string")
    func hashAgreesAcrossForms() throws {
        var random = SplitMix64(seed: 3)
        let seed = random.next()
        for length in 1...InterfaceName.maxLength {
            let bytes = (0..<length).map { _ in UInt8(0x41 + random.next(below: 26)) }
            let name = try #require(InterfaceName(bytes: bytes))
            let string = String(decoding: bytes, as: UTF8.self)
            let fromBytes = bytes.withUnsafeBytes { PortHash.hash($0, seed: seed) }
            #expect(name.portHash(seed: seed) == fromBytes)
            #expect(PortHash.hash(string, seed: seed) == fromBytes)
        }
        // Longer keys are hashed 16 bytes at a time, every byte counting.
        let long = String(repeating: "Ethernet", count: 5)
        #expect(PortHash.hash(long, seed: seed) != PortHash.hash(long + "0", seed: seed))
        #expect(PortHash.hash(long + "1", seed: seed) != PortHash.hash(long + "0", seed: seed))
    }

    // MARK: - Names

    @Test("isSafeKeyPart, eight bytes at a time, agrees with a byte-by-byte check for every byte in every place")
    func safeKeyPartExhaustive() throws {
        func reference(_ bytes: [UInt8]) -> Bool {
            bytes.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                    || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                    || [UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-")].contains(byte)
            }
        }
        for length in 1...InterfaceName.maxLength {
            let base = Array("Ethernet1234567".utf8.prefix(length))
            for position in 0..<length {
                for value in 0...255 {
                    var bytes = base
                    bytes[position] = UInt8(value)
                    let name = try #require(InterfaceName(bytes: bytes))
                    #expect(LinkFilter.isSafeKeyPart(name) == reference(bytes), "\(bytes)")
                }
            }
        }
    }

    @Test("A name read from raw bytes as words equals the same name built byte by byte; its string is its bytes")
    func rawNamesMatch() throws {
        var random = SplitMix64(seed: 11)
        for length in 1...InterfaceName.maxLength {
            for _ in 0..<50 {
                let bytes = (0..<length).map { _ in UInt8(1 + random.next(below: 255)) }
                let built = try #require(InterfaceName(bytes: bytes))
                let raw = try #require(bytes.withUnsafeBytes { InterfaceName(raw: $0) })
                #expect(raw == built && raw.bytes == bytes && raw.count == length)
            }
            let ascii = Array("PortChannel0001".utf8.prefix(length))
            #expect(InterfaceName(bytes: ascii)?.string == String(decoding: ascii, as: UTF8.self))
        }
        #expect([UInt8]().withUnsafeBytes { InterfaceName(raw: $0) } == nil)
        #expect([UInt8](repeating: 0x41, count: 16).withUnsafeBytes { InterfaceName(raw: $0) } == nil)
        for length in 0...10 {
            let bytes = (0..<length).map { UInt8($0 + 1) }
            #expect(bytes.withUnsafeBytes { HardwareAddress(raw: $0) } == HardwareAddress(bytes: bytes))
        }
    }

    // MARK: - Validate stage

    static func event(
        _ name: String, kind: LinkMessage.Kind = .newLink, flags: InterfaceFlags = [.up, .running],
        mtu: UInt32 = 9100, at time: UInt64 = 0
    ) throws -> LinkEvent {
        let interfaceName = try #require(InterfaceName(name))
        return LinkEvent(
            trace: 0, receivedAt: time,
            message: LinkMessage(kind: kind, ifindex: 1, flags: flags, name: interfaceName, mtu: mtu))
    }

    @Test("validate: a state change is high, a repeat medium, a delete high and forgotten")
    func validatePriorities() throws {
        var stage = ValidateStage()
        var event = try Self.event("Ethernet0")
        let up = PortOperState(adminUp: true, operUp: true, mtu: 9100)
        #expect(stage.check(&event) == .pass(.state(port: "Ethernet0", up), .high), "first sighting")
        event = try Self.event("Ethernet0", mtu: 1500)
        #expect(stage.check(&event) == .pass(.state(port: "Ethernet0", .init(up.adminUp, up.operUp, 1500)), .medium))
        event = try Self.event("Ethernet0", flags: [.up])
        #expect(stage.check(&event) == .pass(.state(port: "Ethernet0", .init(true, false, 9100)), .high))
        event = try Self.event("Ethernet0", kind: .delLink, flags: [.up])
        #expect(stage.check(&event) == .pass(.deleted(port: "Ethernet0"), .high))
        #expect(stage.portCount == 0)
        event = try Self.event("Ethernet0", flags: [.up])
        #expect(stage.check(&event) == .pass(.state(port: "Ethernet0", .init(true, false, 9100)), .high))
        event = try Self.event("Ethernet|0")
        #expect(stage.check(&event) == .reject(.unsafeName))
        event = try Self.event("Ethernet4", mtu: 70_000)
        #expect(stage.check(&event) == .reject(.mtuOutOfRange))
        #expect(stage.portCount == 1)
    }

    @Test("validate: more state changes than the flap guard allows in its window flag the port, never drop it")
    func validateFlapGuard() throws {
        var stage = ValidateStage(flapGuard: .init(limit: 3, windowMicros: 1000))
        var flagged: [Bool] = []
        for step in 0..<8 {
            var event = try Self.event("Ethernet8", flags: step % 2 == 0 ? [.up, .running] : [.up], at: UInt64(step))
            guard case .pass = stage.check(&event) else { throw TestFailure("step \(step) did not pass") }
            flagged.append(event.flapping)
        }
        // The first message is no change; changes 1, 2, 3 are within the limit; 4 and later are flagged.
        #expect(flagged == [false, false, false, false, true, true, true, true])
        var later = try Self.event("Ethernet8", flags: [.up], at: 5000)
        _ = stage.check(&later)
        #expect(!later.flapping, "a new window starts after the old one")
    }

    /// Thousands of ports seen, changed and deleted in random order; the stage's answers match a plain dictionary
    /// of each port's last flags (deletes move entries around inside the stage).
    @Test("validate: its per-port memory matches a dictionary through many ports, changes and deletes")
    func validateMemoryMatchesDictionary() throws {
        var random = SplitMix64(seed: 5)
        var stage = ValidateStage()
        var reference: [String: InterfaceFlags] = [:]
        for step in 0..<30_000 {
            let port = "Ethernet\(random.next(below: 3000) * 4)"
            if random.next(below: 5) == 0 {
                var event = try Self.event(port, kind: .delLink)
                #expect(stage.check(&event) == .pass(.deleted(port: port), .high))
                reference[port] = nil
            } else {
                let flags: InterfaceFlags = random.next(below: 2) == 0 ? [.up, .running] : [.up]
                var event = try Self.event(port, flags: flags, at: UInt64(step) * 10_000_000)
                let changed = reference[port].map { $0 != flags } ?? true
                let state = PortOperState(adminUp: true, operUp: flags.contains(.running), mtu: 9100)
                #expect(stage.check(&event) == .pass(.state(port: port, state), changed ? .high : .medium))
                reference[port] = flags
            }
            #expect(stage.portCount == reference.count, "step \(step)")
        }
    }

    // MARK: - Pipeline core

    /// Records what the core tells its owner.
    struct RecordingObserver: PipelineObserver, Sendable {
        var accepted: [String] = []
        var bypassed: [String] = []
        var malformed: [String] = []
        var rejected: [StageReason] = []

        mutating func accepted(_ message: LinkMessage, update: PortUpdate, flapping: Bool, trace: UInt64) {
            self.accepted.append(update.port)
        }
        mutating func bypass(_ update: PortUpdate, trace: UInt64) { self.bypassed.append(update.port) }
        mutating func malformed(_ error: NetlinkDecodeError, trace: UInt64) { self.malformed.append(error.kind) }
        mutating func rejected(_ message: LinkMessage, reason: StageReason, trace: UInt64) {
            self.rejected.append(reason)
        }
    }

    static func newLink(_ name: String, flags: UInt32 = 0x41) -> [UInt8] {
        NetlinkBuilder.link(
            ifindex: NetlinkBuilder.ifindex(for: name), flags: flags,
            attributes: [NetlinkBuilder.name(name), NetlinkBuilder.mtu(9100)])
    }

    static func core(capacity: Int = 16, policy: String = "coalesce") -> PipelineCore<RecordingObserver> {
        var settings = Config.Pipeline()
        settings.streamBufferCapacity = capacity
        settings.dropPolicy = policy
        return PipelineCore(settings: settings, observer: RecordingObserver())
    }

    static func pump(_ core: inout PipelineCore<RecordingObserver>, room: Int = .max) -> ([String], PumpOutcome) {
        var taken: [String] = []
        let outcome = core.pump(now: 50, while: { _ in taken.count < room }) { item, _ in taken.append(item.key) }
        return (taken, outcome)
    }

    @Test(
        "core: a rename deletes the old name as a DELLINK would, whatever the new name is",
        arguments: ["Ethernet808", "Ethernet|8", "eth8"])
    func rename(newName: String) {
        var core = Self.core()
        let named = { (name: String) in
            NetlinkBuilder.link(
                ifindex: 5, flags: 0x41, attributes: [NetlinkBuilder.name(name), NetlinkBuilder.mtu(9100)])
        }
        named("Ethernet8").withUnsafeBytes { core.process(datagram: $0, now: 10) }
        #expect(core.portNames[5] == InterfaceName(bytes: Array("Ethernet8".utf8)))
        named(newName).withUnsafeBytes { core.process(datagram: $0, now: 20) }
        let (taken, _) = Self.pump(&core)
        #expect(taken.contains("Ethernet8"))
        #expect(core.stages.total(.validate, reason: .renamed) == 1)
        let accepted = newName == "Ethernet808"
        #expect(core.observer.accepted == ["Ethernet8", "Ethernet8"] + (accepted ? [newName] : []))
        #expect(core.portNames[5] == (accepted ? InterfaceName(bytes: Array(newName.utf8)) : nil))
        // The same name again is no rename.
        named(newName).withUnsafeBytes { core.process(datagram: $0, now: 30) }
        #expect(core.stages.total(.validate, reason: .renamed) == 1)
    }

    @Test("core: one datagram of several messages, each through every stage with its counts and events")
    func coreCountsEveryStage() throws {
        var core = Self.core()
        let datagram =
            Self.newLink("Ethernet0") + Self.newLink("eth0") + Self.newLink("Ethernet|1")
            + NetlinkBuilder.link(attributes: [
                NetlinkBuilder.name("Ethernet4"), NetlinkBuilder.attribute(LinkAttribute.mtu, [1, 0]),
            ])
            + Self.newLink("Ethernet8") + [1, 2, 3]
        datagram.withUnsafeBytes { core.process(datagram: $0, now: 10) }
        #expect(core.messages.datagrams == 1 && core.messages.bytes == UInt64(datagram.count))
        #expect(core.messages.newLinks == 5)
        #expect(core.messages.malformed == ["invalid_attribute": 1, "truncated_header": 1])
        #expect(core.observer.malformed == ["invalid_attribute", "truncated_header"])
        #expect(core.observer.accepted == ["Ethernet0", "Ethernet8"])
        #expect(core.observer.rejected == [.unsafeName])
        #expect(core.stages.total(.receive) == 6 && core.stages.total(.receive, .reject) == 1)
        #expect(core.stages.total(.prefilter, reason: .notAPort) == 1)
        #expect(core.stages.total(.handoff, .pass) == 2)
        #expect(core.handoff.count == 2 && core.lastTrace == 6)
        let first = core.ring.events(trace: 1)
        #expect(first.map(\.stage) == [.receive, .prefilter, .extract, .validate, .handoff])
        #expect(first.allSatisfy { $0.timestamp == 10 })
        let (taken, outcome) = Self.pump(&core)
        #expect(taken == ["Ethernet0", "Ethernet8"] && outcome == PumpOutcome(holding: false, resyncDue: false))
        #expect(core.messages.candidatesSent == 2 && core.handoffWait.count == 2 && core.handoffWait.max == 40)
        #expect(core.isDrained)
    }

    /// Found by the netlink fuzzer (Fuzz/Corpus/netlink/repeated-ifname.bin): the prefilter judged the first
    /// `IFLA_IFNAME` and the extract stage kept the last, so a non-port interface reached the writer.
    @Test("core: a message naming its interface twice is refused at extract, not written under the second name")
    func coreRepeatedName() {
        var core = Self.core()
        let datagram = NetlinkBuilder.link(
            flags: 0x41, attributes: [NetlinkBuilder.name("PortChannel0001"), NetlinkBuilder.name("Bridge")])
        datagram.withUnsafeBytes { core.process(datagram: $0, now: 1) }
        #expect(core.observer.accepted.isEmpty)
        #expect(core.observer.malformed == ["invalid_attribute"])
        #expect(core.handoff.isEmpty && core.stages.total(.extract, .reject) == 1)
    }

    @Test("core: a resync dump bypasses the hand-off, straight to the owner, counted as sent")
    func coreBypass() {
        var core = Self.core()
        let datagram = Self.newLink("Ethernet0") + Self.newLink("Ethernet4")
        datagram.withUnsafeBytes { core.process(datagram: $0, now: 1, bypassingHandoff: true) }
        #expect(core.observer.bypassed == ["Ethernet0", "Ethernet4"])
        #expect(core.handoff.isEmpty && core.messages.candidatesSent == 2)
        #expect(core.stages.total(.handoff, .pass) == 2)
    }

    @Test("core, block: a refused update is held with those after it, released in order once there is room")
    func coreBlockHoldsInOrder() {
        var core = Self.core(capacity: 2, policy: "block")
        let names = (0..<5).map { "Ethernet\($0 * 4)" }
        let datagram = names.flatMap { Self.newLink($0) }
        datagram.withUnsafeBytes { core.process(datagram: $0, now: 1) }
        #expect(core.isHolding && core.queuedCount == 5 && core.handoff.count == 2)
        // The writer takes one: the held update goes in, the next one is refused and held in its turn.
        var (taken, outcome) = Self.pump(&core, room: 1)
        #expect(taken == ["Ethernet0"] && outcome.holding)
        // Both taken, then the held one and the last one fit: nothing is held any more.
        (taken, outcome) = Self.pump(&core)
        #expect(taken == ["Ethernet4", "Ethernet8"] && !outcome.holding)
        (taken, outcome) = Self.pump(&core)
        #expect(taken == ["Ethernet12", "Ethernet16"] && !outcome.holding)
        #expect(core.isDrained && core.handoff.counters.full == 2)
    }

    @Test("core: updates dropped under drop_newest ask for one resync once the hand-off has drained")
    func coreResyncAfterDrops() {
        var core = Self.core(capacity: 1, policy: "drop_newest")
        let datagram = Self.newLink("Ethernet0") + Self.newLink("Ethernet4")
        datagram.withUnsafeBytes { core.process(datagram: $0, now: 1) }
        #expect(core.stages.total(.handoff, reason: .dropNewest) == 1)
        var (taken, outcome) = Self.pump(&core, room: 0)
        #expect(taken.isEmpty && !outcome.resyncDue, "not before the hand-off has drained")
        (taken, outcome) = Self.pump(&core)
        #expect(taken == ["Ethernet0"] && outcome.resyncDue)
        (taken, outcome) = Self.pump(&core)
        #expect(!outcome.resyncDue, "once")
    }

    @Test("hand-off: storage freed by takes is reused; a queue drained over 100 000 ports holds one node")
    func handoffReusesStorage() {
        var queue = HandoffQueue<PortChange>(capacity: 1 << 16, policy: .coalesce)
        let state = PortChange.state(PortOperState(adminUp: true, operUp: true, mtu: 9100))
        for port in 0..<100_000 {
            let item = HandoffItem(key: "Ethernet\(port * 4)", priority: .medium, trace: UInt64(port), payload: state)
            #expect(queue.offer(item, now: 0) == .accepted)
            #expect(queue.take(now: 0)?.item.trace == UInt64(port))
        }
        #expect(queue.nodes.count == 1 && queue.portRecords.count == 1 && queue.portCount == 0)
    }
}

extension PortOperState {
    fileprivate init(_ adminUp: Bool, _ operUp: Bool, _ mtu: UInt32) {
        self.init(adminUp: adminUp, operUp: operUp, mtu: mtu)
    }
}

private struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

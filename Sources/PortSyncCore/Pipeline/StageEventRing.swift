/// Why a stage did what it did with one message: a two-byte code, so that a stage event stores no `String`.
///
/// Every value is one of the static constants; `init?(rawValue:)` refuses any other code, so `name` always
/// answers from the table. In JSON a reason is its `name` (`"not_a_port"`), never its number, so the codes may be
/// renumbered without breaking readers.
///
/// Note: `StageReason.none` is "no particular reason", not `Optional.none`; APIs here never take a
/// `StageReason?`, so the two cannot be confused.
public struct StageReason: RawRepresentable, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// The reason's code, an index into `names`.
    public let rawValue: UInt16

    /// The reason with this code, or `nil` if no constant has it.
    public init?(rawValue: UInt16) {
        guard Int(rawValue) < Self.names.count else { return nil }
        self.rawValue = rawValue
    }

    /// The reason called `name` (as written in JSON and logs), or `nil` if there is none.
    public init?(name: String) {
        guard let index = Self.names.firstIndex(of: name) else { return nil }
        self.rawValue = UInt16(index)
    }

    private init(code: UInt16) { self.rawValue = code }

    /// No particular reason (a message that passed, was written, …).
    public static let none = StageReason(code: 0)
    /// The name starts with neither `Ethernet` nor `PortChannel` (statement 14).
    public static let notAPort = StageReason(code: 1)
    /// The link message has no `IFLA_IFNAME`.
    public static let noName = StageReason(code: 2)
    /// The link kind is `team` (statement 16).
    public static let team = StageReason(code: 3)
    /// An `RTM_DELLINK` for an interface with a master (statement 17).
    public static let deleteWithMaster = StageReason(code: 4)
    /// An interface that existed at a cold start (statements 22, 28).
    public static let oldInterface = StageReason(code: 5)
    /// The name cannot be used as a Redis key part.
    public static let unsafeName = StageReason(code: 6)
    /// The MTU is outside the accepted range.
    public static let mtuOutOfRange = StageReason(code: 7)
    /// The port changes state faster than the flap-rate guard allows (flagged, never dropped).
    public static let flapRate = StageReason(code: 8)
    /// Fewer bytes left than a netlink header.
    public static let truncatedHeader = StageReason(code: 9)
    /// `nlmsg_len` is below the header size or beyond the datagram.
    public static let badMessageLength = StageReason(code: 10)
    /// The message is too short for its fixed payload (`ifinfomsg`).
    public static let truncatedPayload = StageReason(code: 11)
    /// An attribute's length is below its header size or beyond the message.
    public static let badAttributeLength = StageReason(code: 12)
    /// An attribute has the wrong size or content for its type.
    public static let invalidAttribute = StageReason(code: 13)
    /// A message that is neither `RTM_NEWLINK` nor `RTM_DELLINK` (statement 13).
    public static let notLink = StageReason(code: 14)
    /// Merged into a later state of the same port.
    public static let coalesced = StageReason(code: 15)
    /// Lost to the `drop_oldest` policy: a newer message took its place.
    public static let dropOldest = StageReason(code: 16)
    /// Lost to the `drop_newest` policy: the buffer was full when it came.
    public static let dropNewest = StageReason(code: 17)
    /// The hand-off buffer was full.
    public static let full = StageReason(code: 18)
    /// APPL_DB has no such port ("Cannot find … in port table", statement 18).
    public static let notInPortTable = StageReason(code: 19)
    /// Redis answered the write with an error.
    public static let redisError = StageReason(code: 20)
    /// The Redis connection was lost before the write was acknowledged.
    public static let connectionLost = StageReason(code: 21)
    /// An accepted port renamed: its old name is deleted as on a `RTM_DELLINK`.
    public static let renamed = StageReason(code: 22)

    /// Every reason, in code order.
    public static let allCases: [StageReason] = (0..<UInt16(names.count)).map { StageReason(code: $0) }

    /// The names of the reasons, indexed by code. Names of decode errors are `NetlinkDecodeError.kind`; names of
    /// filter verdicts are the raw values of `LinkVerdict.IgnoreReason` and `LinkVerdict.RejectReason`.
    static let names: [String] = [
        "none", "not_a_port", "no_name", "team", "dellink_with_master", "old_interface", "unsafe_name",
        "mtu_out_of_range", "flap_rate", "truncated_header", "bad_message_length", "truncated_payload",
        "bad_attribute_length", "invalid_attribute", "not_a_link_message", "coalesced", "drop_oldest", "drop_newest",
        "full", "not_in_port_table", "redis_error", "connection_lost", "renamed",
    ]

    /// The reason's snake_case name, as written in JSON, logs and metrics (`"not_a_port"`). Does not allocate.
    public var name: String { Self.names[Int(self.rawValue)] }

    /// The reason's name.
    public var description: String { self.name }

    /// Decodes a reason from its name; an unknown name is a `DecodingError.dataCorrupted`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let name = try container.decode(String.self)
        guard let reason = StageReason(name: name) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "unknown stage reason \"\(name)\"")
        }
        self = reason
    }

    /// Encodes the reason as its name.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.name)
    }
}

/// What one stage did with one message, and when: one entry of the `StageEventRing`.
///
/// A fixed-size value (no `String`, no reference), so recording it copies a few words and allocates nothing.
public struct StageEvent: Sendable, Hashable, Codable {
    /// The trace id given to the kernel message at extraction, shared by every stage event of that message.
    public var trace: UInt64
    /// The stage that emitted the event.
    public var stage: PipelineStage
    /// What the stage did with the message.
    public var outcome: StageOutcome
    /// Why (`.none` when the outcome needs no explanation).
    public var reason: StageReason
    /// When, in microseconds of the monotonic clock. The stages of one message from receive to hand-off carry
    /// the time its datagram was read (`PipelineCore`); the write stage, the time of Redis's reply.
    public var timestamp: UInt64

    /// An event; `reason` defaults to `.none`.
    @inlinable
    public init(
        trace: UInt64, stage: PipelineStage, outcome: StageOutcome, reason: StageReason = .none, timestamp: UInt64
    ) {
        self.trace = trace
        self.stage = stage
        self.outcome = outcome
        self.reason = reason
        self.timestamp = timestamp
    }
}

/// The latest stage events, in a fixed-size ring that is allocated once and then overwritten in place.
///
/// Contract:
/// - Single-threaded: the ring belongs to the port queue and takes no lock. Readers on that queue may query it at
///   any time; other queues get a copy of what they need (an `[StageEvent]` from `all()` or a query).
/// - `record` does not allocate: the storage is an array of `capacity` events filled once by `init`, and `record`
///   assigns one element of it and moves an index. The array stays uniquely referenced as long as the ring itself
///   is not copied; copying the ring (a `let snapshot = ring`) shares the storage, and the next `record` on either
///   copy then duplicates it once (copy-on-write). `storageIdentity` and `storageCapacity` let a test prove that
///   recording keeps the same buffer.
/// - Once `capacity` events are held, each new one replaces the oldest. `totalRecorded` counts every event ever
///   recorded, so `totalRecorded - count` were overwritten.
public struct StageEventRing: Sendable {
    /// The default number of events kept.
    public static let defaultCapacity = 10_000

    /// How many events the ring keeps, at least 1.
    public let capacity: Int
    /// Every event ever recorded, including those overwritten since.
    public var totalRecorded: UInt64 { self.recorded }

    @usableFromInline var recorded: UInt64 = 0
    @usableFromInline var buffer: [StageEvent]
    /// Where the next event goes; also the oldest event once the ring is full.
    @usableFromInline var next = 0

    /// An empty ring that keeps the latest `capacity` events (values below 1 keep 1). Allocates its storage once.
    public init(capacity: Int = StageEventRing.defaultCapacity) {
        self.capacity = Swift.max(1, capacity)
        let blank = StageEvent(trace: 0, stage: .receive, outcome: .pass, reason: .none, timestamp: 0)
        self.buffer = Array(repeating: blank, count: self.capacity)
    }

    /// How many events the ring holds now: `min(totalRecorded, capacity)`.
    public var count: Int {
        self.totalRecorded < UInt64(self.capacity) ? Int(self.totalRecorded) : self.capacity
    }

    /// Records one event, replacing the oldest when the ring is full. Constant time; does not allocate.
    @inlinable
    public mutating func record(_ event: StageEvent) {
        self.buffer[self.next] = event
        self.next += 1
        if self.next == self.capacity { self.next = 0 }
        self.recorded &+= 1
    }

    /// Every event held, oldest first.
    public func all() -> [StageEvent] {
        var result: [StageEvent] = []
        result.reserveCapacity(self.count)
        self.forEachOldestFirst { result.append($0) }
        return result
    }

    /// Every event of one trace id still held, in recording order (so stage by stage for one message).
    public func events(trace: UInt64) -> [StageEvent] {
        var result: [StageEvent] = []
        self.forEachOldestFirst { event in
            if event.trace == trace { result.append(event) }
        }
        return result
    }

    /// The latest `n` events held that match `stage` and `outcome` (each `nil` matches any), newest last.
    /// `n` of 0 or less gives an empty array.
    public func latest(_ n: Int, stage: PipelineStage? = nil, outcome: StageOutcome? = nil) -> [StageEvent] {
        guard n > 0 else { return [] }
        var result: [StageEvent] = []
        var position = self.next
        for _ in 0..<self.count {
            position = position == 0 ? self.capacity - 1 : position - 1
            let event = self.buffer[position]
            if let stage, event.stage != stage { continue }
            if let outcome, event.outcome != outcome { continue }
            result.append(event)
            if result.count == n { break }
        }
        result.reverse()
        return result
    }

    /// The address of the ring's storage: unchanged by `record` (the storage is written in place).
    public var storageIdentity: UInt {
        self.buffer.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
    }

    /// The number of events the storage has room for: unchanged by `record`.
    public var storageCapacity: Int { self.buffer.capacity }

    private func forEachOldestFirst(_ body: (StageEvent) -> Void) {
        let count = self.count
        let start = count < self.capacity ? 0 : self.next
        for offset in 0..<count {
            let position = start + offset
            body(self.buffer[position < self.capacity ? position : position - self.capacity])
        }
    }
}

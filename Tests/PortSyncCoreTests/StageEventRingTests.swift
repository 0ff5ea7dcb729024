import Foundation
import PortSyncCore
import Testing

/// The stage event ring: wrap-around, queries, recording without allocating, and the reason codes.
@Suite("StageEventRing")
struct StageEventRingTests {
    static func event(
        _ trace: UInt64, _ stage: PipelineStage = .receive, _ outcome: StageOutcome = .pass,
        _ reason: StageReason = .none, at timestamp: UInt64? = nil
    ) -> StageEvent {
        StageEvent(trace: trace, stage: stage, outcome: outcome, reason: reason, timestamp: timestamp ?? trace * 10)
    }

    @Test("A new ring is empty and answers every query with nothing")
    func empty() {
        let ring = StageEventRing()
        #expect(ring.capacity == StageEventRing.defaultCapacity)
        #expect(ring.capacity == 10_000)
        #expect(ring.count == 0)
        #expect(ring.totalRecorded == 0)
        #expect(ring.all().isEmpty)
        #expect(ring.latest(5).isEmpty)
        #expect(ring.events(trace: 0).isEmpty)
    }

    @Test("Before wrapping, every event is kept in recording order")
    func beforeWrap() {
        var ring = StageEventRing(capacity: 5)
        for trace: UInt64 in 1...3 { ring.record(Self.event(trace)) }
        #expect(ring.count == 3)
        #expect(ring.totalRecorded == 3)
        #expect(ring.all().map(\.trace) == [1, 2, 3])
        #expect(ring.latest(2).map(\.trace) == [2, 3])
        #expect(ring.latest(10).map(\.trace) == [1, 2, 3])
    }

    @Test("Capacity 5, 12 records: the last 5 are kept, oldest first")
    func wrapAround() {
        var ring = StageEventRing(capacity: 5)
        for trace: UInt64 in 1...12 { ring.record(Self.event(trace)) }
        #expect(ring.capacity == 5)
        #expect(ring.count == 5)
        #expect(ring.totalRecorded == 12)
        #expect(ring.all() == (8...12).map { Self.event($0) })
        #expect(ring.latest(3).map(\.trace) == [10, 11, 12])
        #expect(ring.latest(5).map(\.trace) == [8, 9, 10, 11, 12])
        #expect(ring.latest(50).map(\.trace) == [8, 9, 10, 11, 12])
        #expect(ring.latest(0).isEmpty)
        #expect(ring.latest(-1).isEmpty)
        #expect(ring.events(trace: 7).isEmpty, "overwritten")
        #expect(ring.events(trace: 8) == [Self.event(8)])
    }

    @Test("Wrapping exactly at the capacity, and every count up to three turns")
    func everyFill() {
        for total in 0...15 {
            var ring = StageEventRing(capacity: 5)
            for trace in 0..<UInt64(total) { ring.record(Self.event(trace)) }
            let kept = UInt64(max(0, total - 5))..<UInt64(total)
            #expect(ring.all().map(\.trace) == Array(kept), "after \(total) records")
            #expect(ring.count == min(total, 5))
        }
    }

    @Test("One trace's stage events come back in order, among other traces' events")
    func byTrace() {
        var ring = StageEventRing(capacity: 100)
        let stages: [PipelineStage] = [.receive, .prefilter, .extract, .validate, .handoff, .write]
        var expected: [StageEvent] = []
        var time: UInt64 = 0
        for (index, stage) in stages.enumerated() {
            for trace: UInt64 in [41, 42, 43] {
                time += 1
                let outcome: StageOutcome = stage == .write ? .done : .pass
                let event = Self.event(trace, stage, outcome, at: time)
                ring.record(event)
                if trace == 42 { expected.append(event) }
            }
            #expect(ring.events(trace: 42).count == index + 1)
        }
        #expect(ring.events(trace: 42) == expected)
        #expect(ring.events(trace: 42).map(\.stage) == stages)
        #expect(ring.events(trace: 99).isEmpty)
    }

    @Test("A trace partly overwritten gives its stages still held")
    func byTracePartlyOverwritten() {
        var ring = StageEventRing(capacity: 4)
        ring.record(Self.event(1, .receive))
        ring.record(Self.event(1, .prefilter))
        ring.record(Self.event(1, .extract))
        ring.record(Self.event(2, .receive))
        ring.record(Self.event(1, .validate))
        #expect(ring.events(trace: 1).map(\.stage) == [.prefilter, .extract, .validate])
    }

    @Test("The latest N, filtered by stage, by outcome, or both, newest last")
    func latestFiltered() {
        var ring = StageEventRing(capacity: 8)
        let events = [
            Self.event(1, .prefilter, .ignore, .notAPort),
            Self.event(2, .prefilter, .pass),
            Self.event(3, .validate, .reject, .unsafeName),
            Self.event(4, .prefilter, .ignore, .oldInterface),
            Self.event(5, .handoff, .drop, .dropNewest),
            Self.event(6, .prefilter, .ignore, .team),
            Self.event(7, .write, .done),
            Self.event(8, .extract, .reject, .badAttributeLength),
            Self.event(9, .prefilter, .ignore, .noName),
            Self.event(10, .validate, .pass),
        ]
        for event in events { ring.record(event) }
        // Held: traces 3…10.
        #expect(ring.latest(2, stage: .prefilter).map(\.trace) == [6, 9])
        #expect(ring.latest(10, stage: .prefilter).map(\.trace) == [4, 6, 9])
        #expect(ring.latest(10, outcome: .reject).map(\.trace) == [3, 8])
        #expect(ring.latest(1, outcome: .reject).map(\.trace) == [8])
        #expect(ring.latest(10, stage: .prefilter, outcome: .pass).isEmpty, "trace 2 was overwritten")
        #expect(ring.latest(10, stage: .validate, outcome: .pass).map(\.trace) == [10])
        #expect(ring.latest(10, stage: .handoff, outcome: .drop) == [events[4]])
        #expect(ring.latest(10, stage: .receive).isEmpty)
    }

    @Test("A capacity below 1 keeps one event")
    func minimumCapacity() {
        for capacity in [0, -3] {
            var ring = StageEventRing(capacity: capacity)
            #expect(ring.capacity == 1)
            ring.record(Self.event(1))
            ring.record(Self.event(2))
            #expect(ring.all().map(\.trace) == [2])
            #expect(ring.totalRecorded == 2)
        }
    }

    /// `record` writes in place: one million records (100 turns of the ring) keep the storage allocated by `init`.
    /// The storage is checked after every record, so a buffer replaced and then replaced back (two allocations
    /// reusing each other's addresses) is caught too.
    @Test("Recording 1 000 000 events keeps the storage allocated at init")
    func recordDoesNotReallocate() {
        var ring = StageEventRing()
        let identity = ring.storageIdentity
        let capacity = ring.storageCapacity
        #expect(identity != 0)
        #expect(capacity >= ring.capacity)
        var event = Self.event(0, .validate, .reject, .flapRate)
        var moved = 0
        for trace: UInt64 in 1...1_000_000 {
            event.trace = trace
            event.timestamp = trace
            ring.record(event)
            if ring.storageIdentity != identity { moved += 1 }
        }
        #expect(moved == 0, "records after which the storage was elsewhere")
        #expect(ring.storageIdentity == identity)
        #expect(ring.storageCapacity == capacity)
        #expect(ring.totalRecorded == 1_000_000)
        #expect(ring.count == 10_000)
        #expect(ring.latest(1).first?.trace == 1_000_000)
        #expect(ring.all().first?.trace == 990_001)
    }

    @Test("Stage events round-trip through JSON, the reason as its name")
    func eventJSON() throws {
        let event = Self.event(77, .handoff, .drop, .dropOldest, at: 123_456)
        let data = try JSONEncoder().encode(event)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["reason"] as? String == "drop_oldest")
        #expect(object["stage"] as? String == "handoff")
        #expect(object["outcome"] as? String == "drop")
        #expect(object["trace"] as? Int == 77)
        #expect(object["timestamp"] as? Int == 123_456)
        #expect(try JSONDecoder().decode(StageEvent.self, from: data) == event)
    }
}

/// The reason codes: names, lookup both ways, and agreement with the decoder's and filter's names.
@Suite("StageEventRing: StageReason")
struct StageReasonTests {
    static let expectedNames: [(StageReason, String)] = [
        (.none, "none"), (.notAPort, "not_a_port"), (.noName, "no_name"), (.team, "team"),
        (.deleteWithMaster, "dellink_with_master"), (.oldInterface, "old_interface"), (.unsafeName, "unsafe_name"),
        (.mtuOutOfRange, "mtu_out_of_range"), (.flapRate, "flap_rate"), (.truncatedHeader, "truncated_header"),
        (.badMessageLength, "bad_message_length"), (.truncatedPayload, "truncated_payload"),
        (.badAttributeLength, "bad_attribute_length"), (.invalidAttribute, "invalid_attribute"),
        (.notLink, "not_a_link_message"), (.coalesced, "coalesced"), (.dropOldest, "drop_oldest"),
        (.dropNewest, "drop_newest"), (.full, "full"), (.notInPortTable, "not_in_port_table"),
        (.redisError, "redis_error"), (.connectionLost, "connection_lost"), (.renamed, "renamed"),
    ]

    @Test("Every reason has its name, a distinct code, and is found by name and by code")
    func names() {
        #expect(StageReason.allCases.count == Self.expectedNames.count)
        #expect(Set(StageReason.allCases).count == StageReason.allCases.count)
        #expect(Set(StageReason.allCases.map(\.name)).count == StageReason.allCases.count)
        for (reason, name) in Self.expectedNames {
            #expect(reason.name == name)
            #expect(reason.description == name)
            #expect(StageReason(name: name) == reason)
            #expect(StageReason(rawValue: reason.rawValue) == reason)
        }
    }

    @Test("Unknown codes and names are refused")
    func unknown() {
        #expect(StageReason(rawValue: UInt16(StageReason.allCases.count)) == nil)
        #expect(StageReason(rawValue: .max) == nil)
        #expect(StageReason(name: "") == nil)
        #expect(StageReason(name: "Not_A_Port") == nil)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(StageReason.self, from: Data(#""no_such_reason""#.utf8))
        }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(StageReason.self, from: Data("3".utf8)) }
    }

    @Test("Reasons encode as their names and decode back")
    func json() throws {
        for reason in StageReason.allCases {
            let data = try JSONEncoder().encode([reason])
            #expect(String(decoding: data, as: UTF8.self) == "[\"\(reason.name)\"]")
            #expect(try JSONDecoder().decode([StageReason].self, from: data) == [reason])
        }
    }

    @Test("Every filter verdict and decode error has a reason of the same name")
    func sameNamesAsFilterAndDecoder() {
        for ignore in LinkVerdict.IgnoreReason.allCases {
            #expect(StageReason(name: ignore.rawValue) != nil, "ignore reason \(ignore.rawValue)")
        }
        for reject in LinkVerdict.RejectReason.allCases {
            #expect(StageReason(name: reject.rawValue) != nil, "reject reason \(reject.rawValue)")
        }
        let errors: [(NetlinkDecodeError, StageReason)] = [
            (.truncatedHeader(remaining: 3), .truncatedHeader),
            (.badMessageLength(length: 8, remaining: 20), .badMessageLength),
            (.truncatedPayload(type: 16, length: 20), .truncatedPayload),
            (.badAttributeLength(attribute: 3, length: 2, remaining: 8), .badAttributeLength),
            (.invalidAttribute(attribute: 3, reason: .emptyName), .invalidAttribute),
        ]
        for (error, reason) in errors { #expect(StageReason(name: error.kind) == reason) }
    }
}

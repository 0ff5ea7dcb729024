import Foundation
import PortSyncCore
import Testing

/// The pipeline snapshot: JSON shape and round trip, the `STATUS=` line, and the stage counters behind it.
@Suite("PipelineSnapshot")
struct PipelineSnapshotTests {
    /// A snapshot with a value in every field.
    static func fixed() -> PipelineSnapshot {
        var counters = StageCounters()
        for _ in 0..<1234 { counters.count(.receive, .pass) }
        for _ in 0..<12 { counters.count(.receive, .reject, .truncatedHeader) }
        for _ in 0..<30 { counters.count(.prefilter, .ignore, .notAPort) }
        counters.count(.validate, .reject, .unsafeName)
        for _ in 0..<1200 { counters.count(.handoff, .pass) }
        for _ in 0..<1190 { counters.count(.write, .done) }
        return PipelineSnapshot(
            takenAtMicros: 987_654_321, uptimeSeconds: 3600.25,
            messages: PipelineSnapshot.Messages(
                datagrams: 300, bytes: 1_048_576, newlink: 1000, dellink: 200, other: 22,
                malformed: ["truncated_header": 10, "bad_attribute_length": 2]),
            stages: PipelineSnapshot.stages(counters),
            handoff: PipelineSnapshot.Handoff(
                depth: 3, capacity: 2048, policy: "coalesce", backpressureEvents: 4, droppedFullBuffer: 0,
                dropped: [:], coalesced: 17, retries: 2,
                wait: LatencySummary(
                    count: 1200, p50: 4, p99: 40, p999: 95, max: 130, under10us: 900, under100us: 1199,
                    under1ms: 1200, atLeast1ms: 0)),
            writer: PipelineSnapshot.Writer(
                inFlight: 5, writes: 1150, deletes: 40, errors: 1, reconnects: 1,
                latency: LatencySummary(
                    count: 1190, p50: 90, p99: 180, p999: 400, max: 2500, under10us: 0, under100us: 700,
                    under1ms: 1180, atLeast1ms: 10)),
            candidatesSent: 1200)
    }

    static func jsonObject(_ snapshot: PipelineSnapshot) throws -> [String: Any] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try #require(try JSONSerialization.jsonObject(with: encoder.encode(snapshot)) as? [String: Any])
    }

    static func keys(_ value: Any?) -> Set<String> {
        Set((value as? [String: Any])?.keys.map { $0 } ?? [])
    }

    @Test("JSON round trip gives the same snapshot")
    func roundTrip() throws {
        let snapshot = Self.fixed()
        let data = try JSONEncoder().encode(snapshot)
        #expect(try JSONDecoder().decode(PipelineSnapshot.self, from: data) == snapshot)
        let empty = PipelineSnapshot()
        #expect(try JSONDecoder().decode(PipelineSnapshot.self, from: JSONEncoder().encode(empty)) == empty)
    }

    @Test("JSON keys are snake_case, at every level")
    func keyNames() throws {
        let object = try Self.jsonObject(Self.fixed())
        #expect(
            Set(object.keys)
                == ["taken_at_us", "uptime_s", "messages", "stages", "handoff", "writer", "candidates_sent"])
        #expect(object["taken_at_us"] as? Int == 987_654_321)
        #expect(object["uptime_s"] as? Double == 3600.25)
        #expect(object["candidates_sent"] as? Int == 1200)
        #expect(
            Self.keys(object["messages"]) == ["datagrams", "bytes", "newlink", "dellink", "other", "malformed"])
        let messages = try #require(object["messages"] as? [String: Any])
        #expect(Self.keys(messages["malformed"]) == ["truncated_header", "bad_attribute_length"])
        #expect(
            Self.keys(object["handoff"]) == [
                "depth", "capacity", "policy", "backpressure_events", "dropped_full_buffer", "dropped", "coalesced",
                "retries", "wait",
            ])
        #expect(
            Self.keys(object["writer"]) == [
                "in_flight", "writes", "deletes", "errors", "reconnects", "latency",
            ])
        let summaryKeys: Set<String> = [
            "count", "p50_us", "p99_us", "p999_us", "max_us", "under_10us", "under_100us", "under_1ms",
            "at_least_1ms", "sum_us",
        ]
        let handoff = try #require(object["handoff"] as? [String: Any])
        let writer = try #require(object["writer"] as? [String: Any])
        #expect(Self.keys(handoff["wait"]) == summaryKeys)
        #expect(Self.keys(writer["latency"]) == summaryKeys)
        #expect((handoff["wait"] as? [String: Any])?["p99_us"] as? Int == 40)
        #expect(handoff["policy"] as? String == "coalesce")
    }

    @Test("stages: every stage and every outcome, zeros included; only the reasons counted")
    func stageKeys() throws {
        let object = try Self.jsonObject(Self.fixed())
        let stages = try #require(object["stages"] as? [String: Any])
        #expect(Set(stages.keys) == Set(PipelineStage.allCases.map(\.rawValue)))
        for stage in PipelineStage.allCases {
            let entry = try #require(stages[stage.rawValue] as? [String: Any])
            #expect(Set(entry.keys) == ["outcomes", "reasons"])
            #expect(Self.keys(entry["outcomes"]) == Set(StageOutcome.allCases.map(\.rawValue)))
        }
        let receive = try #require(stages["receive"] as? [String: Any])
        let outcomes = try #require(receive["outcomes"] as? [String: Any])
        #expect(outcomes["pass"] as? Int == 1234)
        #expect(outcomes["reject"] as? Int == 12)
        #expect(outcomes["drop"] as? Int == 0)
        #expect(receive["reasons"] as? [String: Int] == ["truncated_header": 12])
        let prefilter = try #require(stages["prefilter"] as? [String: Any])
        #expect(prefilter["reasons"] as? [String: Int] == ["not_a_port": 30])
        let write = try #require(stages["write"] as? [String: Any])
        #expect(write["reasons"] as? [String: Int] == [:], "`none` is not listed")
    }

    @Test("dropped: per priority, then per reason")
    func droppedShape() throws {
        var snapshot = Self.fixed()
        snapshot.handoff.dropped = ["low": ["drop_newest": 7, "full": 2], "medium": ["drop_oldest": 1]]
        let object = try Self.jsonObject(snapshot)
        let handoff = try #require(object["handoff"] as? [String: Any])
        let dropped = handoff["dropped"] as? [String: [String: Int]]
        #expect(dropped == ["low": ["drop_newest": 7, "full": 2], "medium": ["drop_oldest": 1]])
        #expect(snapshot.handoff.droppedTotal == 10)
        #expect(try JSONDecoder().decode(PipelineSnapshot.self, from: JSONEncoder().encode(snapshot)) == snapshot)
    }

    @Test("The STATUS= line of a fixed snapshot")
    func statusSummary() {
        #expect(
            Self.fixed().statusSummary()
                == "msgs 1234 (12 malformed), sent 1200, handoff 3/2048 p99 40µs, drops 0, redis p99 180µs")
    }

    @Test("The STATUS= line with drops, slow latencies and nothing measured yet")
    func statusSummaryVariants() {
        var snapshot = Self.fixed()
        snapshot.handoff.dropped = ["low": ["drop_newest": 5], "high": ["full": 1]]
        snapshot.handoff.wait.p99 = 1249
        snapshot.writer.latency.p99 = 2_345_678
        #expect(
            snapshot.statusSummary()
                == "msgs 1234 (12 malformed), sent 1200, handoff 3/2048 p99 1.2ms, drops 6, redis p99 2.3s")
        snapshot.handoff.wait.p99 = 999_999
        snapshot.writer.latency.p99 = 999_949
        #expect(snapshot.statusSummary().hasSuffix("p99 1.0s, drops 6, redis p99 999.9ms"))
        #expect(
            PipelineSnapshot().statusSummary()
                == "msgs 0 (0 malformed), sent 0, handoff 0/0 p99 -, drops 0, redis p99 -")
        #expect(!Self.fixed().statusSummary().contains("\n"))
    }

    @Test("A latency summary carries the histogram's figures")
    func latencySummary() {
        var histogram = LatencyHistogram()
        for value: UInt64 in 1...10_000 { histogram.record(value) }
        let summary = LatencySummary(histogram)
        #expect(summary.count == 10_000)
        #expect(summary.p50 == histogram.percentile(50))
        #expect(summary.p99 == histogram.percentile(99))
        #expect(summary.p999 == histogram.percentile(99.9))
        #expect(summary.max == 10_000)
        #expect(summary.under10us == 9)
        #expect(summary.under100us == 99)
        #expect(summary.under1ms == 999)
        #expect(summary.atLeast1ms == 9001)
        #expect(LatencySummary(LatencyHistogram()) == LatencySummary())
    }
}

/// The fixed-array counters behind `stages`.
@Suite("PipelineSnapshot: StageCounters")
struct StageCountersTests {
    @Test("Counts per stage and outcome, and per stage and reason")
    func counting() {
        var counters = StageCounters()
        counters.count(.prefilter, .ignore, .notAPort)
        counters.count(.prefilter, .ignore, .notAPort)
        counters.count(.prefilter, .ignore, .oldInterface)
        counters.count(.prefilter, .pass)
        counters.count(.handoff, .drop, .dropNewest)
        counters.count(StageEvent(trace: 9, stage: .handoff, outcome: .coalesce, reason: .coalesced, timestamp: 1))
        #expect(counters.total(.prefilter, .ignore) == 3)
        #expect(counters.total(.prefilter, .pass) == 1)
        #expect(counters.total(.prefilter) == 4)
        #expect(counters.total(.prefilter, reason: .notAPort) == 2)
        #expect(counters.total(.prefilter, reason: .oldInterface) == 1)
        #expect(counters.total(.prefilter, reason: .none) == 1)
        #expect(counters.total(.handoff, .drop) == 1)
        #expect(counters.total(.handoff, .coalesce) == 1)
        #expect(counters.total(.handoff, reason: .coalesced) == 1)
        #expect(counters.total(.handoff, reason: .notAPort) == 0, "reasons are per stage")
        #expect(counters.total(.receive) == 0)
        for stage in PipelineStage.allCases where stage != .prefilter && stage != .handoff {
            #expect(counters.total(stage) == 0)
        }
    }

    @Test("Every stage and outcome pair has its own counter")
    func everyPair() {
        var counters = StageCounters()
        for (stageIndex, stage) in PipelineStage.allCases.enumerated() {
            for (outcomeIndex, outcome) in StageOutcome.allCases.enumerated() {
                for _ in 0..<(stageIndex * 10 + outcomeIndex) { counters.count(stage, outcome) }
            }
        }
        for (stageIndex, stage) in PipelineStage.allCases.enumerated() {
            for (outcomeIndex, outcome) in StageOutcome.allCases.enumerated() {
                #expect(counters.total(stage, outcome) == UInt64(stageIndex * 10 + outcomeIndex))
            }
        }
        let stages = PipelineSnapshot.stages(counters)
        #expect(stages["validate"]?.outcomes["drop"] == 34)
        #expect(stages["receive"]?.outcomes["pass"] == 0)
        #expect(stages["write"]?.outcomes.count == StageOutcome.allCases.count)
    }

    @Test("Every reason has its own counter in every stage")
    func everyReason() {
        var counters = StageCounters()
        for (index, reason) in StageReason.allCases.enumerated() {
            for _ in 0...index { counters.count(.write, .reject, reason) }
        }
        for (index, reason) in StageReason.allCases.enumerated() {
            #expect(counters.total(.write, reason: reason) == UInt64(index + 1))
            #expect(counters.total(.validate, reason: reason) == 0)
        }
    }

    @Test("Merge adds, reset clears")
    func mergeAndReset() {
        var first = StageCounters()
        first.count(.extract, .reject, .invalidAttribute)
        var second = StageCounters()
        second.count(.extract, .reject, .invalidAttribute)
        second.count(.write, .done)
        first.merge(second)
        #expect(first.total(.extract, .reject) == 2)
        #expect(first.total(.extract, reason: .invalidAttribute) == 2)
        #expect(first.total(.write, .done) == 1)
        first.reset()
        #expect(first == StageCounters())
        #expect(PipelineSnapshot.stages(first) == PipelineSnapshot.stages(StageCounters()))
    }
}

import Foundation
import Testing

@testable import PortSyncCore

/// The bounded hand-off between the pipeline and the Redis writer: order, the five policies, run-time changes and
/// counters, plus a randomized comparison with a naive reference queue under every policy.
@Suite("HandoffQueue")
struct HandoffQueueTests {
    typealias Queue = HandoffQueue<Int>
    typealias Item = HandoffItem<Int>

    static func item(_ key: String, _ priority: HandoffPriority = .medium, trace: UInt64, payload: Int = 0) -> Item {
        Item(key: key, priority: priority, trace: trace, payload: payload)
    }

    /// Takes everything, returning the traces in the order taken.
    static func drain(_ queue: inout Queue, now: UInt64 = 0) -> [UInt64] {
        var traces: [UInt64] = []
        for _ in 0..<queue.count {
            guard let taken = queue.take(now: now) else { break }
            traces.append(taken.item.trace)
        }
        return traces
    }

    /// Takes one item, which must be there.
    static func take(_ queue: inout Queue, now: UInt64) throws -> (item: Item, waitMicros: UInt64) {
        let taken = queue.take(now: now)
        return try #require(taken)
    }

    // MARK: - Order

    @Test("one priority: first in, first out, across ports")
    func fifoWithinPriority() {
        var queue = Queue(capacity: 16, policy: .block)
        for (trace, key) in ["Ethernet0", "Ethernet4", "Ethernet0", "Ethernet8", "Ethernet4"].enumerated() {
            #expect(queue.offer(Self.item(key, trace: UInt64(trace)), now: 0) == .accepted)
        }
        #expect(queue.count == 5)
        #expect(Self.drain(&queue) == [0, 1, 2, 3, 4])
        #expect(queue.isEmpty)
        #expect(queue.take(now: 0) == nil)
    }

    @Test("the most urgent priority first, oldest first within one")
    func priorityOrder() {
        var queue = Queue(capacity: 16, policy: .block)
        let offers: [(String, HandoffPriority)] = [
            ("A", .low), ("B", .medium), ("C", .high), ("D", .low), ("E", .high), ("F", .medium),
        ]
        for (trace, (key, priority)) in offers.enumerated() {
            _ = queue.offer(Self.item(key, priority, trace: UInt64(trace)), now: 0)
        }
        #expect(queue.count(of: .high) == 2 && queue.count(of: .medium) == 2 && queue.count(of: .low) == 2)
        #expect(Self.drain(&queue) == [2, 4, 1, 5, 0, 3])
    }

    @Test("a port's earlier item is pulled forward by its own later, more urgent item, never overtaken")
    func perPortOrderPullsForward() {
        var queue = Queue(capacity: 16, policy: .block)
        _ = queue.offer(Self.item("A", .low, trace: 1), now: 0)
        _ = queue.offer(Self.item("B", .high, trace: 2), now: 0)
        _ = queue.offer(Self.item("A", .high, trace: 3), now: 0)
        _ = queue.offer(Self.item("C", .medium, trace: 4), now: 0)
        // High items leave in arrival order (2 then 3); A's low item goes just before A's high one.
        #expect(Self.drain(&queue) == [2, 1, 3, 4])

        _ = queue.offer(Self.item("A", .low, trace: 1), now: 0)
        _ = queue.offer(Self.item("A", .high, trace: 2), now: 0)
        _ = queue.offer(Self.item("B", .high, trace: 3), now: 0)
        _ = queue.offer(Self.item("A", .medium, trace: 4), now: 0)
        #expect(Self.drain(&queue) == [1, 2, 3, 4])
    }

    @Test("offer stamps enqueuedAt with now; take reports the wait")
    func waitTime() throws {
        var queue = Queue(capacity: 4, policy: .block)
        var offered = Self.item("A", trace: 7)
        offered.enqueuedAt = 999_999
        _ = queue.offer(offered, now: 1_000)
        #expect(queue.oldestEnqueuedAt == 1_000)
        #expect(queue.headWaitMicros(now: 1_250) == 250)
        let taken = try Self.take(&queue, now: 1_250)
        #expect(taken.item.enqueuedAt == 1_000 && taken.waitMicros == 250 && taken.item.trace == 7)
        #expect(queue.headWaitMicros(now: 5_000) == 0)
        #expect(queue.oldestEnqueuedAt == nil)

        // A clock that goes backwards never underflows.
        _ = queue.offer(Self.item("A", trace: 8), now: 2_000)
        #expect(queue.headWaitMicros(now: 1_000) == 0)
        #expect(queue.take(now: 1_000)?.waitMicros == 0)
    }

    // MARK: - Policies when full

    static func full(_ policy: HandoffPolicy, keys: [String] = ["A", "B", "C"], priority: HandoffPriority = .medium)
        -> Queue
    {
        var queue = Queue(capacity: keys.count, policy: policy)
        for (trace, key) in keys.enumerated() {
            _ = queue.offer(Self.item(key, priority, trace: UInt64(trace)), now: 0)
        }
        return queue
    }

    @Test("block: full is refused and nothing changes")
    func blockWhenFull() {
        var queue = Self.full(.block)
        #expect(queue.isFull)
        #expect(queue.offer(Self.item("D", .high, trace: 9), now: 0) == .full)
        #expect(queue.offer(Self.item("A", .high, trace: 9), now: 0) == .full)
        #expect(queue.count == 3)
        #expect(queue.counters.full == 2 && queue.counters.accepted == 3 && queue.counters.offered == 5)
        _ = queue.take(now: 0)
        #expect(queue.offer(Self.item("D", .high, trace: 9), now: 0) == .accepted)
        #expect(Self.drain(&queue) == [9, 1, 2])
    }

    @Test("drop_newest: the offered item is dropped, counted by its priority")
    func dropNewestWhenFull() {
        var queue = Self.full(.dropNewest)
        #expect(queue.offer(Self.item("A", .high, trace: 9), now: 0) == .droppedNewest)
        #expect(queue.offer(Self.item("D", .low, trace: 10), now: 0) == .droppedNewest)
        #expect(queue.counters.droppedNewest == HandoffPriorityCounts(high: 1, medium: 0, low: 1))
        #expect(queue.counters.droppedNewest.total == 2)
        #expect(Self.drain(&queue) == [0, 1, 2])
    }

    @Test("drop_oldest: the oldest item of the lowest priority present is evicted")
    func dropOldestWhenFull() {
        var queue = Queue(capacity: 4, policy: .dropOldest)
        _ = queue.offer(Self.item("A", .high, trace: 0), now: 0)
        _ = queue.offer(Self.item("B", .medium, trace: 1), now: 0)
        _ = queue.offer(Self.item("C", .low, trace: 2), now: 0)
        _ = queue.offer(Self.item("D", .low, trace: 3), now: 0)
        #expect(
            queue.offer(Self.item("E", .high, trace: 4), now: 0) == .droppedOldest(victimTrace: 2, victimPriority: .low)
        )
        #expect(
            queue.offer(Self.item("F", .low, trace: 5), now: 0) == .droppedOldest(victimTrace: 3, victimPriority: .low))
        #expect(
            queue.offer(Self.item("G", .low, trace: 6), now: 0) == .droppedOldest(victimTrace: 5, victimPriority: .low))
        #expect(
            queue.offer(Self.item("H", .medium, trace: 7), now: 0)
                == .droppedOldest(victimTrace: 6, victimPriority: .low))
        #expect(
            queue.offer(Self.item("I", .high, trace: 8), now: 0)
                == .droppedOldest(victimTrace: 1, victimPriority: .medium))
        #expect(
            queue.offer(Self.item("J", .high, trace: 9), now: 0)
                == .droppedOldest(victimTrace: 7, victimPriority: .medium))
        #expect(
            queue.offer(Self.item("K", .high, trace: 10), now: 0)
                == .droppedOldest(victimTrace: 0, victimPriority: .high))
        #expect(queue.count == 4 && queue.count(of: .high) == 4)
        #expect(queue.counters.droppedOldest == HandoffPriorityCounts(high: 1, medium: 2, low: 4))
        #expect(Self.drain(&queue) == [4, 8, 9, 10])
    }

    @Test("drop_oldest: an item in the middle of a port's queue can go; the port's order holds")
    func dropOldestMiddleOfPort() {
        var queue = Queue(capacity: 3, policy: .dropOldest)
        _ = queue.offer(Self.item("A", .high, trace: 0), now: 0)
        _ = queue.offer(Self.item("A", .low, trace: 1), now: 0)
        _ = queue.offer(Self.item("A", .high, trace: 2), now: 0)
        #expect(
            queue.offer(Self.item("A", .medium, trace: 3), now: 0)
                == .droppedOldest(victimTrace: 1, victimPriority: .low))
        #expect(queue.portCount == 1)
        #expect(Self.drain(&queue) == [0, 2, 3])
    }

    @Test("coalesce: not full, every item is kept (no deduplication)")
    func coalesceKeepsAllWhileRoom() {
        var queue = Queue(capacity: 8, policy: .coalesce)
        for trace in 0..<8 { #expect(queue.offer(Self.item("A", trace: UInt64(trace)), now: 0) == .accepted) }
        #expect(queue.count == 8 && queue.counters.coalesced == 0)
        #expect(Self.drain(&queue) == Array(0..<8))
    }

    @Test("coalesce: full, a queued port's newest item is replaced in place, keeping the more urgent priority")
    func coalesceReplacesNewest() throws {
        var queue = Queue(capacity: 3, policy: .coalesce)
        _ = queue.offer(Self.item("A", .high, trace: 0, payload: 0), now: 10)
        _ = queue.offer(Self.item("B", .medium, trace: 1, payload: 1), now: 20)
        _ = queue.offer(Self.item("A", .high, trace: 2, payload: 2), now: 30)
        #expect(queue.offer(Self.item("A", .low, trace: 3, payload: 3), now: 40) == .coalesced(replacedTrace: 2))
        #expect(queue.offer(Self.item("B", .low, trace: 4, payload: 4), now: 50) == .coalesced(replacedTrace: 1))
        #expect(queue.count == 3 && queue.counters.coalesced == 2)
        let first = try Self.take(&queue, now: 100)
        #expect(first.item.trace == 0)
        let second = try Self.take(&queue, now: 100)
        // A's newest keeps its place, its time and its high priority, with the latest content.
        #expect(second.item.trace == 3 && second.item.payload == 3 && second.item.priority == .high)
        #expect(second.item.enqueuedAt == 30 && second.waitMicros == 70)
        let third = try Self.take(&queue, now: 100)
        #expect(third.item.trace == 4 && third.item.priority == .medium && third.item.enqueuedAt == 20)
    }

    @Test("coalesce: full, a more urgent item replacing a port's newest joins its priority as a new item")
    func coalesceUpgrade() throws {
        var queue = Queue(capacity: 3, policy: .coalesce)
        _ = queue.offer(Self.item("A", .low, trace: 0), now: 10)
        _ = queue.offer(Self.item("B", .high, trace: 1), now: 20)
        _ = queue.offer(Self.item("C", .medium, trace: 2), now: 30)
        #expect(queue.offer(Self.item("A", .high, trace: 3), now: 40) == .coalesced(replacedTrace: 0))
        #expect(queue.count(of: .high) == 2 && queue.count(of: .low) == 0)
        let taken = try Self.take(&queue, now: 40)
        #expect(taken.item.trace == 1)
        let next = try Self.take(&queue, now: 40)
        #expect(next.item.trace == 3 && next.item.priority == .high && next.item.enqueuedAt == 40)
        #expect(Self.drain(&queue) == [2])
    }

    @Test("coalesce: full and a new port, the port with duplicates the longest loses its older one")
    func coalesceMakesRoom() throws {
        var queue = Queue(capacity: 5, policy: .coalesce)
        _ = queue.offer(Self.item("A", .medium, trace: 0, payload: 0), now: 0)
        _ = queue.offer(Self.item("B", .low, trace: 1, payload: 1), now: 0)
        _ = queue.offer(Self.item("B", .high, trace: 2, payload: 2), now: 0)
        _ = queue.offer(Self.item("A", .low, trace: 3, payload: 3), now: 0)
        _ = queue.offer(Self.item("A", .low, trace: 4, payload: 4), now: 0)
        // A got its second item (3) after B (2): B goes first. B's low then high: the high slot stays.
        #expect(queue.offer(Self.item("C", .low, trace: 5), now: 0) == .coalesced(replacedTrace: 1))
        #expect(queue.count == 5 && queue.count(of: .low) == 3 && queue.count(of: .high) == 1)
        // A's medium then low: the medium slot stays and takes the low item's content.
        #expect(queue.offer(Self.item("D", .low, trace: 6), now: 0) == .coalesced(replacedTrace: 0))
        #expect(queue.count(of: .medium) == 1 && queue.count(of: .low) == 3)
        #expect(queue.offer(Self.item("E", .low, trace: 7), now: 0) == .coalesced(replacedTrace: 3))
        // No port has two items left: the owner must pause intake.
        #expect(queue.offer(Self.item("F", .high, trace: 8), now: 0) == .full)
        #expect(queue.counters.full == 1 && queue.counters.coalesced == 3)
        let taken = try Self.take(&queue, now: 0)
        #expect(taken.item.trace == 2 && taken.item.payload == 2)
        let medium = try Self.take(&queue, now: 0)
        #expect(medium.item.trace == 4 && medium.item.payload == 4 && medium.item.priority == .medium)
        #expect(Self.drain(&queue) == [5, 6, 7])
    }

    @Test("policy names as configured", arguments: HandoffPolicy.allCases)
    func policyNames(policy: HandoffPolicy) throws {
        let names: [HandoffPolicy: String] = [
            .block: "block", .dropOldest: "drop_oldest", .dropNewest: "drop_newest", .coalesce: "coalesce",
            .adaptive: "adaptive",
        ]
        #expect(policy.rawValue == names[policy])
        #expect(Config.dropPolicies.contains(policy.rawValue))
        let json = try JSONEncoder().encode(policy)
        #expect(try JSONDecoder().decode(HandoffPolicy.self, from: json) == policy)
    }

    @Test("priorities are ordered by urgency")
    func priorityComparable() {
        #expect(HandoffPriority.low < .medium && HandoffPriority.medium < .high)
        #expect(max(HandoffPriority.low, .high) == .high)
        #expect(HandoffPriority.allCases == [.high, .medium, .low])
    }

    // MARK: - Adaptive

    @Test("adaptive: the mode switches exactly at the thresholds")
    func adaptiveThresholds() {
        var queue = Queue(capacity: 4, policy: .adaptive)
        #expect(queue.mode(now: 1_000_000) == .block)
        _ = queue.offer(Self.item("A", trace: 0), now: 1_000)
        _ = queue.offer(Self.item("B", trace: 1), now: 1_500)
        #expect(queue.mode(now: 1_000) == .block)
        #expect(queue.mode(now: 1_099) == .block)
        #expect(queue.mode(now: 1_100) == .coalesce)
        #expect(queue.mode(now: 2_000) == .coalesce)
        #expect(queue.mode(now: 2_001) == .shed)
        queue.adaptive = AdaptiveThresholds(blockBelowMicros: 10, shedAboveMicros: 20)
        #expect(queue.mode(now: 1_009) == .block)
        #expect(queue.mode(now: 1_010) == .coalesce)
        #expect(queue.mode(now: 1_020) == .coalesce)
        #expect(queue.mode(now: 1_021) == .shed)
        // The head is what counts: once A is taken, B's wait decides.
        _ = queue.take(now: 1_600)
        #expect(queue.mode(now: 1_505) == .block)
        #expect(queue.mode(now: 1_521) == .shed)
    }

    @Test("adaptive: below the lower threshold a full queue blocks")
    func adaptiveBlocks() {
        var queue = Self.full(.adaptive)
        #expect(queue.offer(Self.item("A", .high, trace: 9), now: 99) == .full)
        #expect(queue.count == 3 && queue.counters.full == 1)
    }

    @Test("adaptive: between the thresholds a full queue coalesces")
    func adaptiveCoalesces() {
        var queue = Self.full(.adaptive, keys: ["A", "A", "B"], priority: .low)
        #expect(queue.offer(Self.item("B", .low, trace: 9), now: 100) == .coalesced(replacedTrace: 2))
        #expect(queue.offer(Self.item("C", .low, trace: 10), now: 1_000) == .coalesced(replacedTrace: 0))
        #expect(queue.offer(Self.item("D", .low, trace: 11), now: 1_000) == .full)
        #expect(Self.drain(&queue) == [1, 9, 10])
    }

    @Test("adaptive: above the upper threshold low goes first, medium and high are coalesced, never dropped")
    func adaptiveSheds() {
        var queue = Queue(capacity: 4, policy: .adaptive)
        _ = queue.offer(Self.item("A", .low, trace: 0), now: 0)
        _ = queue.offer(Self.item("B", .high, trace: 1), now: 0)
        _ = queue.offer(Self.item("C", .low, trace: 2), now: 0)
        _ = queue.offer(Self.item("B", .medium, trace: 3), now: 0)
        let now: UInt64 = 1_001
        #expect(queue.mode(now: now) == .shed)
        #expect(queue.offer(Self.item("A", .low, trace: 4), now: now) == .droppedNewest)
        #expect(
            queue.offer(Self.item("D", .medium, trace: 5), now: now)
                == .droppedOldest(victimTrace: 0, victimPriority: .low))
        #expect(
            queue.offer(Self.item("E", .high, trace: 6), now: now)
                == .droppedOldest(victimTrace: 2, victimPriority: .low))
        #expect(queue.count(of: .low) == 0)
        // No low left: coalesce. B has two items (1, 3), E has one; a new port takes B's older one.
        #expect(queue.offer(Self.item("E", .high, trace: 7), now: now) == .coalesced(replacedTrace: 6))
        #expect(queue.offer(Self.item("F", .high, trace: 8), now: now) == .coalesced(replacedTrace: 1))
        // Nothing to coalesce with: refuse rather than drop a high or medium item.
        #expect(queue.offer(Self.item("G", .high, trace: 9), now: now) == .full)
        #expect(queue.offer(Self.item("G", .low, trace: 10), now: now) == .droppedNewest)
        #expect(queue.counters.droppedNewest == HandoffPriorityCounts(high: 0, medium: 0, low: 2))
        #expect(queue.counters.droppedOldest == HandoffPriorityCounts(high: 0, medium: 0, low: 2))
        #expect(Self.drain(&queue, now: now) == [3, 7, 8, 5])
    }

    // MARK: - Run-time changes

    @Test("capacity and policy change at run time without losing a queued item")
    func runTimeChanges() {
        var queue = Queue(capacity: 6, policy: .dropOldest)
        for trace in 0..<6 { _ = queue.offer(Self.item("P\(trace % 3)", .low, trace: UInt64(trace)), now: 0) }
        queue.capacity = 2
        #expect(queue.count == 6 && queue.isFull && queue.capacity == 2)
        // Over capacity, an offer never makes the queue longer.
        #expect(
            queue.offer(Self.item("X", .high, trace: 6), now: 0) == .droppedOldest(victimTrace: 0, victimPriority: .low)
        )
        #expect(queue.count == 6)
        queue.policy = .coalesce
        #expect(queue.offer(Self.item("X", .low, trace: 7), now: 0) == .coalesced(replacedTrace: 6))
        #expect(queue.count == 6)
        queue.policy = .block
        #expect(queue.offer(Self.item("Y", .high, trace: 8), now: 0) == .full)
        queue.capacity = 8
        #expect(!queue.isFull)
        #expect(queue.offer(Self.item("Y", .high, trace: 8), now: 0) == .accepted)
        #expect(Self.drain(&queue) == [7, 8, 1, 2, 3, 4, 5])
    }

    @Test("a capacity below one is read as one", arguments: [0, -5, Int.min])
    func capacityClamped(capacity: Int) {
        var queue = Queue(capacity: capacity, policy: .block)
        #expect(queue.capacity == 1)
        #expect(queue.offer(Self.item("A", trace: 0), now: 0) == .accepted)
        #expect(queue.offer(Self.item("B", trace: 1), now: 0) == .full)
        queue.capacity = -1
        #expect(queue.capacity == 1)
    }

    // MARK: - Counters

    @Test("counters: every offer is counted once by its outcome; depth is accepted minus taken")
    func counters() throws {
        var queue = Queue(capacity: 2, policy: .block)
        _ = queue.offer(Self.item("A", .high, trace: 0), now: 0)
        _ = queue.offer(Self.item("A", .low, trace: 1), now: 0)
        _ = queue.offer(Self.item("B", .low, trace: 2), now: 0)
        queue.policy = .dropNewest
        _ = queue.offer(Self.item("B", .medium, trace: 3), now: 0)
        queue.policy = .dropOldest
        _ = queue.offer(Self.item("B", .medium, trace: 4), now: 0)
        queue.policy = .coalesce
        _ = queue.offer(Self.item("B", .low, trace: 5), now: 0)
        _ = queue.take(now: 0)
        var expected = HandoffCounters()
        expected.offered = 6
        expected.accepted = 2
        expected.full = 1
        expected.droppedNewest.medium = 1
        expected.droppedOldest.low = 1
        expected.coalesced = 1
        expected.taken = 1
        expected.maxDepth = 2
        #expect(queue.counters == expected)
        #expect(queue.counters.offered == queue.counters.outcomes)
        let json = try JSONEncoder().encode(queue.counters)
        #expect(try JSONDecoder().decode(HandoffCounters.self, from: json) == expected)
    }

    // MARK: - Randomized, against a naive reference

    @Test(
        "random offers and takes over 50 ports match the reference; per-port order always holds",
        arguments: HandoffPolicy.allCases)
    func randomized(policy: HandoffPolicy) throws {
        let index = UInt64(HandoffPolicy.allCases.firstIndex(of: policy) ?? 0)
        for seed: UInt64 in [1, 2] {
            try Self.randomRun(policy: policy, seed: index * 100 + seed)
        }
    }

    @Test("random run-time changes of policy, capacity and thresholds keep every queued item")
    func randomizedRunTimeChanges() throws {
        for seed: UInt64 in [11, 12, 13, 14] {
            try Self.randomRun(policy: .coalesce, seed: seed, changeSettings: true)
        }
    }

    static func randomRun(policy: HandoffPolicy, seed: UInt64, changeSettings: Bool = false) throws {
        var random = SplitMix64(seed: seed)
        let keys = (0..<50).map { "Ethernet\($0 * 4)" }
        var queue = Queue(capacity: 24, policy: policy)
        var reference = ReferenceQueue(capacity: 24, policy: policy)
        var now: UInt64 = 0
        var trace: UInt64 = 0
        var lastOffered: [String: Item] = [:]
        var lastTaken: [String: UInt64] = [:]
        var takenTraces = Set<UInt64>()
        var droppedFinal = Set<UInt64>()  // traces whose content was lost (drop_newest, drop_oldest, shed)
        var modesSeen = Set<AdaptiveMode>()

        func take() throws {
            let expected = reference.take(now: now)
            let taken = queue.take(now: now)
            #expect(taken?.item.trace == expected?.item.trace, "seed \(seed)")
            #expect(taken?.waitMicros == expected?.waitMicros, "seed \(seed)")
            #expect(taken?.item.priority == expected?.item.priority, "seed \(seed)")
            guard let taken else { return }
            let key = taken.item.key
            if let previous = lastTaken[key] {
                #expect(previous < taken.item.trace, "per-port order broken for \(key), seed \(seed)")
            }
            lastTaken[key] = taken.item.trace
            takenTraces.insert(taken.item.trace)
        }

        for step in 0..<10_000 {
            // Phases of slow and fast clocks, so that `adaptive` goes through all its modes.
            now += random.next(below: [4, 20, 60][(step / 700) % 3])
            if changeSettings, random.next(below: 200) == 0 {
                let newPolicy = HandoffPolicy.allCases[Int(random.next(below: 5))]
                let newCapacity = Int(random.next(below: 40))
                queue.policy = newPolicy
                reference.policy = newPolicy
                queue.capacity = newCapacity
                reference.capacity = max(newCapacity, 1)
                let low = random.next(below: 400)
                let thresholds = AdaptiveThresholds(
                    blockBelowMicros: low, shedAboveMicros: low + random.next(below: 800))
                queue.adaptive = thresholds
                reference.adaptive = thresholds
            }
            // Phases where the writer is slower than the pipeline, and the other way round.
            let offerShare: UInt64 = (step / 500) % 2 == 0 ? 70 : 45
            if random.next(below: 100) < offerShare {
                let key = keys[Int(random.next(below: UInt64(keys.count)))]
                let priority = HandoffPriority.allCases[Int(random.next(below: 3))]
                trace += 1
                let offered = Item(key: key, priority: priority, trace: trace, payload: Int(trace))
                lastOffered[key] = offered
                // On `.full` the owner stops intake, lets the writer take one, and offers the same item again.
                for _ in 0...queue.count {
                    let expected = reference.offer(offered, now: now)
                    let outcome = queue.offer(offered, now: now)
                    #expect(outcome == expected, "step \(step), seed \(seed)")
                    if case .droppedNewest = outcome { droppedFinal.insert(offered.trace) }
                    if case .droppedOldest(let victim, _) = outcome { droppedFinal.insert(victim) }
                    guard outcome == .full else { break }
                    try take()
                }
            } else {
                try take()
            }
            #expect(queue.count == reference.slots.count, "step \(step), seed \(seed)")
            #expect(queue.portCount == Set(reference.slots.map(\.item.key)).count)
            for priority in HandoffPriority.allCases {
                #expect(queue.count(of: priority) == reference.slots.count { $0.item.priority == priority })
            }
            #expect(queue.mode(now: now) == reference.mode(now: now))
            if queue.isFull { modesSeen.insert(queue.mode(now: now)) }
            if step % 7 == 0 {
                let broken = Self.brokenInvariants(queue)
                #expect(broken.isEmpty, "step \(step), seed \(seed)")
            }
        }
        for _ in 0..<queue.count where !queue.isEmpty { try take() }
        #expect(queue.isEmpty, "seed \(seed)")
        #expect(reference.slots.isEmpty)

        let counters = queue.counters
        // The run reaches every behaviour of its policy.
        switch policy {
        case .block: #expect(counters.full > 0)
        case .dropOldest: #expect(counters.droppedOldest.total > 0)
        case .dropNewest: #expect(counters.droppedNewest.total > 0)
        case .coalesce: #expect(counters.coalesced > 0 && counters.full > 0)
        case .adaptive:
            #expect(modesSeen == Set(AdaptiveMode.allCases))
            #expect(counters.coalesced > 0 && counters.full > 0)
            #expect(counters.droppedNewest.low > 0 && counters.droppedOldest.low > 0)
        }
        #expect(counters.offered == counters.outcomes)
        #expect(counters.accepted == counters.taken)
        #expect(counters.maxDepth <= max(queue.capacity, 40))
        for (key, final) in lastOffered {
            let lost = droppedFinal.contains(final.trace)
            switch policy {
            case .block:
                #expect(takenTraces.contains(final.trace), "final state of \(key) lost, seed \(seed)")
            case .coalesce where !changeSettings:
                #expect(takenTraces.contains(final.trace), "final state of \(key) lost, seed \(seed)")
            case .adaptive where !changeSettings && final.priority != .low:
                // Shedding only ever drops low items; a medium or high final state is always written.
                #expect(takenTraces.contains(final.trace), "final state of \(key) lost, seed \(seed)")
            default:
                #expect(takenTraces.contains(final.trace) || lost, "final state of \(key) vanished, seed \(seed)")
            }
        }
        if policy == .block && !changeSettings {
            #expect(takenTraces.count == Int(trace))
        }
    }

    /// The bookkeeping's invariants, as the list of those broken: counts agree, list ends are live, dead entries
    /// never outnumber live ones by much.
    static func brokenInvariants(_ queue: Queue) -> [String] {
        var broken: [String] = []
        func check(_ holds: Bool, _ what: @autoclosure () -> String) { if !holds { broken.append(what()) } }
        check(queue.count == queue.slots.count && queue.depths.reduce(0, +) == queue.count, "counts")
        for priority in HandoffPriority.allCases {
            let lane = queue.lanes[priority.rawValue]
            let live = (0..<lane.count).count { queue.slots[lane[$0]] != nil }
            check(live == queue.depths[priority.rawValue], "\(priority) depth")
            check(lane.count <= 2 * live + 16, "\(priority) lane garbage")
            check(lane.first.map { queue.slots[$0] != nil } ?? true, "\(priority) lane first")
            check(lane.last.map { queue.slots[$0] != nil } ?? true, "\(priority) lane last")
        }
        var multi = 0
        for (key, port) in queue.ports {
            let sequences = (0..<port.sequences.count).map { port.sequences[$0] }
            let live = sequences.filter { queue.slots[$0]?.key == key }
            check(live.count == port.live && port.live > 0, "\(key) live")
            check(sequences == sequences.sorted(), "\(key) order")
            check(sequences.count <= 2 * port.live + 16, "\(key) garbage")
            check(port.sequences.first.map { queue.slots[$0] != nil } ?? false, "\(key) first")
            check(port.sequences.last.map { queue.slots[$0] != nil } ?? false, "\(key) last")
            check((port.multiStamp != nil) == (port.live >= 2), "\(key) stamp")
            if port.live >= 2 { multi += 1 }
        }
        check(queue.portCount == Set(queue.slots.values.map(\.key)).count, "port count")
        check(multi == queue.multiPortCount, "multi count")
        check(queue.multiPorts.count <= 2 * multi + 32, "multi garbage")
        return broken
    }

    @Test("a low item starved behind a stream of urgent ones leaves no garbage behind")
    func starvationBounded() {
        var queue = Queue(capacity: 64, policy: .dropOldest)
        _ = queue.offer(Self.item("starved", .low, trace: 0), now: 0)
        for trace in 1..<50_000 {
            let key = "P\(trace % 10)"
            // Each port's low item is pulled forward by its own high item right after it.
            _ = queue.offer(Self.item(key, trace % 2 == 0 ? .low : .high, trace: UInt64(trace)), now: 0)
            if trace % 2 == 1 {
                _ = queue.take(now: 0)
                _ = queue.take(now: 0)
            }
        }
        #expect(Self.brokenInvariants(queue).isEmpty)
        #expect(queue.lanes[HandoffPriority.low.rawValue].count <= 2 * queue.count(of: .low) + 16)
    }

    @Test("a large queue on one port stays fast under eviction and coalescing (no whole-queue scans)")
    func largeSinglePort() {
        var queue = Queue(capacity: 200_000, policy: .dropOldest)
        var trace: UInt64 = 0
        for index in 0..<200_000 {
            trace += 1
            _ = queue.offer(Self.item("A", index % 7 == 0 ? .high : .low, trace: trace), now: trace)
        }
        for _ in 0..<100_000 {
            trace += 1
            _ = queue.offer(Self.item("A", .low, trace: trace), now: trace)
        }
        queue.policy = .coalesce
        for index in 0..<100_000 {
            trace += 1
            _ = queue.offer(Self.item(index % 2 == 0 ? "A" : "B\(index)", .low, trace: trace), now: trace)
        }
        #expect(queue.count == 200_000)
        var previous: UInt64 = 0
        var ordered = true
        for _ in 0..<queue.count {
            guard let taken = queue.take(now: trace) else { break }
            if taken.item.key == "A" {
                ordered = ordered && previous < taken.item.trace
                previous = taken.item.trace
            }
        }
        #expect(ordered)
        #expect(queue.counters.taken == 200_000)
    }
}

extension HandoffQueueTests {
    /// The hand-off's rules written the obvious way: one array in arrival order, linear scans everywhere.
    struct ReferenceQueue {
        struct Slot {
            var sequence: UInt64
            var item: HandoffItem<Int>
        }

        var capacity: Int
        var policy: HandoffPolicy
        var adaptive = AdaptiveThresholds()
        var slots: [Slot] = []
        var nextSequence: UInt64 = 0
        /// When each port last went from one queued item to two (the order in which ports with duplicates coalesce).
        var multiSince: [String: UInt64] = [:]
        var nextStamp: UInt64 = 0

        init(capacity: Int, policy: HandoffPolicy) {
            self.capacity = max(capacity, 1)
            self.policy = policy
        }

        func count(of key: String) -> Int { self.slots.count { $0.item.key == key } }

        mutating func insert(_ item: HandoffItem<Int>) {
            self.slots.append(Slot(sequence: self.nextSequence, item: item))
            self.nextSequence += 1
            if self.count(of: item.key) == 2 {
                self.nextStamp += 1
                self.multiSince[item.key] = self.nextStamp
            }
        }

        @discardableResult
        mutating func remove(at index: Int) -> HandoffItem<Int> {
            let item = self.slots.remove(at: index).item
            if self.count(of: item.key) < 2 { self.multiSince[item.key] = nil }
            return item
        }

        func mode(now: UInt64) -> AdaptiveMode {
            let oldest = self.slots.map(\.item.enqueuedAt).min() ?? now
            let wait = now >= oldest ? now - oldest : 0
            if wait < self.adaptive.blockBelowMicros { return .block }
            if wait > self.adaptive.shedAboveMicros { return .shed }
            return .coalesce
        }

        mutating func take(now: UInt64) -> (item: HandoffItem<Int>, waitMicros: UInt64)? {
            for priority in HandoffPriority.allCases {
                guard let lead = self.slots.first(where: { $0.item.priority == priority }) else { continue }
                guard let index = self.slots.firstIndex(where: { $0.item.key == lead.item.key }) else { return nil }
                let item = self.remove(at: index)
                return (item, now >= item.enqueuedAt ? now - item.enqueuedAt : 0)
            }
            return nil
        }

        mutating func offer(_ offered: HandoffItem<Int>, now: UInt64) -> OfferOutcome {
            var item = offered
            item.enqueuedAt = now
            guard self.slots.count >= self.capacity else {
                self.insert(item)
                return .accepted
            }
            switch self.policy {
            case .block: return .full
            case .dropNewest: return .droppedNewest
            case .dropOldest: return self.dropOldest(item)
            case .coalesce: return self.coalesce(item)
            case .adaptive:
                switch self.mode(now: now) {
                case .block: return .full
                case .coalesce: return self.coalesce(item)
                case .shed:
                    if item.priority == .low { return .droppedNewest }
                    if self.slots.contains(where: { $0.item.priority == .low }) { return self.dropOldest(item) }
                    return self.coalesce(item)
                }
            }
        }

        mutating func dropOldest(_ item: HandoffItem<Int>) -> OfferOutcome {
            for priority in HandoffPriority.allCases.reversed() {
                guard let index = self.slots.firstIndex(where: { $0.item.priority == priority }) else { continue }
                let victim = self.remove(at: index)
                self.insert(item)
                return .droppedOldest(victimTrace: victim.trace, victimPriority: victim.priority)
            }
            return .full
        }

        mutating func coalesce(_ item: HandoffItem<Int>) -> OfferOutcome {
            if let index = self.slots.lastIndex(where: { $0.item.key == item.key }) {
                let old = self.slots[index].item
                if item.priority > old.priority {
                    self.remove(at: index)
                    self.insert(item)
                } else {
                    var merged = item
                    merged.priority = old.priority
                    merged.enqueuedAt = old.enqueuedAt
                    self.slots[index].item = merged
                }
                return .coalesced(replacedTrace: old.trace)
            }
            guard let key = self.multiSince.min(by: { $0.value < $1.value })?.key else { return .full }
            let indices = self.slots.indices.filter { self.slots[$0].item.key == key }
            let first = indices[0]
            let second = indices[1]
            let older = self.slots[first].item
            let newer = self.slots[second].item
            if older.priority >= newer.priority {
                var merged = newer
                merged.priority = older.priority
                merged.enqueuedAt = older.enqueuedAt
                self.slots[first].item = merged
                self.remove(at: second)
            } else {
                self.remove(at: first)
            }
            self.insert(item)
            return .coalesced(replacedTrace: older.trace)
        }
    }
}

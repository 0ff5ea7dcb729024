import PortSyncCore
import Testing

/// How long Redis keeps a write waiting, and when that is a stall.
@Suite("Redis stalls")
struct RedisStallTests {
    @Test("Replies answer the oldest write first; a lost connection forgets every write")
    func outstanding() {
        var writes = OutstandingWrites()
        #expect(writes.oldest == nil)
        for time in [10, 20, 30] as [UInt64] { writes.sent(at: time) }
        #expect(writes.oldest == 10 && writes.count == 3)
        #expect(writes.answered() == 10)
        #expect(writes.oldest == 20)
        writes.reset()
        #expect(writes.oldest == nil && writes.answered() == nil)
        // Many writes answered one by one keep their order across the storage's compaction.
        for time in 0..<5000 as Range<UInt64> { writes.sent(at: time) }
        for time in 0..<4000 as Range<UInt64> { #expect(writes.answered() == time) }
        writes.sent(at: 9999)
        #expect(writes.oldest == 4000 && writes.count == 1001)
    }

    @Test("A stall begins when the oldest write waits past the threshold and ends when it is answered")
    func episode() {
        var tracker = RedisStallTracker(thresholdMicros: 1000)
        #expect(tracker.check(oldest: nil, now: 5000) == nil)
        #expect(tracker.check(oldest: 100, now: 1000) == nil)
        #expect(tracker.check(oldest: 100, now: 1200) == .began(waitingMicros: 1100))
        #expect(tracker.check(oldest: 100, now: 3000) == nil)
        #expect(tracker.answered(sent: 100, now: 3000) == nil)
        #expect(tracker.check(oldest: 2900, now: 3000) == .ended(lastedMicros: 2900))
        #expect(tracker.episodes == 1 && tracker.longestMicros == 2900)
    }

    @Test("A stall no check saw is counted once, from its replies")
    func unseen() {
        var tracker = RedisStallTracker(thresholdMicros: 1000)
        #expect(tracker.answered(sent: 0, now: 1500) == .began(waitingMicros: 1500))
        #expect(tracker.answered(sent: 10, now: 1501) == nil)
        #expect(tracker.check(oldest: nil, now: 1502) == .ended(lastedMicros: 1502))
        #expect(tracker.episodes == 1)
    }
}

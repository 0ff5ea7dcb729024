import PortSyncCore
import Testing

/// Link-event damping on a test clock (microseconds passed in): nothing sleeps.
@Suite("FlapDamper")
struct FlapDamperTests {
    static let parameters = FlapDamper.Parameters(
        flapPenalty: 1000, suppressThreshold: 1600, reuseThreshold: 1200, halfLifeMicros: 15_000_000,
        maxSuppressMicros: 30_000_000)

    @Test("Three fast flaps (1000/1600/1200, 15 s half-life, 30 s max) damp the port; released below reuse")
    func threeFastFlaps() {
        var damper = FlapDamper(parameters: Self.parameters)
        #expect(damper.flap(count: 1, now: 0) == .none)
        #expect(damper.flap(count: 1, now: 100_000) == .damped)
        #expect(damper.flap(count: 1, now: 200_000) == .none)
        #expect(damper.damped && damper.suppressedFlaps == 1)
        let penalty = damper.penalty(at: 200_000)
        #expect(penalty > 2900 && penalty < 3000)
        // 3000 × 2^(−t/15 s) < 1200 ⇔ t > 15 s × log2(2.5) ≈ 19.8 s.
        let delay = damper.releaseDelayMicros(at: 200_000) ?? 0
        #expect(delay > 19_500_000 && delay < 20_000_000)
        #expect(damper.tick(now: 200_000 + delay - 100_000) == .none)
        #expect(damper.tick(now: 200_000 + delay) == .released)
        #expect(!damper.damped)
    }

    @Test("The penalty is capped so that no port stays damped longer than max-suppress after its last flap")
    func maxSuppress() {
        var damper = FlapDamper(parameters: Self.parameters)
        for n in 0..<50 { _ = damper.flap(count: 1, now: UInt64(n) * 10_000) }
        #expect(damper.penalty == Self.parameters.maxPenalty)
        #expect(Self.parameters.maxPenalty == 4800)
        let delay = damper.releaseDelayMicros(at: 490_000) ?? 0
        #expect(delay <= 30_000_001 && delay > 29_000_000)
    }

    @Test("Flaps are counted from the carrier-change counter, alternating from the previous oper state")
    func carrierChanges() {
        var damper = FlapDamper(parameters: Self.parameters)
        #expect(damper.sample(carrierChanges: 4, operUp: true, now: 0) == .none)  // baseline: nothing counted
        #expect(damper.flaps == 0)
        // Up with 3 more transitions, now down: down, up, down = 2 downs (one message for three transitions).
        _ = damper.sample(carrierChanges: 7, operUp: false, now: 1000)
        #expect(damper.flaps == 2 && damper.damped)
        // Down with 2 more, now down: up, down = 1 down.
        _ = damper.sample(carrierChanges: 9, operUp: false, now: 2000)
        #expect(damper.flaps == 3)
        // A counter that went backwards (a new interface) counts nothing and becomes the new baseline.
        _ = damper.sample(carrierChanges: 1, operUp: true, now: 3000)
        #expect(damper.flaps == 3)
        // Without a counter, an up → down change counts as one flap.
        var plain = FlapDamper(parameters: Self.parameters)
        _ = plain.sample(carrierChanges: nil, operUp: true, now: 0)
        _ = plain.sample(carrierChanges: nil, operUp: false, now: 1)
        _ = plain.sample(carrierChanges: nil, operUp: false, now: 2)
        #expect(plain.flaps == 1)
    }
}

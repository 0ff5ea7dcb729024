import PortSyncCore
import Testing

/// Channel monitors on a test clock: raise once, suppress repeats, clear after quiet.
@Suite("AlertEngine")
struct AlertEngineTests {
    static let second: UInt64 = 1_000_000

    @Test("10 flaps in 10 s (60 s cooldown): one alert_raised; 100 repeats: suppressed; 60 s quiet: one cleared")
    func flapStorm() {
        let rule = AlertRule(
            name: "port_flapping", condition: .flapRate, severity: .major, raiseAt: 10, clearBelow: 5,
            cooldownMicros: 60 * Self.second)
        var engine = AlertEngine(rules: [rule])
        var window = SlidingWindowCounter(windowMicros: 10 * Self.second)
        var changes: [AlertChange] = []
        for n in 0..<10 {
            let now = UInt64(n) * Self.second
            let rate = window.add(now: now)
            if let change = engine.observe(rule: "port_flapping", subject: "Ethernet0", value: Double(rate), now: now) {
                changes.append(change)
            }
        }
        #expect(changes.map(\.kind) == [.raised])
        #expect(changes.first?.subject == "Ethernet0" && changes.first?.severity == .major)
        // 100 more flaps while active: no event, each suppressed.
        for n in 0..<100 {
            let now = 10 * Self.second + UInt64(n) * 10_000
            let rate = window.add(now: now)
            #expect(engine.observe(rule: "port_flapping", subject: "Ethernet0", value: Double(rate), now: now) == nil)
        }
        #expect(engine.suppressedTotal["port_flapping"] == 100)
        // Quiet: the rate falls below 5 once the window has passed, and 60 s later the alert clears, once.
        var cleared: [AlertChange] = []
        for second in 11...90 {
            let now = UInt64(second) * Self.second
            let rate = window.count(at: now)
            if let change = engine.observe(
                rule: "port_flapping", subject: "Ethernet0", value: Double(rate), now: now, occurrence: false)
            {
                cleared.append(change)
            }
            cleared += engine.tick(now: now)
        }
        #expect(cleared.count == 1)
        #expect(cleared.first?.kind == .cleared && cleared.first?.suppressed == 100)
        #expect(engine.active.isEmpty)
    }

    @Test("`for`: the value must hold for the duration before the alert is raised; a dip restarts it")
    func forDuration() {
        var engine = AlertEngine(rules: [
            AlertRule(name: "down", condition: .operDown, severity: .warning, raiseAt: 1, forMicros: 30 * Self.second)
        ])
        #expect(engine.observe(rule: "down", subject: "Ethernet4", value: 1, now: 0) == nil)
        #expect(engine.observe(rule: "down", subject: "Ethernet4", value: 0, now: 20 * Self.second) == nil)
        #expect(engine.observe(rule: "down", subject: "Ethernet4", value: 1, now: 21 * Self.second) == nil)
        #expect(engine.observe(rule: "down", subject: "Ethernet4", value: 1, now: 50 * Self.second) == nil)
        #expect(engine.observe(rule: "down", subject: "Ethernet4", value: 1, now: 51 * Self.second)?.kind == .raised)
    }

    @Test("Hysteresis: a value between clear and raise neither raises nor clears; removed rules clear their alerts")
    func hysteresisAndReload() {
        let rule = AlertRule(name: "errors", condition: .errorRate, severity: .critical, raiseAt: 100, clearBelow: 10)
        var engine = AlertEngine(rules: [rule])
        #expect(engine.observe(rule: "errors", subject: "Ethernet8", value: 150, now: 0)?.kind == .raised)
        #expect(engine.observe(rule: "errors", subject: "Ethernet8", value: 50, now: 1) == nil)
        #expect(engine.tick(now: 1000) == [])
        #expect(engine.observe(rule: "errors", subject: "Ethernet8", value: 5, now: 1001)?.kind == .cleared)
        #expect(engine.observe(rule: "errors", subject: "Ethernet8", value: 150, now: 2000)?.kind == .raised)
        #expect(engine.observe(rule: "errors", subject: "Ethernet12", value: 150, now: 2000)?.kind == .raised)
        #expect(engine.activeCount == 2 && engine.active.count == 2)
        let changes = engine.update(rules: [], now: 3000)
        #expect(changes.map(\.kind) == [.cleared, .cleared])
        #expect(engine.active.isEmpty && engine.activeCount == 0)
    }
}

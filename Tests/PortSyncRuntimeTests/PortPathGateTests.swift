import Dispatch
import PortSyncRuntime
import Synchronization
import Testing

/// The gate between the port path and the stream's fan-out: closed while the port path is busy (and a quiet time
/// after), waiters run when it opens or after the longest wait, and a gate with no wait never closes.
@Suite("PortPathGate")
struct PortPathGateTests {
    /// Waits (at most 10 s) for `body` to be called through the returned callback; returns its argument.
    static func callback(_ register: (@escaping @Sendable (Bool) -> Void) -> Void) -> Bool? {
        let result = Mutex<Bool?>(nil)
        let done = DispatchSemaphore(value: 0)
        register { timedOut in
            result.withLock { $0 = timedOut }
            done.signal()
        }
        guard done.wait(timeout: .now() + 10) == .success else { return nil }
        return result.withLock { $0 }
    }

    @Test("Open: a waiter runs at once; busy: it runs when the port path goes idle, not timed out")
    func opensOnIdle() {
        let gate = PortPathGate(maxWaitMs: 10_000)
        #expect(!gate.isBusy)
        #expect(Self.callback { gate.whenIdle($0) } == false)
        #expect(gate.figures.yields == 0)
        gate.set(busy: true)
        #expect(gate.isBusy)
        let ran = Mutex(false)
        let done = DispatchSemaphore(value: 0)
        gate.whenIdle { timedOut in
            ran.withLock { $0 = !timedOut }
            done.signal()
        }
        #expect(!ran.withLock { $0 })
        gate.set(busy: false)
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(ran.withLock { $0 } && !gate.isBusy)
        #expect(gate.figures.yields == 1 && gate.figures.timeouts == 0)
    }

    @Test("Quiet time: the gate stays closed after the port path goes idle, and opens after it")
    func quietTime() {
        let gate = PortPathGate(maxWaitMs: 10_000, quietMicros: 20_000)
        gate.set(busy: true)
        gate.set(busy: false)
        #expect(gate.isBusy, "still closed during the quiet time")
        #expect(Self.callback { gate.whenIdle($0) } == false)
        #expect(!gate.isBusy)
    }

    @Test("A port path that stays busy: the waiter goes on after the longest wait, counted as a timeout")
    func timesOut() {
        let gate = PortPathGate(maxWaitMs: 20)
        gate.set(busy: true)
        #expect(Self.callback { gate.whenIdle($0) } == true)
        #expect(gate.figures.yields == 1 && gate.figures.timeouts == 1)
        gate.set(busy: false)
        #expect(!gate.isBusy)
    }

    @Test("fanout_yield_ms = 0: the gate never closes")
    func disabled() {
        let gate = PortPathGate(maxWaitMs: 0)
        gate.set(busy: true)
        #expect(!gate.isBusy)
        #expect(Self.callback { gate.whenIdle($0) } == false)
    }
}

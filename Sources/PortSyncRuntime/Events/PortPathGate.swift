import Dispatch
import Synchronization

/// Whether the port path is busy right now (a kernel message being processed, or a Redis write awaiting its
/// reply, and a short quiet time after it), so that the stream's fan-out can step aside for it.
///
/// Writing one event to a thousand clients costs the machine milliseconds of CPU (mostly the kernel's TCP work),
/// on the same cores as the port path. The fan-out checks `isBusy` before each client (an atomic load) and, while
/// the port path is busy, waits for it to be idle — at most `maxWaitMs`, so a slow or absent Redis never stalls
/// the stream. After the port path's writes are answered, the gate stays closed `quietMicros` more: Redis is
/// then telling its subscribers (SONiC's daemons) of the change, and they read it before the fan-out takes the
/// CPUs. The port path sets the state on its queue and never waits for anything here.
public final class PortPathGate: Sendable {
    private struct State {
        var portBusy = false
        var generation: UInt64 = 0
        var nextWaiter: UInt64 = 0
        var waiters: [UInt64: @Sendable (_ timedOut: Bool) -> Void] = [:]
    }

    /// What the fan-out reads: closed while the port path is busy and for the quiet time after.
    private let closed = Atomic<Bool>(false)
    /// What the port path last said (its queue only writes it).
    private let portBusy = Atomic<Bool>(false)
    private let state = Mutex(State())
    /// How long a waiter waits for the port path at most, in milliseconds; 0: the fan-out never waits.
    public let maxWaitMs: Int
    /// How long the gate stays closed after the port path's writes are answered, in microseconds.
    public let quietMicros: Int
    private let yields = Atomic<UInt64>(0)
    private let timeouts = Atomic<UInt64>(0)

    public init(maxWaitMs: Int, quietMicros: Int = 0) {
        self.maxWaitMs = maxWaitMs
        self.quietMicros = quietMicros
    }

    /// Whether the fan-out should step aside now.
    public var isBusy: Bool { self.maxWaitMs > 0 && self.closed.load(ordering: .relaxed) }

    /// The port path's state, set on its queue: busy from a netlink read until its Redis writes are answered.
    /// The gate opens (and runs the waiters) `quietMicros` after the last change to idle, unless busy again.
    public func set(busy: Bool) {
        guard self.maxWaitMs > 0, self.portBusy.load(ordering: .relaxed) != busy else { return }
        self.portBusy.store(busy, ordering: .relaxed)
        let generation = self.state.withLock { state in
            state.portBusy = busy
            state.generation += 1
            if busy { self.closed.store(true, ordering: .relaxed) }
            return state.generation
        }
        guard !busy else { return }
        if self.quietMicros > 0 {
            DispatchQueue.global().asyncAfter(deadline: .now() + .microseconds(self.quietMicros)) { [self] in
                self.open(generation)
            }
        } else {
            self.open(generation)
        }
    }

    /// Opens the gate if nothing happened since `generation` went idle, and runs the waiters.
    private func open(_ generation: UInt64) {
        let waiters = self.state.withLock { state -> [@Sendable (Bool) -> Void] in
            guard state.generation == generation, !state.portBusy else { return [] }
            self.closed.store(false, ordering: .relaxed)
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter(false) }
    }

    /// Runs `body` once the gate is open, or after `maxWaitMs` (`timedOut` true), whichever comes first; at once
    /// if it is open now. `body` runs on the thread that opened the gate, or a timer's.
    public func whenIdle(_ body: @escaping @Sendable (_ timedOut: Bool) -> Void) {
        let id: UInt64? = self.state.withLock { state in
            guard self.closed.load(ordering: .relaxed) else { return nil }
            state.nextWaiter += 1
            state.waiters[state.nextWaiter] = body
            return state.nextWaiter
        }
        guard let id else { return body(false) }
        self.yields.add(1, ordering: .relaxed)
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(self.maxWaitMs)) { [self] in
            // Still waiting (not run by the gate opening): it goes on now, and leaves the list.
            guard let body = self.state.withLock({ $0.waiters.removeValue(forKey: id) }) else { return }
            self.timeouts.add(1, ordering: .relaxed)
            body(true)
        }
    }

    /// Times the fan-out stepped aside, and times it went on after `maxWaitMs` with the port path still busy.
    public var figures: (yields: UInt64, timeouts: UInt64) {
        (self.yields.load(ordering: .relaxed), self.timeouts.load(ordering: .relaxed))
    }
}

import Synchronization

/// Bounded lanes between producers on any queue and one consumer queue, behind a lock held for an append.
///
/// `offer` never waits: a full lane refuses the element and counts it. The first element after a `takeAll` asks
/// the producer to wake the consumer (`wake` is true once per drain), so a burst costs one `async` hop.
final class BoundedIntake<Element: Sendable>: Sendable {
    private struct State: ~Copyable {
        var lanes: [[Element]]
        var capacities: [Int]
        var dropped: [UInt64]
        var accepted: UInt64 = 0
        var drainScheduled = false
    }

    private let state: Mutex<State>

    /// One lane per capacity, drained in this order.
    init(capacities: [Int]) {
        self.state = Mutex(
            State(
                lanes: capacities.map { _ in [] }, capacities: capacities,
                dropped: capacities.map { _ in 0 }))
    }

    /// Appends `element` to `lane` if it has room. `wake`: the consumer must be scheduled now.
    func offer(_ element: Element, lane: Int = 0) -> (accepted: Bool, wake: Bool) {
        self.state.withLock { state in
            guard state.lanes[lane].count < state.capacities[lane] else {
                state.dropped[lane] += 1
                return (false, false)
            }
            state.lanes[lane].append(element)
            state.accepted += 1
            let wake = !state.drainScheduled
            state.drainScheduled = true
            return (true, wake)
        }
    }

    /// Everything queued, lane by lane; the next offer wakes the consumer again.
    func takeAll() -> [[Element]] {
        self.state.withLock { state in
            let taken = state.lanes
            for lane in state.lanes.indices { state.lanes[lane].removeAll(keepingCapacity: true) }
            state.drainScheduled = false
            return taken
        }
    }

    /// Elements waiting now, in all lanes.
    var depth: Int {
        self.state.withLock { state in state.lanes.reduce(0) { $0 + $1.count } }
    }

    /// Elements refused per lane, and accepted in all.
    var counts: (dropped: [UInt64], accepted: UInt64) {
        self.state.withLock { ($0.dropped, $0.accepted) }
    }
}

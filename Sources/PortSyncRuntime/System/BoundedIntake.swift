import Synchronization

/// Bounded lanes between producers on any queue and one consumer queue, behind a lock held for an append.
///
/// `offer` never waits. A full lane refuses an element and counts it, unless the element has a coalescing key
/// (the state of one port, one port's bar of one length): then it waits in the lane's overflow, where a later
/// element with the same key replaces it (counted as coalesced). The consumer gets the lane, then the overflow,
/// so elements of one key keep their order and the latest always arrives. The overflow holds at most one element
/// per key and at most `overflowCapacity` keys per lane; past that, elements are refused like any other.
///
/// The first element after a `takeAll` asks the producer to wake the consumer (`wake` is true once per drain), so
/// a burst costs one `async` hop.
final class BoundedIntake<Element: Sendable>: Sendable {
    private struct State: ~Copyable {
        var lanes: [[Element]]
        var capacities: [Int]
        var overflow: [[String: Int]]
        var overflowElements: [[Element]]
        var dropped: [UInt64]
        var coalesced: [UInt64]
        var accepted: UInt64 = 0
        var drainScheduled = false
    }

    private let state: Mutex<State>
    private let overflowCapacity: Int

    /// One lane per capacity, drained in this order.
    init(capacities: [Int], overflowCapacity: Int = 65536) {
        self.overflowCapacity = overflowCapacity
        self.state = Mutex(
            State(
                lanes: capacities.map { _ in [] }, capacities: capacities, overflow: capacities.map { _ in [:] },
                overflowElements: capacities.map { _ in [] }, dropped: capacities.map { _ in 0 },
                coalesced: capacities.map { _ in 0 }))
    }

    /// Appends `element` to `lane` if it has room, else to the lane's overflow under `key` (if any).
    /// `wake`: the consumer must be scheduled now.
    func offer(_ element: Element, lane: Int = 0, key: String? = nil) -> (accepted: Bool, wake: Bool) {
        let overflowCapacity = self.overflowCapacity
        return self.state.withLock { state in
            if state.lanes[lane].count < state.capacities[lane] && state.overflowElements[lane].isEmpty {
                state.lanes[lane].append(element)
            } else if let key, let slot = state.overflow[lane][key] {
                state.overflowElements[lane][slot] = element
                state.coalesced[lane] += 1
            } else if let key, state.overflowElements[lane].count < overflowCapacity {
                state.overflow[lane][key] = state.overflowElements[lane].count
                state.overflowElements[lane].append(element)
            } else {
                state.dropped[lane] += 1
                return (false, false)
            }
            state.accepted += 1
            let wake = !state.drainScheduled
            state.drainScheduled = true
            return (true, wake)
        }
    }

    /// Everything queued, lane by lane (each lane's overflow after it); the next offer wakes the consumer again.
    func takeAll() -> [[Element]] {
        self.state.withLock { state in
            var taken = state.lanes
            for lane in state.lanes.indices {
                taken[lane] += state.overflowElements[lane]
                state.lanes[lane].removeAll(keepingCapacity: true)
                state.overflowElements[lane].removeAll(keepingCapacity: true)
                state.overflow[lane].removeAll(keepingCapacity: true)
            }
            state.drainScheduled = false
            return taken
        }
    }

    /// Elements waiting now, in all lanes.
    var depth: Int {
        self.state.withLock { state in
            state.lanes.reduce(0) { $0 + $1.count } + state.overflowElements.reduce(0) { $0 + $1.count }
        }
    }

    /// Elements refused and coalesced per lane, and accepted in all.
    var counts: (dropped: [UInt64], coalesced: [UInt64], accepted: UInt64) {
        self.state.withLock { ($0.dropped, $0.coalesced, $0.accepted) }
    }
}

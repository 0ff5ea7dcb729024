/// The hand-off's bookkeeping.
///
/// A slot is one queued item under a sequence number. The port queues and the priority lanes list sequence numbers
/// in order and are cleaned lazily: a removed slot stays listed until it reaches an end (which is trimmed at once,
/// so every `first` and `last` is live) or until dead entries outnumber live ones (then the list is compacted, an
/// amortised O(1) cost).
extension HandoffQueue {
    /// Queues `item` as a new slot at the back of its port and of its priority's lane.
    mutating func insertSlot(_ item: HandoffItem<Payload>) {
        let sequence = self.nextSequence
        self.nextSequence &+= 1
        self.slots[sequence] = item
        self.lanes[item.priority.rawValue].append(sequence)
        self.depths[item.priority.rawValue] += 1
        self.count += 1
        self.counters.maxDepth = max(self.counters.maxDepth, self.count)
        let live = self.ports[item.key, default: HandoffPortQueue()].append(sequence)
        if live == 2 {
            self.nextStamp &+= 1
            self.ports[item.key]?.multiStamp = self.nextStamp
            self.multiPorts.append(HandoffMultiEntry(key: item.key, stamp: self.nextStamp))
            self.multiPortCount += 1
        }
    }

    /// Removes slot `sequence` wherever it is and returns its item, or `nil` if it is not queued.
    @discardableResult
    mutating func removeSlot(_ sequence: UInt64) -> HandoffItem<Payload>? {
        guard let item = self.slots.removeValue(forKey: sequence) else { return nil }
        let lane = item.priority.rawValue
        self.depths[lane] -= 1
        self.count -= 1
        self.lanes[lane].trim(liveCount: self.depths[lane], slots: self.slots)

        // Read scalars only: a copy of the port queue held across its mutation would copy its array.
        guard let live = self.ports[item.key]?.live else { return item }
        let wasMulti = self.ports[item.key]?.multiStamp != nil
        if live <= 1 {
            self.ports[item.key] = nil
        } else {
            self.ports[item.key]?.remove(slots: self.slots)
        }
        if wasMulti && live <= 2 {
            self.ports[item.key]?.multiStamp = nil
            self.multiPortCount -= 1
            if self.multiPorts.count > 2 * self.multiPortCount + 32 {
                let ports = self.ports
                self.multiPorts.removeAll { ports[$0.key]?.multiStamp != $0.stamp }
            }
        }
        return item
    }
}

/// One port's queued slots, oldest first.
struct HandoffPortQueue: Sendable {
    /// Sequence numbers, some possibly dead in the middle; the first and the last are live.
    var sequences = HandoffDeque<UInt64>()
    /// Live slots.
    var live = 0
    /// Set while the port holds two items or more: when it came to (see `HandoffQueue.multiPorts`).
    var multiStamp: UInt64?

    /// Appends a new slot and returns the number of live slots.
    mutating func append(_ sequence: UInt64) -> Int {
        self.sequences.append(sequence)
        self.live += 1
        return self.live
    }

    /// Accounts for one of the port's slots just removed from `slots`.
    mutating func remove<Item>(slots: [UInt64: Item]) {
        self.live -= 1
        self.sequences.trim(liveCount: self.live, slots: slots)
    }

    /// The second-oldest live slot. Dead entries between it and the oldest are dropped on the way, so repeated
    /// calls do not walk them again.
    mutating func secondOldest<Item>(in slots: [UInt64: Item]) -> UInt64? {
        guard self.live >= 2 else { return nil }
        var index = 1
        while index < self.sequences.count {
            let sequence = self.sequences[index]
            if slots[sequence] != nil {
                self.sequences.dropAfterFirst(index - 1)
                return sequence
            }
            index += 1
        }
        return nil
    }
}

/// A port that came to hold two items or more, at `stamp` (stale once the port's `multiStamp` differs).
struct HandoffMultiEntry: Sendable {
    var key: String
    var stamp: UInt64
}

/// An array used as a double-ended queue: appends at the back, removals at both ends, amortised O(1).
struct HandoffDeque<Element: Sendable>: Sendable {
    private var storage: [Element] = []
    private var start = 0

    init() {}

    var count: Int { self.storage.count - self.start }
    var isEmpty: Bool { self.start == self.storage.count }
    var first: Element? { self.isEmpty ? nil : self.storage[self.start] }
    var last: Element? { self.isEmpty ? nil : self.storage.last }

    /// The element `offset` places from the front; `offset` must be in `0..<count`.
    subscript(offset: Int) -> Element { self.storage[self.start + offset] }

    mutating func append(_ element: Element) { self.storage.append(element) }

    @discardableResult
    mutating func removeFirst() -> Element? {
        guard !self.isEmpty else { return nil }
        let element = self.storage[self.start]
        self.start += 1
        self.reclaim()
        return element
    }

    @discardableResult
    mutating func removeLast() -> Element? {
        guard !self.isEmpty else { return nil }
        let element = self.storage.removeLast()
        self.reclaim()
        return element
    }

    /// Keeps the first element and drops the `count` elements after it.
    mutating func dropAfterFirst(_ count: Int) {
        guard count > 0, count < self.count else { return }
        self.storage[self.start + count] = self.storage[self.start]
        self.start += count
        self.reclaim()
    }

    mutating func removeAll(where shouldBeRemoved: (Element) -> Bool) {
        self.storage.removeFirst(self.start)
        self.start = 0
        self.storage.removeAll(where: shouldBeRemoved)
    }

    /// Frees the space before `start` once it is most of the array.
    private mutating func reclaim() {
        if self.start == self.storage.count {
            self.storage.removeAll(keepingCapacity: true)
            self.start = 0
        } else if self.start >= 64 && self.start * 2 >= self.storage.count {
            self.storage.removeFirst(self.start)
            self.start = 0
        }
    }
}

extension HandoffDeque where Element == UInt64 {
    /// After a removal from `slots`: drops dead sequences at both ends, and compacts when the dead outnumber the
    /// `liveCount` live ones.
    mutating func trim<Item>(liveCount: Int, slots: [UInt64: Item]) {
        while let sequence = self.first, slots[sequence] == nil { self.removeFirst() }
        while let sequence = self.last, slots[sequence] == nil { self.removeLast() }
        if self.count > 2 * liveCount + 16 { self.removeAll { slots[$0] == nil } }
    }
}

/// What each policy does with an offered item when the queue is full.
extension HandoffQueue {
    mutating func offerWhenFull(_ item: HandoffItem<Payload>, now: UInt64) -> OfferOutcome {
        switch self.policy {
        case .block: return .full
        case .dropNewest: return .droppedNewest
        case .dropOldest: return self.evictOldest(for: item)
        case .coalesce: return self.coalesce(item)
        case .adaptive:
            switch self.mode(now: now) {
            case .block: return .full
            case .coalesce: return self.coalesce(item)
            case .shed: return self.shed(item)
            }
        }
    }

    /// Evicts the oldest item of the lowest priority queued and queues `item`.
    mutating func evictOldest(for item: HandoffItem<Payload>) -> OfferOutcome {
        for priority in HandoffPriority.allCases.reversed() {
            guard let sequence = self.lanes[priority.rawValue].first, let victim = self.removeSlot(sequence) else {
                continue
            }
            self.insertSlot(item)
            return .droppedOldest(victimTrace: victim.trace, victimPriority: victim.priority)
        }
        // Unreachable with a capacity of at least 1: a full queue is not empty.
        self.insertSlot(item)
        return .accepted
    }

    /// Low first: the offered low item, else the oldest queued low item; medium and high are coalesced.
    mutating func shed(_ item: HandoffItem<Payload>) -> OfferOutcome {
        if item.priority == .low { return .droppedNewest }
        if self.depths[HandoffPriority.low.rawValue] > 0 { return self.evictOldest(for: item) }
        return self.coalesce(item)
    }

    /// Per-port latest-wins.
    ///
    /// If `item`'s port has queued items, `item` replaces the newest of them: in place (same position, same
    /// `enqueuedAt`, the slot's priority kept) when the slot is at least as urgent, else as a new item of `item`'s
    /// priority at the back (which can only bring the port's write forward). Otherwise the port that has held two
    /// items or more the longest merges its two oldest (the newer content in the more urgent slot, the older one
    /// on a tie) and `item` is queued; with no such port, `.full`.
    mutating func coalesce(_ item: HandoffItem<Payload>) -> OfferOutcome {
        if let newest = self.ports[item.key]?.sequences.last, let old = self.slots[newest] {
            if item.priority > old.priority {
                self.removeSlot(newest)
                self.insertSlot(item)
            } else {
                var merged = item
                merged.priority = old.priority
                merged.enqueuedAt = old.enqueuedAt
                self.slots[newest] = merged
            }
            return .coalesced(replacedTrace: old.trace)
        }
        guard let key = self.oldestMultiPort(), let replaced = self.mergeOldestPair(of: key) else { return .full }
        self.insertSlot(item)
        return .coalesced(replacedTrace: replaced)
    }

    /// Merges the two oldest items of `key` into one slot and returns the trace whose content is lost (the older).
    mutating func mergeOldestPair(of key: String) -> UInt64? {
        guard let first = self.ports[key]?.sequences.first,
            let second = self.ports[key]?.secondOldest(in: self.slots),
            let older = self.slots[first], let newer = self.slots[second]
        else { return nil }
        if older.priority >= newer.priority {
            var merged = newer
            merged.priority = older.priority
            merged.enqueuedAt = older.enqueuedAt
            self.slots[first] = merged
            self.removeSlot(second)
        } else {
            self.removeSlot(first)
        }
        return older.trace
    }

    /// The port that has held two items or more the longest (since it last held fewer), if any.
    mutating func oldestMultiPort() -> String? {
        while let entry = self.multiPorts.first {
            if self.ports[entry.key]?.multiStamp == entry.stamp { return entry.key }
            self.multiPorts.removeFirst()
        }
        return nil
    }
}

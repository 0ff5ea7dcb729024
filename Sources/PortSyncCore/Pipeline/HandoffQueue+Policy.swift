/// What each policy does with an offered item when the queue is full.
extension HandoffQueue {
    @inlinable
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
    @inlinable
    mutating func evictOldest(for item: HandoffItem<Payload>) -> OfferOutcome {
        for priority in HandoffPriority.allCases.reversed() {
            guard let victim = self.removeSlot(self.laneLists[priority].head) else { continue }
            self.insertSlot(item)
            return .droppedOldest(victimTrace: victim.trace, victimPriority: victim.priority)
        }
        // Unreachable with a capacity of at least 1: a full queue is not empty.
        self.insertSlot(item)
        return .accepted
    }

    /// Low first: the offered low item, else the oldest queued low item; medium and high are coalesced.
    @inlinable
    mutating func shed(_ item: HandoffItem<Payload>) -> OfferOutcome {
        if item.priority == .low { return .droppedNewest }
        if self.laneLists[.low].count > 0 { return self.evictOldest(for: item) }
        return self.coalesce(item)
    }

    /// Per-port latest-wins.
    ///
    /// If `item`'s port has queued items, `item` replaces the newest of them: in place (same position, same
    /// `enqueuedAt`, the slot's priority kept) when the slot is at least as urgent, else as a new item of `item`'s
    /// priority at the back (which can only bring the port's write forward). Otherwise the port that has held two
    /// items or more the longest merges its two oldest (the newer content in the more urgent slot, the older one
    /// on a tie) and `item` is queued; with no such port, `.full`.
    @inlinable
    mutating func coalesce(_ item: HandoffItem<Payload>) -> OfferOutcome {
        if let port = self.existingPortRecord(for: item.key) {
            let newest = self.portRecords[Int(port)].newest
            if self.isLive(newest) {
                let replaced = self.nodes[Int(newest)].trace
                if item.priority > self.nodes[Int(newest)].priority {
                    self.removeSlot(newest)
                    self.insertSlot(item)
                } else {
                    // The content is the newer item's; the place, time and priority stay the slot's.
                    self.nodes[Int(newest)].payload = item.payload
                    self.nodes[Int(newest)].trace = item.trace
                }
                return .coalesced(replacedTrace: replaced)
            }
        }
        guard let replaced = self.mergeOldestPair(of: self.multiList.head) else { return .full }
        self.insertSlot(item)
        return .coalesced(replacedTrace: replaced)
    }

    /// Merges the two oldest items of port record `port` into one node and returns the trace whose content is lost
    /// (the older); `nil` if the port has fewer than two items (or is `HandoffLink.none`).
    @inlinable
    mutating func mergeOldestPair(of port: Int32) -> UInt64? {
        guard port != HandoffLink.none else { return nil }
        let first = self.portRecords[Int(port)].oldest
        guard self.isLive(first) else { return nil }
        let second = self.nodes[Int(first)].portNext
        guard self.isLive(second) else { return nil }
        let olderTrace = self.nodes[Int(first)].trace
        if self.nodes[Int(first)].priority >= self.nodes[Int(second)].priority {
            // The newer content in the older slot (its place, time and priority).
            self.nodes[Int(first)].trace = self.nodes[Int(second)].trace
            self.nodes[Int(first)].payload = self.removeSlot(second)?.payload
        } else {
            self.removeSlot(first)
        }
        return olderTrace
    }
}

/// The hand-off's bookkeeping: intrusive lists in two arrays, so that nothing is scanned and nothing is hashed but
/// a port's key.
///
/// Every queued item sits in a node of `nodes`, linked into two doubly-linked lists, both oldest first: its
/// priority's lane and its port's queue. A node knows its port record (an index into `portRecords`), so a take
/// reaches the port without hashing its key; the key is hashed once per offer (`portIndex`, a `PortHashIndex`),
/// and its entry removed when the port's last item leaves. Ports holding two items or more are also linked, in
/// the order they came to, for `coalesce`. Removing any node is O(1). Freed nodes and port records go to free
/// lists and are reused, so once the arrays have grown to the queue's working size an offer and a take allocate
/// nothing.
extension HandoffQueue {
    /// The node the next take starts from: the oldest of the most urgent lane that has any.
    @inlinable
    func leadNode() -> Int? {
        if self.laneLists.high.head != HandoffLink.none { return Int(self.laneLists.high.head) }
        if self.laneLists.medium.head != HandoffLink.none { return Int(self.laneLists.medium.head) }
        if self.laneLists.low.head != HandoffLink.none { return Int(self.laneLists.low.head) }
        return nil
    }

    /// The item of node `index`, or `nil` for `HandoffLink.none` or a free node.
    @inlinable
    func item(at index: Int32) -> HandoffItem<Payload>? {
        guard index != HandoffLink.none, let payload = self.nodes[Int(index)].payload else { return nil }
        let node = self.nodes[Int(index)]
        return HandoffItem(
            key: self.portRecords[Int(node.port)].key, priority: node.priority, trace: node.trace,
            enqueuedAt: node.enqueuedAt, payload: payload)
    }

    /// Whether node `index` holds an item.
    @inlinable
    func isLive(_ index: Int32) -> Bool { index != HandoffLink.none && self.nodes[Int(index)].payload != nil }

    /// Queues `item` as a new node at the back of its port's queue and of its priority's lane.
    @inlinable
    mutating func insertSlot(_ item: consuming HandoffItem<Payload>) {
        let priority = item.priority
        let port = self.portRecord(for: item.key)
        let node = self.freeNode != HandoffLink.none ? self.freeNode : Int32(self.nodes.count)
        let laneTail = self.laneLists[priority].tail
        let portTail = self.portRecords[Int(port)].newest
        let filled = HandoffNode(
            payload: item.payload, priority: priority, trace: item.trace, enqueuedAt: item.enqueuedAt,
            sequence: self.nextSequence, port: port, lanePrevious: laneTail, portPrevious: portTail)
        self.nextSequence &+= 1
        if node == self.freeNode {
            self.freeNode = self.nodes[Int(node)].laneNext
            self.nodes[Int(node)] = filled
        } else {
            self.nodes.append(filled)
        }
        var lane = self.laneLists[priority]
        if laneTail == HandoffLink.none {
            lane.head = node
        } else {
            self.nodes[Int(laneTail)].laneNext = node
        }
        lane.tail = node
        lane.count += 1
        self.laneLists[priority] = lane
        if portTail == HandoffLink.none {
            self.portRecords[Int(port)].oldest = node
        } else {
            self.nodes[Int(portTail)].portNext = node
        }
        self.portRecords[Int(port)].newest = node
        self.portRecords[Int(port)].live += 1
        self.storedCount += 1
        if self.storedCount > self.storedCounters.maxDepth { self.storedCounters.maxDepth = self.storedCount }
        if self.portRecords[Int(port)].live == 2 { self.joinMultiList(port) }
    }

    /// Removes node `index` wherever it is and returns its item, or `nil` if it holds none.
    @inlinable
    @discardableResult
    mutating func removeSlot(_ index: Int32) -> HandoffItem<Payload>? {
        guard index != HandoffLink.none, let payload = self.nodes[Int(index)].payload.take() else { return nil }
        let node = Int(index)
        let port = Int(self.nodes[node].port)
        let priority = self.nodes[node].priority
        let lanePrevious = self.nodes[node].lanePrevious
        let laneNext = self.nodes[node].laneNext
        var lane = self.laneLists[priority]
        if lanePrevious == HandoffLink.none {
            lane.head = laneNext
        } else {
            self.nodes[Int(lanePrevious)].laneNext = laneNext
        }
        if laneNext == HandoffLink.none {
            lane.tail = lanePrevious
        } else {
            self.nodes[Int(laneNext)].lanePrevious = lanePrevious
        }
        lane.count -= 1
        self.laneLists[priority] = lane
        let portPrevious = self.nodes[node].portPrevious
        let portNext = self.nodes[node].portNext
        if portPrevious == HandoffLink.none {
            self.portRecords[port].oldest = portNext
        } else {
            self.nodes[Int(portPrevious)].portNext = portNext
        }
        if portNext == HandoffLink.none {
            self.portRecords[port].newest = portPrevious
        } else {
            self.nodes[Int(portNext)].portPrevious = portPrevious
        }
        self.storedCount -= 1
        self.portRecords[port].live -= 1
        let item = HandoffItem(
            key: self.portRecords[port].key, priority: priority, trace: self.nodes[node].trace,
            enqueuedAt: self.nodes[node].enqueuedAt, payload: payload)
        switch self.portRecords[port].live {
        case 1: self.leaveMultiList(Int32(port))
        case 0: self.releasePort(Int32(port))
        default: break
        }
        self.nodes[node].laneNext = self.freeNode
        self.freeNode = index
        return item
    }

    /// The record of `key`'s port if it has queued items. One hash of the key.
    @inlinable
    func existingPortRecord(for key: String) -> Int32? {
        let hash = PortHash.hash(key, seed: self.portSeed)
        let (bucket, found) = self.portIndex.find(hash: hash) { self.portRecords[Int($0)].matches(key, hash: hash) }
        return found ? self.portIndex[bucket] : nil
    }

    /// The record of `key`'s port, created (or reused from the free list) if the port has no queued item. One hash
    /// of the key either way.
    @inlinable
    mutating func portRecord(for key: String) -> Int32 {
        let hash = PortHash.hash(key, seed: self.portSeed)
        let (bucket, found) = self.portIndex.find(hash: hash) { self.portRecords[Int($0)].matches(key, hash: hash) }
        if found { return self.portIndex[bucket] }
        let record = HandoffPort(key: key, hash: hash)
        let port: Int32
        if self.freePort != HandoffLink.none {
            port = self.freePort
            self.freePort = self.portRecords[Int(port)].oldest
            self.portRecords[Int(port)] = record
        } else {
            port = Int32(self.portRecords.count)
            self.portRecords.append(record)
        }
        self.portIndex.insert(port, hash: hash, at: bucket)
        return port
    }

    /// The port's last item left: forget its key and keep the record for reuse.
    @inlinable
    mutating func releasePort(_ port: Int32) {
        let (bucket, found) = self.portIndex.find(hash: self.portRecords[Int(port)].hash) { $0 == port }
        if found { self.portIndex.remove(at: bucket) }
        // The record is empty (its links are `none`, it is off the list of ports with duplicates); its key stays
        // until the record is reused (a port name is a small string: nothing is held).
        self.portRecords[Int(port)].oldest = self.freePort
        self.freePort = port
    }

    /// The port now holds two items: it joins the back of the ports with duplicates.
    @inlinable
    mutating func joinMultiList(_ port: Int32) {
        self.nextStamp &+= 1
        self.portRecords[Int(port)].multiStamp = self.nextStamp
        self.portRecords[Int(port)].multiPrevious = self.multiList.tail
        self.portRecords[Int(port)].multiNext = HandoffLink.none
        if self.multiList.tail == HandoffLink.none {
            self.multiList.head = port
        } else {
            self.portRecords[Int(self.multiList.tail)].multiNext = port
        }
        self.multiList.tail = port
        self.multiPortCount += 1
    }

    /// The port is down to one item: it leaves the ports with duplicates.
    @inlinable
    mutating func leaveMultiList(_ port: Int32) {
        let previous = self.portRecords[Int(port)].multiPrevious
        let next = self.portRecords[Int(port)].multiNext
        if previous == HandoffLink.none {
            self.multiList.head = next
        } else {
            self.portRecords[Int(previous)].multiNext = next
        }
        if next == HandoffLink.none {
            self.multiList.tail = previous
        } else {
            self.portRecords[Int(next)].multiPrevious = previous
        }
        self.portRecords[Int(port)].multiStamp = nil
        self.portRecords[Int(port)].multiPrevious = HandoffLink.none
        self.portRecords[Int(port)].multiNext = HandoffLink.none
        self.multiPortCount -= 1
    }
}

/// Node and record links: an index, or `none`.
@usableFromInline
enum HandoffLink {
    @inlinable static var none: Int32 { -1 }
}

/// One queued item (its key is its port record's) and its place in its lane and in its port's queue.
@usableFromInline
struct HandoffNode<Payload: Sendable>: Sendable {
    /// `nil` while the node is free.
    @usableFromInline var payload: Payload?
    @usableFromInline var priority: HandoffPriority
    @usableFromInline var trace: UInt64
    @usableFromInline var enqueuedAt: UInt64
    /// When the node was filled, counting every offer queued (never reused; for checks and debugging).
    @usableFromInline var sequence: UInt64
    /// The port record.
    @usableFromInline var port: Int32
    @usableFromInline var lanePrevious: Int32
    /// The next node of the lane, or, while the node is free, the next free node.
    @usableFromInline var laneNext: Int32
    @usableFromInline var portPrevious: Int32
    @usableFromInline var portNext: Int32

    /// A node at the back of its lane and of its port's queue.
    @inlinable
    init(
        payload: consuming Payload, priority: HandoffPriority, trace: UInt64, enqueuedAt: UInt64, sequence: UInt64,
        port: Int32, lanePrevious: Int32, portPrevious: Int32
    ) {
        self.payload = payload
        self.priority = priority
        self.trace = trace
        self.enqueuedAt = enqueuedAt
        self.sequence = sequence
        self.port = port
        self.lanePrevious = lanePrevious
        self.laneNext = HandoffLink.none
        self.portPrevious = portPrevious
        self.portNext = HandoffLink.none
    }
}

/// One port with queued items: its queue's ends, and its place among the ports with duplicates.
@usableFromInline
struct HandoffPort: Sendable {
    @usableFromInline var key: String
    /// `PortHash` of `key`, with the queue's seed.
    @usableFromInline var hash: UInt64
    /// The port's oldest node or, while the record is free, the next free record.
    @usableFromInline var oldest = HandoffLink.none
    @usableFromInline var newest = HandoffLink.none
    /// Items queued.
    @usableFromInline var live = 0
    /// Set while the port holds two items or more: when it came to (a count of such events).
    @usableFromInline var multiStamp: UInt64?
    @usableFromInline var multiPrevious = HandoffLink.none
    @usableFromInline var multiNext = HandoffLink.none

    @inlinable
    init(key: String, hash: UInt64) {
        self.key = key
        self.hash = hash
    }

    @inlinable
    func matches(_ key: String, hash: UInt64) -> Bool { self.hash == hash && self.key == key }
}

/// The two ends of a doubly-linked list of nodes or port records, and its length.
@usableFromInline
struct HandoffList: Sendable {
    @usableFromInline var head = HandoffLink.none
    @usableFromInline var tail = HandoffLink.none
    @usableFromInline var count = 0

    @inlinable
    init() {}
}

/// One list per priority.
@usableFromInline
struct HandoffLanes: Sendable {
    @usableFromInline var high = HandoffList()
    @usableFromInline var medium = HandoffList()
    @usableFromInline var low = HandoffList()

    @inlinable
    init() {}

    @inlinable
    subscript(priority: HandoffPriority) -> HandoffList {
        get {
            switch priority {
            case .high: self.high
            case .medium: self.medium
            case .low: self.low
            }
        }
        set {
            switch priority {
            case .high: self.high = newValue
            case .medium: self.medium = newValue
            case .low: self.low = newValue
            }
        }
    }
}

/// Views of the bookkeeping by sequence number, for invariant checks and debugging. Each is built when read, in
/// O(count); nothing in the queue's own operations uses them.
extension HandoffQueue {
    /// Every queued item by its sequence number.
    var slots: HandoffSlotsView<Payload> { HandoffSlotsView(queue: self) }

    /// Each priority's sequence numbers, oldest first, indexed by `rawValue`.
    var lanes: [[UInt64]] {
        HandoffPriority.allCases.map { priority in
            self.sequences(from: self.laneLists[priority].head) { $0.laneNext }
        }
    }

    /// Items queued per priority, indexed by `rawValue`.
    var depths: [Int] { HandoffPriority.allCases.map { self.laneLists[$0].count } }

    /// Each port with queued items: its sequence numbers, oldest first, and its duplicate stamp.
    var ports: [String: HandoffPortView] {
        var result: [String: HandoffPortView] = [:]
        for index in self.portIndex.entries {
            let record = self.portRecords[Int(index)]
            result[record.key] = HandoffPortView(
                sequences: self.sequences(from: record.oldest) { $0.portNext }, live: record.live,
                multiStamp: record.multiStamp)
        }
        return result
    }

    /// The keys of the ports holding two items or more, in the order they came to.
    var multiPorts: [String] {
        var keys: [String] = []
        var port = self.multiList.head
        while port != HandoffLink.none {
            keys.append(self.portRecords[Int(port)].key)
            port = self.portRecords[Int(port)].multiNext
        }
        return keys
    }

    private func sequences(from head: Int32, next: (HandoffNode<Payload>) -> Int32) -> [UInt64] {
        var result: [UInt64] = []
        var index = head
        while index != HandoffLink.none {
            result.append(self.nodes[Int(index)].sequence)
            index = next(self.nodes[Int(index)])
        }
        return result
    }
}

/// The queued items by sequence number (a linear search: for checks only).
struct HandoffSlotsView<Payload: Sendable> {
    let queue: HandoffQueue<Payload>

    var count: Int { self.queue.count }

    subscript(sequence: UInt64) -> HandoffItem<Payload>? {
        var index = 0
        while index < self.queue.nodes.count {
            if self.queue.nodes[index].sequence == sequence { return self.queue.item(at: Int32(index)) }
            index += 1
        }
        return nil
    }

    var values: [HandoffItem<Payload>] { self.queue.nodes.indices.compactMap { self.queue.item(at: Int32($0)) } }
}

/// One port's queue by sequence number (for checks only).
struct HandoffPortView {
    var sequences: [UInt64]
    var live: Int
    var multiStamp: UInt64?
}

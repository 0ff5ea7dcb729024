/// The sniffer pipeline up to the hand-off, as a value: receive → prefilter → extract → validate → hand-off, the
/// trace ids, the stage events and counters, the hand-off itself, its wait histogram and what the `block` policy
/// holds back.
///
/// The daemon's `PortPipeline` runs it on the port queue and the pipeline benchmark runs it alone, so the benchmark
/// measures the daemon's code. It performs no I/O and reads no clock: the owner passes `now` (monotonic µs), once
/// per datagram to `process` and once per drain to `pump`. What only the owner can do (log, write to Redis) it asks
/// of its `observer`, a `PipelineObserver` the owner provides and may read (its own state, such as what it logged).
///
/// **Time.** The stage events of one message (receive to hand-off) carry the time its datagram was read: at µs
/// resolution the stages of one message could not be told apart anyway, and one clock read per datagram instead
/// of one per stage is a large part of the cost of a message. The hand-off stamps the item with the same time, so
/// its wait runs from the read to the take.
///
/// **Cost.** Up to the hand-off a message costs no allocation once the ring, the counters, the validate stage's
/// per-port memory and the hand-off have their working size. Everything on the way is `@inlinable`, so the owner's
/// module specializes it for its observer.
public struct PipelineCore<Observer: PipelineObserver>: Sendable where Observer: Sendable {
    /// The prefilter stage (its old interfaces are set at start).
    public var prefilter: PrefilterStage
    /// The validate stage and its per-port memory.
    public var validate: ValidateStage
    /// The owner's side of single messages: logs, and writes of updates that bypass the hand-off.
    public var observer: Observer
    /// The bounded hand-off to the writer, keyed by port name. Its policy, capacity and thresholds may be changed at
    /// any time.
    public var handoff: HandoffQueue<PortChange>

    /// The latest stage events.
    @inlinable public var ring: StageEventRing { self.storedRing }
    /// Messages per stage, outcome and reason.
    @inlinable public var stages: StageCounters { self.storedStages }
    /// What the receive stage saw, and the updates handed to the writer.
    @inlinable public var messages: PipelineMessageCounters { self.storedMessages }
    /// How long updates waited in the hand-off.
    @inlinable public var handoffWait: LatencyHistogram { self.storedHandoffWait }
    /// The last trace id given to a message.
    @inlinable public var lastTrace: UInt64 { self.storedTrace }
    /// Whether an update is held back: the hand-off refused it under `block` (the owner pauses intake).
    @inlinable public var isHolding: Bool { self.held != nil }
    /// Whether every accepted update has left the hand-off, held ones included.
    @inlinable public var isDrained: Bool { self.handoff.isEmpty && self.held == nil && self.heldBacklog.isEmpty }
    /// Updates waiting: in the hand-off and held back.
    @inlinable public var queuedCount: Int { self.handoff.count + (self.held == nil ? 0 : 1) + self.heldBacklog.count }

    @usableFromInline var storedRing: StageEventRing
    @usableFromInline var storedStages = StageCounters()
    @usableFromInline var storedMessages = PipelineMessageCounters()
    @usableFromInline var storedHandoffWait = LatencyHistogram()
    @usableFromInline var storedTrace: UInt64 = 0
    /// Under `block`: the update the hand-off refused, and those accepted by the validate stage after it, in order.
    @usableFromInline var held: HandoffItem<PortChange>?
    @usableFromInline var heldBacklog: [HandoffItem<PortChange>] = []
    /// An update was dropped since the last resync (see `takeResyncDue`).
    @usableFromInline var droppedSinceResync = false
    /// The name under which each ifindex's state was last accepted: a NEWLINK of that ifindex with another name is a
    /// rename, and the old name's row goes as on a DELLINK.
    @usableFromInline var acceptedNames: [Int32: InterfaceName] = [:]

    /// The ports whose state was accepted and not deleted since, by ifindex.
    public var portNames: [Int32: InterfaceName] { self.acceptedNames }

    /// A pipeline with the settings of `[pipeline]`; `oldInterfaces` are the interfaces present at a cold start.
    public init(settings: Config.Pipeline, oldInterfaces: Set<Int32> = [], observer: Observer) {
        self.observer = observer
        self.prefilter = PrefilterStage(oldInterfaces: oldInterfaces)
        self.validate = ValidateStage(
            flapGuard: .init(limit: settings.flapRateLimit, windowMicros: UInt64(settings.flapWindowMs) * 1000))
        self.handoff = HandoffQueue(
            capacity: settings.streamBufferCapacity,
            policy: HandoffPolicy(rawValue: settings.dropPolicy) ?? .coalesce,
            adaptive: AdaptiveThresholds(
                blockBelowMicros: UInt64(settings.adaptiveBlockBelowUs),
                shedAboveMicros: UInt64(settings.adaptiveShedAboveUs)))
        self.storedRing = StageEventRing(capacity: settings.stageEventCapacity)
    }

    // MARK: Stages

    /// Takes one datagram read at `now` through every stage: each message gets a trace id, a stage event per stage
    /// and its counts, and, when accepted, goes to the hand-off, or straight to `observer.bypass` when
    /// `bypassingHandoff` (a resync dump: bounded by the number of ports, and never to be dropped by a policy).
    @inlinable
    public mutating func process(datagram: UnsafeRawBufferPointer, now: UInt64, bypassingHandoff: Bool = false) {
        self.storedMessages.datagrams &+= 1
        self.storedMessages.bytes &+= UInt64(datagram.count)
        NetlinkDecoder.forEachMessage(in: datagram) { framed in
            let trace = self.newTrace()
            switch framed {
            case .failure(let error):
                self.record(trace, .receive, .reject, StageReason(error), now: now)
                self.malformed(error, trace: trace)
            case .success(let message):
                self.record(trace, .receive, .pass, .none, now: now)
                self.run(message, trace: trace, now: now, bypassingHandoff: bypassingHandoff)
            }
        }
    }

    /// A new trace id (for a message, or for an update that does not come from one).
    @inlinable
    public mutating func newTrace() -> UInt64 {
        self.storedTrace &+= 1
        return self.storedTrace
    }

    /// Records one stage event, stamped `now`, and counts it.
    @inlinable
    public mutating func record(
        _ trace: UInt64, _ stage: PipelineStage, _ outcome: StageOutcome, _ reason: StageReason, now: UInt64
    ) {
        self.storedStages.count(stage, outcome, reason)
        self.storedRing.record(
            StageEvent(trace: trace, stage: stage, outcome: outcome, reason: reason, timestamp: now))
    }

    /// Counts one update handed to the writer outside the hand-off (a port deleted by a resync).
    @inlinable
    public mutating func countSent() { self.storedMessages.candidatesSent &+= 1 }

    /// Prefilter, extract and validate one framed message, then hand it off.
    @inlinable
    mutating func run(_ bytes: UnsafeRawBufferPointer, trace: UInt64, now: UInt64, bypassingHandoff: Bool) {
        if !self.acceptedNames.isEmpty {
            self.renamed(bytes, trace: trace, now: now, bypassingHandoff: bypassingHandoff)
        }
        switch self.prefilter.check(bytes) {
        case .notLink:
            self.storedMessages.other &+= 1
            self.record(trace, .prefilter, .ignore, .notLink, now: now)
            return
        case .ignore(let reason):
            self.countType(bytes)
            self.record(trace, .prefilter, .ignore, StageReason(reason), now: now)
            if reason == .oldInterface, case .link(let message) = NetlinkDecoder.decodeMessage(bytes) {
                self.observer.oldInterface(message, trace: trace)
            }
            return
        case .pass:
            self.countType(bytes)
            self.record(trace, .prefilter, .pass, .none, now: now)
        }
        var event = LinkEvent(
            trace: trace, receivedAt: now, message: LinkMessage(kind: .newLink, ifindex: 0, flags: [], name: nil))
        if let error = NetlinkDecoder.extractLink(bytes, into: &event.message) {
            self.record(trace, .extract, .reject, StageReason(error), now: now)
            self.malformed(error, trace: trace)
            return
        }
        let message = event.message
        self.record(trace, .extract, .pass, .none, now: now)
        switch self.validate.check(&event) {
        case .ignore(let reason):
            self.record(trace, .validate, .ignore, StageReason(reason), now: now)
            self.observer.ignored(message, trace: trace)
        case .reject(let reason):
            self.record(trace, .validate, .reject, reason, now: now)
            self.observer.rejected(message, reason: reason, trace: trace)
        case .pass(let update, let priority):
            self.record(trace, .validate, .pass, event.flapping ? .flapRate : .none, now: now)
            switch update {
            case .state: self.acceptedNames[message.ifindex] = message.name
            case .deleted:
                if self.acceptedNames[message.ifindex] == message.name { self.acceptedNames[message.ifindex] = nil }
            }
            self.observer.accepted(message, update: update, flapping: event.flapping, trace: trace)
            self.handOff(update, priority: priority, trace: trace, now: now, bypassingHandoff: bypassingHandoff)
        }
    }

    @inlinable
    mutating func handOff(
        _ update: PortUpdate, priority: HandoffPriority, trace: UInt64, now: UInt64, bypassingHandoff: Bool
    ) {
        if bypassingHandoff {
            self.record(trace, .handoff, .pass, .none, now: now)
            self.storedMessages.candidatesSent &+= 1
            self.observer.bypass(update, trace: trace)
        } else {
            self.offer(
                HandoffItem(
                    key: update.port, priority: priority, trace: trace, enqueuedAt: now, payload: update.change),
                now: now)
        }
    }

    /// A NEWLINK of an ifindex accepted under another name: the interface was renamed, and the old name's port is
    /// gone exactly as on a DELLINK (its STATE_DB row deleted), whatever becomes of the new name (accepted, rejected
    /// or not a port at all).
    @usableFromInline
    mutating func renamed(_ bytes: UnsafeRawBufferPointer, trace: UInt64, now: UInt64, bypassingHandoff: Bool) {
        guard bytes.count >= NetlinkLayout.messageHeader + NetlinkLayout.ifinfo,
            bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self) == NetlinkMessageType.newLink
        else { return }
        let ifindex = bytes.loadUnaligned(fromByteOffset: NetlinkLayout.messageHeader + 4, as: Int32.self)
        guard let old = self.acceptedNames[ifindex],
            case .link(let message) = NetlinkDecoder.decodeMessage(bytes), let name = message.name, name != old
        else { return }
        self.acceptedNames[ifindex] = nil
        var gone = message
        gone.kind = .delLink
        gone.name = old
        let update = PortUpdate.deleted(port: old.string)
        self.record(trace, .validate, .pass, .renamed, now: now)
        self.observer.renamed(from: old, to: message, trace: trace)
        self.observer.accepted(gone, update: update, flapping: false, trace: trace)
        self.handOff(update, priority: .high, trace: trace, now: now, bypassingHandoff: bypassingHandoff)
    }

    @inlinable
    mutating func countType(_ bytes: UnsafeRawBufferPointer) {
        if bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self) == NetlinkMessageType.newLink {
            self.storedMessages.newLinks &+= 1
        } else {
            self.storedMessages.delLinks &+= 1
        }
    }

    @inlinable
    mutating func malformed(_ error: NetlinkDecodeError, trace: UInt64) {
        self.storedMessages.malformed[error.kind, default: 0] += 1
        self.observer.malformed(error, trace: trace)
    }

    // MARK: Hand-off

    /// Offers an accepted update to the hand-off at `now` and records what it did. Under `block`, an update it
    /// refuses is held (`isHolding`), and the updates after it wait behind it, until `releaseHeld`.
    @inlinable
    public mutating func offer(_ item: consuming HandoffItem<PortChange>, now: UInt64) {
        if self.held != nil {
            // Intake is paused, but a datagram already read is finished: queue behind the held update.
            self.heldBacklog.append(item)
            return
        }
        let trace = item.trace
        // Only a full hand-off can refuse the item: keep it then, to hold it.
        let refusable = self.handoff.isFull ? item : nil
        switch self.handoff.offer(item, now: now) {
        case .accepted:
            self.record(trace, .handoff, .pass, .none, now: now)
        case .coalesced(let replaced):
            self.record(trace, .handoff, .pass, .none, now: now)
            self.record(replaced, .handoff, .coalesce, .coalesced, now: now)
        case .droppedOldest(let victim, _):
            self.record(trace, .handoff, .pass, .none, now: now)
            self.record(victim, .handoff, .drop, .dropOldest, now: now)
            self.droppedSinceResync = true
        case .droppedNewest:
            self.record(trace, .handoff, .drop, .dropNewest, now: now)
            self.droppedSinceResync = true
        case .full:
            self.held = refusable
        }
    }

    /// The next update for the writer (the hand-off's order; with `lane`, that priority's, as
    /// `HandoffQueue.take(from:)` gives it), counted as sent, its wait recorded; `nil` when empty.
    @inlinable
    public mutating func take(now: UInt64, lane: HandoffPriority? = nil) -> HandoffItem<PortChange>? {
        let taken = lane.map { self.handoff.take(from: $0, now: now) } ?? self.handoff.take(now: now)
        guard let (item, wait) = taken else { return nil }
        self.storedHandoffWait.record(wait)
        self.storedMessages.candidatesSent &+= 1
        return item
    }

    /// The pump: takes updates (as `take` does) while `hasRoom` holds and hands each to `send`, in order; then,
    /// if an update is held and the hand-off has room again, offers it and those behind it (`releaseHeld`).
    ///
    /// With `lanes` (`BatchSendMode.async`), each priority in turn is drained by its own sender: `hasRoom` and
    /// `send` are asked with the priority whose lane the update was taken from.
    @inlinable
    public mutating func pump(
        now: UInt64, lanes: Bool = false, while hasRoom: (HandoffPriority) -> Bool,
        _ send: (HandoffItem<PortChange>, HandoffPriority) -> Void
    ) -> PumpOutcome {
        if lanes {
            for lane in HandoffPriority.allCases {
                while hasRoom(lane), let item = self.take(now: now, lane: lane) { send(item, lane) }
            }
        } else {
            while hasRoom(.high), let item = self.take(now: now) { send(item, item.priority) }
        }
        let holding = self.held != nil && !self.releaseHeld(now: now)
        return PumpOutcome(holding: holding, resyncDue: self.takeResyncDue())
    }

    /// Once the hand-off has room, offers the held update and those behind it again, in order, until one is
    /// refused. Returns whether nothing is held any more (the owner may resume intake).
    public mutating func releaseHeld(now: UInt64) -> Bool {
        guard let held = self.held else { return true }
        guard !self.handoff.isFull else { return false }
        self.held = nil
        let backlog = self.heldBacklog
        self.heldBacklog = []
        self.offer(held, now: now)
        var next = backlog.startIndex
        while self.held == nil, next < backlog.endIndex {
            self.offer(backlog[next], now: now)
            next += 1
        }
        // Refused again: the rest waits behind the newly held update, in order.
        self.heldBacklog = Array(backlog[next...]) + self.heldBacklog
        return self.held == nil
    }

    /// Whether a resync is due: updates were dropped since the last one and the hand-off has drained (a dropped
    /// update may have been a port's final state, which the kernel will not send again). Answers `true` once.
    public mutating func takeResyncDue() -> Bool {
        guard self.droppedSinceResync, self.isDrained else { return false }
        self.droppedSinceResync = false
        return true
    }
}

/// What the owner does after a pump.
public struct PumpOutcome: Sendable, Hashable {
    /// An update is held back (the hand-off refused it under `block`): intake stays paused until a pump says
    /// otherwise.
    public var holding: Bool
    /// Updates were dropped and the hand-off has drained: one resync dump restores every port's final state.
    public var resyncDue: Bool

    @inlinable
    public init(holding: Bool, resyncDue: Bool) {
        self.holding = holding
        self.resyncDue = resyncDue
    }
}

/// What the pipeline tells its owner about single messages, in message order, while `PipelineCore.process` runs.
///
/// The owner logs (SONiC's line per message, one warning per malformed kind or rejected name) and writes the
/// updates that bypass the hand-off. Every method has a default that does nothing. An observer must not reach back
/// into the pipeline it observes.
public protocol PipelineObserver {
    /// A message the decoder refused, at framing or at extraction (already counted by kind).
    mutating func malformed(_ error: NetlinkDecodeError, trace: UInt64)
    /// A message about an old interface (statement 28), decoded for the log; ignored.
    mutating func oldInterface(_ message: LinkMessage, trace: UInt64)
    /// A message the validate stage ignored (team, DELLINK with a master).
    mutating func ignored(_ message: LinkMessage, trace: UInt64)
    /// A message the validate stage rejected (`unsafeName`, `mtuOutOfRange`).
    mutating func rejected(_ message: LinkMessage, reason: StageReason, trace: UInt64)
    /// A message accepted as `update`; `flapping` when the flap guard flagged its port.
    mutating func accepted(_ message: LinkMessage, update: PortUpdate, flapping: Bool, trace: UInt64)
    /// An accepted update that bypasses the hand-off (`bypassingHandoff`): the owner writes it now.
    mutating func bypass(_ update: PortUpdate, trace: UInt64)
    /// An accepted port renamed (`message` carries the new name): its old name is deleted next, as on a DELLINK.
    mutating func renamed(from old: InterfaceName, to message: LinkMessage, trace: UInt64)
}

extension PipelineObserver {
    @inlinable public mutating func malformed(_ error: NetlinkDecodeError, trace: UInt64) {}
    @inlinable public mutating func oldInterface(_ message: LinkMessage, trace: UInt64) {}
    @inlinable public mutating func ignored(_ message: LinkMessage, trace: UInt64) {}
    @inlinable public mutating func rejected(_ message: LinkMessage, reason: StageReason, trace: UInt64) {}
    @inlinable
    public mutating func accepted(_ message: LinkMessage, update: PortUpdate, flapping: Bool, trace: UInt64) {}
    @inlinable public mutating func bypass(_ update: PortUpdate, trace: UInt64) {}
    @inlinable public mutating func renamed(from old: InterfaceName, to message: LinkMessage, trace: UInt64) {}
}

/// What the receive stage saw, and the updates handed to the writer.
public struct PipelineMessageCounters: Sendable, Hashable {
    /// Datagrams read.
    public var datagrams: UInt64 = 0
    /// Bytes in those datagrams.
    public var bytes: UInt64 = 0
    /// `RTM_NEWLINK` messages.
    public var newLinks: UInt64 = 0
    /// `RTM_DELLINK` messages.
    public var delLinks: UInt64 = 0
    /// Well-formed messages of any other type.
    public var other: UInt64 = 0
    /// Malformed messages per kind (`NetlinkDecodeError.kind`).
    public var malformed: [String: UInt64] = [:]
    /// Updates handed to the writer.
    public var candidatesSent: UInt64 = 0

    @inlinable
    public init() {}
}

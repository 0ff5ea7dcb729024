import Dispatch
import Logging
import PortSyncCore

/// The sniffer pipeline, on the port queue: receive → prefilter → extract → validate → hand-off → writer.
///
/// ```
///  datagram ─▶ frame ─▶ PrefilterStage ─▶ NetlinkDecoder ─▶ ValidateStage ─▶ HandoffQueue ─▶ PortStateWriter
///             (receive)  raw bytes only     (extract:         names, MTU,      bounded, by       ≤ max in flight
///                                            LinkEvent+trace) team, flaps      priority+policy
/// ```
/// Each stage returns a verdict; this type performs it, counts it (`StageCounters`), and records a `StageEvent`
/// in a fixed ring, so every stage of one kernel message can be found by its trace id. The hand-off is drained
/// into the writer while the writer has room; under the `block` policy a full hand-off pauses intake (`onIntake`)
/// until the writer catches up.
///
/// Threading: confined to `queue` (asserted).
final class PortPipeline: @unchecked Sendable {
    struct MessageCounters {
        var datagrams: UInt64 = 0
        var bytes: UInt64 = 0
        var newLinks: UInt64 = 0
        var delLinks: UInt64 = 0
        var other: UInt64 = 0
        var malformed: [String: UInt64] = [:]
        var candidatesSent: UInt64 = 0
    }

    let queue: DispatchQueue
    private let writer: PortStateWriter
    private let logger: Logger
    private var prefilter: PrefilterStage
    private var validate: ValidateStage
    private var handoff: HandoffQueue<PortUpdate>
    private var held: HandoffItem<PortUpdate>?
    private var intakePaused = false
    private let startedAt = MonotonicClock.nowMicroseconds()
    private var nextTrace: UInt64 = 0
    private var loggedMalformedKinds: Set<String> = []
    private var loggedRejectedNames: Set<InterfaceName> = []
    private var loggedFlapping: Set<String> = []
    /// Processing a resync dump (see `process(datagram:reconciling:)`).
    private var reconciling = false
    /// Events were dropped since the last resync: once the hand-off drains, a dump restores every final state.
    private var droppedSinceResync = false
    /// Asks the monitor for a resync dump (after drops, once the hand-off has drained).
    var onResyncNeeded: () -> Void = {}

    private(set) var ring: StageEventRing
    private(set) var stages = StageCounters()
    private(set) var messages = MessageCounters()
    private(set) var handoffWait = LatencyHistogram()
    private(set) var lastError: String?
    /// Called with `false` to pause reading the netlink socket (the hand-off is full under `block`), `true` to
    /// resume.
    var onIntake: (Bool) -> Void = { _ in }
    /// Every message that passed validation, before the hand-off (the event bus publishes it).
    var onAccepted: (LinkEvent, PortUpdate) -> Void = { _, _ in }

    init(
        queue: DispatchQueue, writer: PortStateWriter, settings: Config.Pipeline, oldInterfaces: Set<Int32>,
        logger: Logger
    ) {
        self.queue = queue
        self.writer = writer
        self.logger = logger
        self.prefilter = PrefilterStage(oldInterfaces: oldInterfaces)
        self.validate = ValidateStage(
            flapGuard: .init(limit: settings.flapRateLimit, windowMicros: UInt64(settings.flapWindowMs) * 1000))
        self.handoff = HandoffQueue(
            capacity: settings.streamBufferCapacity,
            policy: HandoffPolicy(rawValue: settings.dropPolicy) ?? .coalesce,
            adaptive: AdaptiveThresholds(
                blockBelowMicros: UInt64(settings.adaptiveBlockBelowUs),
                shedAboveMicros: UInt64(settings.adaptiveShedAboveUs)))
        self.ring = StageEventRing(capacity: settings.stageEventCapacity)
        writer.onWriteCompleted = { [unowned self] trace, outcome, reason in
            self.record(trace, .write, outcome, reason)
            self.pump()
        }
    }

    // MARK: Stages

    /// Takes one datagram through every stage. When `reconciling`, returns the ports it accepted (the resync
    /// compares them with the writer's view); otherwise the set stays empty and allocates nothing.
    ///
    /// With `reconciling`, accepted events skip the hand-off's policy and go straight to the writer (which
    /// records every port's latest state and sends it): a resync dump is bounded by the number of ports, and
    /// must not itself be dropped.
    @discardableResult
    func process(datagram: UnsafeRawBufferPointer, reconciling: Bool = false) -> Set<String> {
        self.reconciling = reconciling
        defer { self.reconciling = false }
        dispatchPrecondition(condition: .onQueue(self.queue))
        let now = MonotonicClock.nowMicroseconds()
        self.messages.datagrams += 1
        self.messages.bytes += UInt64(datagram.count)
        var accepted: Set<String> = []
        NetlinkDecoder.forEachMessage(in: datagram) { framed in
            self.nextTrace &+= 1
            let trace = self.nextTrace
            switch framed {
            case .failure(let error):
                self.record(trace, .receive, .reject, StageReason(error))
                self.malformed(error, trace: trace)
            case .success(let message):
                self.record(trace, .receive, .pass, .none)
                if let port = self.run(message, trace: trace, now: now), reconciling { accepted.insert(port) }
            }
        }
        self.pump()
        return accepted
    }

    private func run(_ bytes: UnsafeRawBufferPointer, trace: UInt64, now: UInt64) -> String? {
        switch self.prefilter.check(bytes) {
        case .notLink:
            self.messages.other += 1
            self.record(trace, .prefilter, .ignore, .notLink)
            return nil
        case .ignore(let reason):
            self.countType(bytes)
            self.record(trace, .prefilter, .ignore, StageReason(reason))
            if reason == .oldInterface, case .link(let message) = NetlinkDecoder.decodeMessage(bytes) {
                self.logMessage(message, trace: trace, level: .info, suffix: ": old interface, ignoring")
            }
            return nil
        case .pass:
            self.countType(bytes)
            self.record(trace, .prefilter, .pass, .none)
        }
        guard case .link(let message) = NetlinkDecoder.decodeMessage(bytes) else {
            if case .malformed(let error) = NetlinkDecoder.decodeMessage(bytes) {
                self.record(trace, .extract, .reject, StageReason(error))
                self.malformed(error, trace: trace)
            }
            return nil
        }
        var event = LinkEvent(trace: trace, receivedAt: now, message: message)
        self.record(trace, .extract, .pass, .none)
        switch self.validate.check(&event) {
        case .ignore(let reason):
            self.record(trace, .validate, .ignore, StageReason(reason))
            self.logMessage(message, trace: trace, level: .notice)
            return nil
        case .reject(let reason):
            self.record(trace, .validate, .reject, reason)
            self.rejected(message, reason: reason, trace: trace)
            return nil
        case .pass(let update, let priority):
            self.record(trace, .validate, .pass, event.flapping ? .flapRate : .none)
            self.logMessage(message, trace: trace, level: .notice)
            if event.flapping { self.flapping(update.port, trace: trace) }
            self.onAccepted(event, update)
            if self.reconciling {
                self.record(trace, .handoff, .pass, .none)
                self.messages.candidatesSent += 1
                self.writer.apply(update, trace: trace)
            } else {
                self.offer(
                    HandoffItem(key: update.port, priority: priority, trace: trace, enqueuedAt: now, payload: update))
            }
            return update.port
        }
    }

    // MARK: Hand-off

    private func offer(_ item: HandoffItem<PortUpdate>) {
        if self.held != nil {
            // Intake is paused under `block`, but a datagram already read is finished: queue behind the held one.
            self.heldBacklog.append(item)
            return
        }
        let now = MonotonicClock.nowMicroseconds()
        switch self.handoff.offer(item, now: now) {
        case .accepted:
            self.record(item.trace, .handoff, .pass, .none)
        case .coalesced(let replaced):
            self.record(item.trace, .handoff, .pass, .none)
            self.record(replaced, .handoff, .coalesce, .coalesced)
        case .droppedOldest(let victim, _):
            self.record(item.trace, .handoff, .pass, .none)
            self.record(victim, .handoff, .drop, .dropOldest)
            self.droppedSinceResync = true
        case .droppedNewest:
            self.record(item.trace, .handoff, .drop, .dropNewest)
            self.droppedSinceResync = true
        case .full:
            self.held = item
            self.pauseIntake()
        }
    }

    /// Events read in the same datagram after the hand-off filled under `block`, in order.
    private var heldBacklog: [HandoffItem<PortUpdate>] = []

    /// Moves events from the hand-off into the writer while it has room.
    func pump() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        let now = MonotonicClock.nowMicroseconds()
        while self.writer.hasRoom, let (item, wait) = self.handoff.take(now: now) {
            self.handoffWait.record(wait)
            self.messages.candidatesSent += 1
            self.writer.apply(item.payload, trace: item.trace)
        }
        if let held = self.held, !self.handoff.isFull {
            self.held = nil
            var backlog = self.heldBacklog
            self.heldBacklog = []
            self.offer(held)
            while self.held == nil, !backlog.isEmpty { self.offer(backlog.removeFirst()) }
            if !backlog.isEmpty { self.heldBacklog = backlog + self.heldBacklog }
            if self.held == nil { self.resumeIntake() }
        }
        if self.droppedSinceResync && self.isDrained {
            // A dropped event may have been a port's final state: the kernel will not send it again, so one dump
            // (outside the policy) restores every port's final state. The drops stay counted.
            self.droppedSinceResync = false
            self.logger.notice(
                "Events were dropped under the \(self.handoff.policy.rawValue) policy; resyncing every port from the kernel",
                metadata: ["EVENT": "resync_after_drops"])
            self.queue.async { [self] in self.onResyncNeeded() }
        }
    }

    /// A port the kernel no longer has after lost events: part of a resync, so it goes to the writer directly.
    func reconcileDeleted(_ port: String) {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.nextTrace &+= 1
        let trace = self.nextTrace
        self.record(trace, .validate, .pass, .none)
        self.record(trace, .handoff, .pass, .none)
        self.messages.candidatesSent += 1
        self.writer.apply(.deleted(port: port), trace: trace)
    }

    /// Whether every accepted event has left the hand-off (shutdown drain).
    var isDrained: Bool { self.handoff.isEmpty && self.held == nil && self.heldBacklog.isEmpty }

    /// Events still waiting in the hand-off.
    var queuedCount: Int { self.handoff.count + (self.held == nil ? 0 : 1) + self.heldBacklog.count }

    private func pauseIntake() {
        guard !self.intakePaused else { return }
        self.intakePaused = true
        self.onIntake(false)
    }

    private func resumeIntake() {
        guard self.intakePaused else { return }
        self.intakePaused = false
        self.onIntake(true)
    }

    // MARK: Observation

    /// The `adaptive` policy's thresholds, moved by the threshold worker or a reload.
    var adaptiveThresholds: AdaptiveThresholds {
        get { self.handoff.adaptive }
        set { self.handoff.adaptive = newValue }
    }

    /// What the pipeline has done so far; cheap enough to take at any time.
    func snapshot() -> PipelineSnapshot {
        dispatchPrecondition(condition: .onQueue(self.queue))
        let now = MonotonicClock.nowMicroseconds()
        let handoffCounters = self.handoff.counters
        var dropped: [String: [String: UInt64]] = [:]
        for (priority, oldest, newest) in [
            ("high", handoffCounters.droppedOldest.high, handoffCounters.droppedNewest.high),
            ("medium", handoffCounters.droppedOldest.medium, handoffCounters.droppedNewest.medium),
            ("low", handoffCounters.droppedOldest.low, handoffCounters.droppedNewest.low),
        ] {
            let reasons = ["drop_oldest": oldest, "drop_newest": newest].filter { $0.value > 0 }
            if !reasons.isEmpty { dropped[priority] = reasons }
        }
        let writerCounters = self.writer.counters
        return PipelineSnapshot(
            takenAtMicros: now, uptimeSeconds: Double(now &- self.startedAt) / 1_000_000,
            messages: .init(
                datagrams: self.messages.datagrams, bytes: self.messages.bytes, newlink: self.messages.newLinks,
                dellink: self.messages.delLinks, other: self.messages.other, malformed: self.messages.malformed),
            stages: PipelineSnapshot.stages(self.stages),
            handoff: .init(
                depth: self.queuedCount, capacity: self.handoff.capacity, policy: self.handoff.policy.rawValue,
                backpressureEvents: handoffCounters.full, droppedFullBuffer: handoffCounters.droppedNewest.total,
                dropped: dropped, coalesced: handoffCounters.coalesced, retries: UInt64(writerCounters.retries),
                wait: LatencySummary(self.handoffWait)),
            writer: .init(
                inFlight: self.writer.pendingCount, writes: UInt64(writerCounters.stateWrites),
                deletes: UInt64(writerCounters.stateDeletes), errors: UInt64(writerCounters.errorReplies),
                reconnects: UInt64(writerCounters.reconnects), latency: LatencySummary(self.writer.latency)),
            candidatesSent: self.messages.candidatesSent)
    }

    private func record(_ trace: UInt64, _ stage: PipelineStage, _ outcome: StageOutcome, _ reason: StageReason) {
        self.stages.count(stage, outcome, reason)
        self.ring.record(
            StageEvent(
                trace: trace, stage: stage, outcome: outcome, reason: reason,
                timestamp: MonotonicClock.nowMicroseconds()))
    }

    private func countType(_ bytes: UnsafeRawBufferPointer) {
        if bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self) == NetlinkMessageType.newLink {
            self.messages.newLinks += 1
        } else {
            self.messages.delLinks += 1
        }
    }

    private func malformed(_ error: NetlinkDecodeError, trace: UInt64) {
        self.messages.malformed[error.kind, default: 0] += 1
        self.lastError = "malformed netlink: \(error.kind)"
        if self.loggedMalformedKinds.insert(error.kind).inserted {
            self.logger.warning(
                "Malformed netlink message (\(error)); skipping it and keeping the rest of the datagram",
                metadata: ["EVENT": "malformed", "REASON": .string(error.kind), "TRACE_ID": "\(trace)"])
        }
    }

    private func rejected(_ message: LinkMessage, reason: StageReason, trace: UInt64) {
        guard let name = message.name, self.loggedRejectedNames.count < 1024,
            self.loggedRejectedNames.insert(name).inserted
        else { return }
        let why =
            reason == .unsafeName
            ? "cannot be a Redis key part (only A-Z a-z 0-9 . _ -)"
            : "has an MTU out of range \(ValidateStage.mtuRange) (\(message.mtu ?? 0))"
        self.logger.warning(
            "Interface \"\(name.escaped)\" \(why), ignoring",
            metadata: [
                "IFINDEX": "\(message.ifindex)", "EVENT": "rejected", "REASON": .string(reason.name),
                "TRACE_ID": "\(trace)",
            ])
    }

    private func flapping(_ port: String, trace: UInt64) {
        guard self.loggedFlapping.count < 4096, self.loggedFlapping.insert(port).inserted else { return }
        self.logger.warning(
            "Port \(port) is flapping (more than the flap guard allows); every state is still written",
            metadata: ["PORT": .string(port), "EVENT": "flapping", "TRACE_ID": "\(trace)"])
    }

    /// Statement 26: the information SONiC logs for each message (type, name, admin, oper, MAC, ifindex, master,
    /// kind, flags).
    private func logMessage(_ message: LinkMessage, trace: UInt64, level: Logger.Level, suffix: String = "") {
        guard self.logger.logLevel <= level else { return }
        let name = message.name?.escaped ?? ""
        let type = message.kind == .newLink ? NetlinkMessageType.newLink : NetlinkMessageType.delLink
        var text = "nlmsg type:\(type) key:\(name) admin:\(message.isAdminUp ? 1 : 0) oper:\(message.isOperUp ? 1 : 0)"
        text += " addr:\(message.address?.description ?? "") ifindex:\(message.ifindex) master:\(message.master)"
        if let kind = message.linkKind { text += " type:\(kind.escaped)" }
        text += " flags:\(message.flags.rawValue)" + suffix
        self.logger.log(
            level: level, "\(text)",
            metadata: [
                "PORT": .string(name), "IFINDEX": "\(message.ifindex)",
                "EVENT": message.kind == .newLink ? "newlink" : "dellink", "TRACE_ID": "\(trace)",
            ])
    }
}

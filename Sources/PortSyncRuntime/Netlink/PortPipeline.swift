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
/// The stages and their bookkeeping up to the hand-off are a `PipelineCore` (a value the pipeline benchmark runs
/// too): each stage returns a verdict, the core counts it (`StageCounters`) and records a `StageEvent` in a fixed
/// ring, so every stage of one kernel message can be found by its trace id. This type adds what needs the
/// runtime: the clock, the log lines, the writer, and pausing intake. The hand-off is drained into the writer
/// while the writer has room (`pipeline.batch_send_mode`: in `sync` mode most urgent first into one sender, in
/// `async` mode each priority by its own sender); under the `block` policy a full hand-off pauses intake
/// (`onIntake`) until the writer catches up.
///
/// Threading: confined to `queue` (asserted).
final class PortPipeline: @unchecked Sendable {
    let queue: DispatchQueue
    private let writer: PortStateWriter
    /// The stages up to the hand-off; its observer writes the log lines and the updates that bypass the hand-off.
    private var core: PipelineCore<PortPipelineObserver>
    private var intakePaused = false
    private let startedAt = MonotonicClock.nowMicroseconds()
    /// Asks the monitor for a resync dump (after drops, once the hand-off has drained).
    var onResyncNeeded: () -> Void = {}

    var ring: StageEventRing { self.core.ring }
    var stages: StageCounters { self.core.stages }
    var messages: PipelineMessageCounters { self.core.messages }
    var handoffWait: LatencyHistogram { self.core.handoffWait }
    var lastError: String? { self.core.observer.lastError }
    /// Called with `false` to pause reading the netlink socket (the hand-off is full under `block`), `true` to
    /// resume.
    var onIntake: (Bool) -> Void = { _ in }
    /// Every message that passed validation, before the hand-off (the channels and the event bus take it from
    /// here).
    var onAccepted: @Sendable (LinkEvent, PortUpdate) -> Void {
        get { self.core.observer.onAccepted }
        set { self.core.observer.onAccepted = newValue }
    }

    init(
        queue: DispatchQueue, writer: PortStateWriter, settings: Config.Pipeline, oldInterfaces: Set<Int32>,
        logger: Logger
    ) {
        self.queue = queue
        self.writer = writer
        self.core = PipelineCore(
            settings: settings, oldInterfaces: oldInterfaces,
            observer: PortPipelineObserver(writer: writer, logger: logger))
        writer.sendMode = BatchSendMode(rawValue: settings.batchSendMode) ?? .sync
        writer.onWriteCompleted = { [unowned self] trace, outcome, reason in
            self.core.record(trace, .write, outcome, reason, now: MonotonicClock.nowMicroseconds())
        }
        writer.onRoom = { [unowned self] in self.pump() }
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
        dispatchPrecondition(condition: .onQueue(self.queue))
        let now = MonotonicClock.nowMicroseconds()
        self.core.process(datagram: datagram, now: now, bypassingHandoff: reconciling)
        self.pump()
        return reconciling ? self.core.observer.takeBypassed() : []
    }

    // MARK: Hand-off

    /// Moves events from the hand-off into the writer while it has room (in `async` mode, each priority's lane
    /// into its own sender while that sender has room); under `block`, pauses intake while an event is held back
    /// and resumes it once none is. The writer calls it whenever replies have freed room.
    func pump() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        let now = MonotonicClock.nowMicroseconds()
        let outcome = self.core.pump(
            now: now, lanes: self.writer.sendMode == .async, while: { self.writer.hasRoom(for: $0) }
        ) { item, lane in
            self.writer.apply(PortUpdate(port: item.key, change: item.payload), trace: item.trace, priority: lane)
        }
        if outcome.holding { self.pauseIntake() } else { self.resumeIntake() }
        if outcome.resyncDue {
            // A dropped event may have been a port's final state: the kernel will not send it again, so one dump
            // (outside the policy) restores every port's final state. The drops stay counted.
            self.core.observer.logger.notice(
                "Events were dropped under the \(self.core.handoff.policy.rawValue) policy; resyncing every port from the kernel",
                metadata: ["EVENT": "resync_after_drops"])
            self.queue.async { [self] in self.onResyncNeeded() }
        }
    }

    /// A port the kernel no longer has after lost events: part of a resync, so it goes to the writer directly.
    func reconcileDeleted(_ port: String) {
        dispatchPrecondition(condition: .onQueue(self.queue))
        let trace = self.core.newTrace()
        let now = MonotonicClock.nowMicroseconds()
        self.core.record(trace, .validate, .pass, .none, now: now)
        self.core.record(trace, .handoff, .pass, .none, now: now)
        self.core.countSent()
        self.writer.apply(.deleted(port: port), trace: trace)
    }

    /// Whether every accepted event has left the hand-off (shutdown drain).
    /// A new old-interface snapshot (a cold start again after an APPL_DB flush).
    func replaceOldInterfaces(_ old: Set<Int32>) {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.core.prefilter.oldInterfaces = old
    }

    var isDrained: Bool { self.core.isDrained }

    /// Events still waiting in the hand-off.
    var queuedCount: Int { self.core.queuedCount }

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
        get { self.core.handoff.adaptive }
        set { self.core.handoff.adaptive = newValue }
    }

    /// What the pipeline has done so far; cheap enough to take at any time.
    func snapshot() -> PipelineSnapshot {
        dispatchPrecondition(condition: .onQueue(self.queue))
        let now = MonotonicClock.nowMicroseconds()
        let handoffCounters = self.core.handoff.counters
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
                depth: self.queuedCount, capacity: self.core.handoff.capacity,
                policy: self.core.handoff.policy.rawValue,
                backpressureEvents: handoffCounters.full, droppedFullBuffer: handoffCounters.droppedNewest.total,
                dropped: dropped, coalesced: handoffCounters.coalesced, retries: UInt64(writerCounters.retries),
                wait: LatencySummary(self.handoffWait)),
            writer: .init(
                inFlight: self.writer.pendingCount, writes: UInt64(writerCounters.stateWrites),
                deletes: UInt64(writerCounters.stateDeletes), errors: UInt64(writerCounters.errorReplies),
                reconnects: UInt64(writerCounters.reconnects), latency: LatencySummary(self.writer.latency)),
            candidatesSent: self.messages.candidatesSent)
    }

}

/// What only the runtime does for single messages: the log lines (SONiC's line per message, one warning per
/// malformed kind, rejected name and flapping port) and writing the updates of a resync dump, which bypass the
/// hand-off.
private struct PortPipelineObserver: PipelineObserver, Sendable {
    let writer: PortStateWriter
    let logger: Logger
    private(set) var lastError: String?
    private var loggedMalformedKinds: Set<String> = []
    private var loggedRejectedNames: Set<InterfaceName> = []
    private var loggedFlapping: Set<String> = []
    /// The ports written by `bypass` since `takeBypassed`.
    private var bypassed: Set<String> = []
    /// See `PortPipeline.onAccepted`.
    var onAccepted: @Sendable (LinkEvent, PortUpdate) -> Void = { _, _ in }

    init(writer: PortStateWriter, logger: Logger) {
        self.writer = writer
        self.logger = logger
    }

    /// The ports of a resync dump written so far, forgotten here.
    mutating func takeBypassed() -> Set<String> {
        defer { self.bypassed = [] }
        return self.bypassed
    }

    mutating func malformed(_ error: NetlinkDecodeError, trace: UInt64) {
        self.lastError = "malformed netlink: \(error.kind)"
        if self.loggedMalformedKinds.insert(error.kind).inserted {
            self.logger.warning(
                "Malformed netlink message (\(error)); skipping it and keeping the rest of the datagram",
                metadata: ["EVENT": "malformed", "REASON": .string(error.kind), "TRACE_ID": "\(trace)"])
        }
    }

    func oldInterface(_ message: LinkMessage, trace: UInt64) {
        self.logMessage(message, trace: trace, level: .info, suffix: ": old interface, ignoring")
    }

    func ignored(_ message: LinkMessage, trace: UInt64) {
        self.logMessage(message, trace: trace, level: .notice)
    }

    mutating func accepted(_ message: LinkMessage, update: PortUpdate, flapping: Bool, trace: UInt64) {
        self.logMessage(message, trace: trace, level: .notice)
        if flapping { self.flapping(update.port, trace: trace) }
        self.onAccepted(
            LinkEvent(
                trace: trace, receivedAt: MonotonicClock.nowMicroseconds(), message: message, flapping: flapping),
            update)
    }

    func renamed(from old: InterfaceName, to message: LinkMessage, trace: UInt64) {
        self.logger.notice(
            "Port \(old.escaped) renamed to \"\(message.name?.escaped ?? "")\" (ifindex \(message.ifindex)): deleting \(old.escaped) from state db",
            metadata: [
                "PORT": .string(old.escaped), "IFINDEX": "\(message.ifindex)", "EVENT": "renamed",
                "TRACE_ID": "\(trace)",
            ])
    }

    mutating func bypass(_ update: PortUpdate, trace: UInt64) {
        self.bypassed.insert(update.port)
        self.writer.apply(update, trace: trace)
    }

    mutating func rejected(_ message: LinkMessage, reason: StageReason, trace: UInt64) {
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

    private mutating func flapping(_ port: String, trace: UInt64) {
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

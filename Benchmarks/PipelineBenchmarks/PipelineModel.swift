import PortSyncCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the daemon's `PortPipeline.process(datagram:)` does for each datagram, stage by stage, up to the hand-off,
/// with the writer's side reduced to taking each item out of the hand-off (no Redis) and without logging (as at a
/// log level above `notice`).
///
/// Per datagram: framing, the byte and datagram counters, and the number of accepted ports (the daemon collects
/// their names only while reconciling a resync dump). Per message: a trace id,
/// the prefilter, the extract, the validate stage, an offer to the hand-off; a `StageEvent` with a monotonic
/// timestamp in the ring and a `StageCounters` count for every stage; then the pump takes what was offered and
/// records its wait in the hand-off wait histogram.
final class PipelineModel {
    private var prefilter = PrefilterStage()
    private var validate = ValidateStage()
    private var handoff: HandoffQueue<PortUpdate>
    private var ring = StageEventRing()
    private var stages = StageCounters()
    private var handoffWait = LatencyHistogram()
    private var nextTrace: UInt64 = 0
    private var datagrams: UInt64 = 0
    private var bytes: UInt64 = 0
    private var newLinks: UInt64 = 0
    private var delLinks: UInt64 = 0
    private var other: UInt64 = 0
    private var malformed: [String: UInt64] = [:]
    private(set) var candidatesSent: UInt64 = 0

    /// A hand-off under `coalesce` large enough never to be full here (each offer is taken at once).
    init(handoffCapacity: Int = 1 << 16) {
        self.handoff = HandoffQueue(capacity: handoffCapacity, policy: .coalesce)
    }

    /// One datagram through every stage; returns the number of ports accepted.
    @discardableResult
    func process(datagram: UnsafeRawBufferPointer) -> Int {
        let now = Self.nowMicroseconds()
        self.datagrams += 1
        self.bytes += UInt64(datagram.count)
        var accepted = 0
        NetlinkDecoder.forEachMessage(in: datagram) { framed in
            self.nextTrace &+= 1
            let trace = self.nextTrace
            switch framed {
            case .failure(let error):
                self.record(trace, .receive, .reject, StageReason(error))
                self.malformed[error.kind, default: 0] += 1
            case .success(let message):
                self.record(trace, .receive, .pass, .none)
                if self.run(message, trace: trace, now: now) != nil { accepted += 1 }
            }
        }
        self.pump()
        return accepted
    }

    private func run(_ bytes: UnsafeRawBufferPointer, trace: UInt64, now: UInt64) -> String? {
        switch self.prefilter.check(bytes) {
        case .notLink:
            self.other += 1
            self.record(trace, .prefilter, .ignore, .notLink)
            return nil
        case .ignore(let reason):
            self.countType(bytes)
            self.record(trace, .prefilter, .ignore, StageReason(reason))
            return nil
        case .pass:
            self.countType(bytes)
            self.record(trace, .prefilter, .pass, .none)
        }
        let item = NetlinkDecoder.decodeMessage(bytes)
        guard case .link(let message) = item else {
            if case .malformed(let error) = item {
                self.record(trace, .extract, .reject, StageReason(error))
                self.malformed[error.kind, default: 0] += 1
            }
            return nil
        }
        var event = LinkEvent(trace: trace, receivedAt: now, message: message)
        self.record(trace, .extract, .pass, .none)
        switch self.validate.check(&event) {
        case .ignore(let reason):
            self.record(trace, .validate, .ignore, StageReason(reason))
            return nil
        case .reject(let reason):
            self.record(trace, .validate, .reject, reason)
            return nil
        case .pass(let update, let priority):
            self.record(trace, .validate, .pass, event.flapping ? .flapRate : .none)
            self.offer(
                HandoffItem(key: update.port, priority: priority, trace: trace, enqueuedAt: now, payload: update))
            return update.port
        }
    }

    private func offer(_ item: HandoffItem<PortUpdate>) {
        switch self.handoff.offer(item, now: Self.nowMicroseconds()) {
        case .accepted:
            self.record(item.trace, .handoff, .pass, .none)
        case .coalesced(let replaced):
            self.record(item.trace, .handoff, .pass, .none)
            self.record(replaced, .handoff, .coalesce, .coalesced)
        case .droppedOldest(let victim, _):
            self.record(item.trace, .handoff, .pass, .none)
            self.record(victim, .handoff, .drop, .dropOldest)
        case .droppedNewest:
            self.record(item.trace, .handoff, .drop, .dropNewest)
        case .full:
            preconditionFailure("the hand-off is sized never to fill here")
        }
    }

    /// The writer's side of the hand-off, without the writer: everything offered is taken.
    private func pump() {
        let now = Self.nowMicroseconds()
        while let (_, wait) = self.handoff.take(now: now) {
            self.handoffWait.record(wait)
            self.candidatesSent += 1
        }
    }

    private func record(_ trace: UInt64, _ stage: PipelineStage, _ outcome: StageOutcome, _ reason: StageReason) {
        self.stages.count(stage, outcome, reason)
        self.ring.record(
            StageEvent(trace: trace, stage: stage, outcome: outcome, reason: reason, timestamp: Self.nowMicroseconds()))
    }

    private func countType(_ bytes: UnsafeRawBufferPointer) {
        if bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self) == NetlinkMessageType.newLink {
            self.newLinks += 1
        } else {
            self.delLinks += 1
        }
    }

    /// The daemon's clock: `CLOCK_MONOTONIC` in microseconds.
    static func nowMicroseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1000
    }
}

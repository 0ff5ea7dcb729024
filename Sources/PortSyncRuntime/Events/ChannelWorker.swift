public import Dispatch
public import Logging
public import PortSyncCore
import Synchronization

/// The channel pipelines as an important worker: a router and N shards. Each shard runs the link channel
/// (deduplicated, with source context), port health (damping), counter bars and the alert monitors for the ports a
/// hash of the name gives it, on its own queue with its own bounded intake and metrics; per-port order holds
/// because a port always goes to the same shard. The router lives on the worker's queue, which also ticks the
/// shards, samples every port's counters with one RTM_GETLINK dump per `channels.stats_interval_ms`, watches the
/// shards for stalls and re-shards on a reload of `channels.workers`.
///
/// The port path only appends to a shard's intake under a lock and never waits; a full intake keeps each port's
/// latest input (coalesced, counted), so the channels' view of every port stays right in a surge.
public final class ChannelWorker: SupervisedWorker, @unchecked Sendable {
    public let name = "channels"
    public let criticality = WorkerCriticality.important
    public let queue = DispatchQueue(label: "portsyncd.channels")

    public enum Input: Sendable {
        case link(LinkEvent, port: String)
        case deleted(port: String, ifindex: Int32, trace: UInt64, stats: LinkStatistics?)

        var port: String {
            switch self {
            case .link(_, let port), .deleted(let port, _, _, _): port
            }
        }
    }

    /// An input and when the router took it (for the processing latency).
    struct Item: Sendable {
        var input: Input
        var offeredAt: UInt64
    }

    /// One shard: a queue, an intake, the channel state of its ports and its figures.
    final class Shard: @unchecked Sendable {
        let index: Int
        let queue: DispatchQueue
        let intake: BoundedIntake<Item>
        // Shard queue only.
        var channels: PortChannels
        var latency = LatencyHistogram()
        var intervalLatency = LatencyHistogram()
        // Any queue.
        let processed = Atomic<UInt64>(0)
        let lastTick: Atomic<UInt64>

        init(index: Int, channels: PortChannels, capacity: Int, now: UInt64) {
            self.index = index
            self.queue = DispatchQueue(label: "portsyncd.channels.\(index)")
            self.intake = BoundedIntake(capacities: [capacity])
            self.channels = channels
            self.lastTick = Atomic(now)
        }

        var subject: String { PortChannels.channelSubjectPrefix + String(self.index) }
    }

    /// What the router holds: the shards, and while re-sharding, the inputs waiting for the new ones.
    private struct Routing: ~Copyable {
        var shards: [Shard] = []
        var pending: [Item]?
        var pendingDropped: UInt64 = 0
        /// Counts of shards that are gone (re-sharded away), so the totals never go back.
        var retiredProcessed: UInt64 = 0
        var retiredDropped: UInt64 = 0
    }

    private let routing = Mutex(Routing())
    private let bus: EventBus
    private let logger: Logger
    private let clock: @Sendable () -> UInt64
    private let capacity: Int
    private let stallMicros: UInt64

    // Worker queue only.
    private var settings: ChannelSettings
    private var shardCount: Int
    private var statsIntervalMs: Int
    private var tickTimer: (any DispatchSourceTimer)?
    private var statsTimer: (any DispatchSourceTimer)?
    private var requester: NetlinkRequester?
    private var linkSpeeds: [String: Double] = [:]

    public init(
        settings: ChannelSettings, workers: Int, statsIntervalMs: Int, capacity: Int, stallTimeoutMs: Int = 5000,
        bus: EventBus, logger: Logger, clock: @escaping @Sendable () -> UInt64 = { MonotonicClock.nowMicroseconds() }
    ) {
        self.settings = settings
        self.shardCount = max(workers, 1)
        self.statsIntervalMs = statsIntervalMs
        self.capacity = capacity
        // A shard ticks every second: a stall is a tick missing for longer than the stall timeout, and never less
        // than three ticks.
        self.stallMicros = UInt64(max(stallTimeoutMs, 3000)) * 1000
        self.bus = bus
        self.logger = logger
        self.clock = clock
        let now = clock()
        let shards = (0..<self.shardCount).map {
            Shard(index: $0, channels: PortChannels(settings: settings), capacity: capacity, now: now)
        }
        self.routing.withLock { $0.shards = shards }
    }

    public func start(_ context: WorkerContext) throws {
        let now = self.clock()
        for shard in self.shards { shard.lastTick.store(now, ordering: .relaxed) }
        self.tickTimer = DispatchSource.repeating(on: self.queue, every: .seconds(1), leeway: .milliseconds(50)) {
            [unowned self] in self.tick(context)
        }
        if self.statsIntervalMs > 0 {
            self.statsTimer = DispatchSource.repeating(
                on: self.queue, every: .milliseconds(self.statsIntervalMs), leeway: .milliseconds(20)
            ) { [unowned self] in self.sampleStats(context) }
        }
    }

    public func stop() {
        self.tickTimer?.cancel()
        self.statsTimer?.cancel()
        self.tickTimer = nil
        self.statsTimer = nil
        self.requester = nil
    }

    /// From the port path: never waits for a shard.
    public func offer(_ input: Input) {
        let item = Item(input: input, offeredAt: MonotonicClock.nowMicroseconds())
        let target: Shard? = self.routing.withLock { routing in
            if routing.pending != nil {
                if routing.pending?.count ?? 0 < self.capacity {
                    routing.pending?.append(item)
                } else {
                    routing.pendingDropped += 1
                }
                return nil
            }
            return routing.shards[Self.shard(of: input.port, count: routing.shards.count)]
        }
        guard let target else { return }
        // A full intake keeps each port's latest input (the damper counts flaps from the carrier counter, so a
        // coalesced message loses no flap).
        let (_, wake) = target.intake.offer(item, key: input.port)
        if wake { target.queue.async { self.drain(target) } }
    }

    /// A port's shard: FNV-1a of its name, so the same on every run.
    public static func shard(of port: String, count: Int) -> Int {
        guard count > 1 else { return 0 }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in port.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return Int(hash % UInt64(count))
    }

    /// A reload: damping parameters and alert rules apply now; a new `workers` re-shards.
    public func update(_ settings: ChannelSettings, workers: Int) {
        self.queue.async {
            self.settings = settings
            for shard in self.shards {
                shard.queue.async {
                    self.publish(shard.channels.update(settings, now: self.clock()))
                }
            }
            let workers = max(workers, 1)
            if workers != self.shardCount { self.reshard(to: workers) }
        }
    }

    /// Each port's link speed from CONFIG_DB (Mb/s), for the `utilisation` rules without their own `speed_mbps`.
    public func setLinkSpeeds(_ speeds: [String: Double]) {
        self.queue.async {
            self.linkSpeeds = speeds
            for shard in self.shards { shard.queue.async { shard.channels.linkSpeedsMbps = speeds } }
        }
    }

    /// Inputs dropped because a channel intake was full.
    public var droppedInputs: UInt64 {
        self.routing.withLock { routing in
            routing.shards.reduce(routing.retiredDropped + routing.pendingDropped) {
                $0 + $1.intake.counts.dropped[0]
            }
        }
    }

    /// The last bars of a port for an interval (for `/v1/ports/{name}/bars`); nil if no shard knows the port.
    public func bars(port: String, intervalMicros: UInt64) async -> [CounterBar]? {
        let shard = self.routing.withLock { $0.shards[Self.shard(of: port, count: $0.shards.count)] }
        return await withCheckedContinuation { result in
            shard.queue.async {
                result.resume(
                    returning: shard.channels.knows(port)
                        ? shard.channels.bars(port: port, intervalMicros: intervalMicros) : nil)
            }
        }
    }

    /// The configured bar lengths, microseconds.
    public func barIntervals() async -> [UInt64] {
        await withCheckedContinuation { result in
            self.queue.async { result.resume(returning: self.settings.barIntervalsMicros) }
        }
    }

    /// The alerts active now, in every shard.
    public func activeAlerts() async -> [ActiveAlert] {
        var alerts: [ActiveAlert] = []
        for shard in self.shards {
            alerts += await withCheckedContinuation { result in
                shard.queue.async { result.resume(returning: shard.channels.alerts.active) }
            }
        }
        return alerts.sorted { ($0.rule, $0.subject) < ($1.rule, $1.subject) }
    }

    /// The figures of every shard, for `/metrics` and `/v1/health/streaming`.
    public func figures() async -> ChannelFigures {
        var figures = ChannelFigures()
        let (retiredProcessed, retiredDropped, pendingDropped) = self.routing.withLock {
            ($0.retiredProcessed, $0.retiredDropped, $0.pendingDropped)
        }
        figures.retiredProcessed = retiredProcessed
        figures.retiredDropped = retiredDropped + pendingDropped
        for shard in self.shards {
            let part: ChannelFigures.Shard = await withCheckedContinuation { result in
                shard.queue.async {
                    result.resume(
                        returning: ChannelFigures.Shard(
                            index: shard.index, ports: shard.channels.portCount, queueDepth: shard.intake.depth,
                            processed: shard.processed.load(ordering: .relaxed),
                            dropped: shard.intake.counts.dropped[0], coalesced: shard.intake.counts.coalesced[0],
                            latency: LatencySummary(shard.latency),
                            duplicatesFolded: shard.channels.duplicatesFolded,
                            alertsActive: shard.channels.alerts.activeCount,
                            suppressed: shard.channels.alerts.suppressedTotal,
                            floodHeld: shard.channels.floodHeldTotal))
                }
            }
            figures.shards.append(part)
        }
        return figures
    }

    private var shards: [Shard] { self.routing.withLock { $0.shards } }

    private func drain(_ shard: Shard) {
        let items = shard.intake.takeAll()[0]
        let now = self.clock()
        var outputs: [ChannelOutput] = []
        for item in items {
            switch item.input {
            case .link(let event, let port): outputs += shard.channels.link(event, port: port, now: now)
            case .deleted(let port, let ifindex, let trace, let stats):
                // In order with the port's link events: published from here, not by the port path.
                self.publish(outputs)
                outputs = []
                self.bus.publish(.portDeleted(.init(ifindex: ifindex, traceID: trace)), port: port)
                outputs += shard.channels.deleted(port: port, now: now, ifindex: ifindex, stats: stats)
            }
        }
        self.publish(outputs)
        let done = MonotonicClock.nowMicroseconds()
        for item in items {
            let micros = done >= item.offeredAt ? done - item.offeredAt : 0
            shard.latency.record(micros)
            shard.intervalLatency.record(micros)
        }
        shard.processed.add(UInt64(items.count), ordering: .relaxed)
    }

    /// Every second: each shard closes bars, releases damped ports and measures its rules; a shard that has not
    /// ticked for the stall timeout fails the worker (the supervisor restarts it with fresh shards).
    private func tick(_ context: WorkerContext) {
        let now = self.clock()
        for shard in self.shards {
            let last = shard.lastTick.load(ordering: .relaxed)
            if now > last, now - last > self.stallMicros {
                context.fail("channel shard \(shard.index) has not ticked for \((now - last) / 1000) ms")
                return
            }
            shard.queue.async {
                let now = self.clock()
                var outputs = shard.channels.tick(now: now)
                outputs += shard.channels.channel(
                    subject: shard.subject, queueDepth: shard.intake.depth,
                    latencyMillis: Double(shard.intervalLatency.percentile(99)) / 1000, now: now)
                shard.intervalLatency.reset()
                self.publish(outputs)
                shard.lastTick.store(self.clock(), ordering: .relaxed)
            }
        }
    }

    /// Moves every port to the shard a new count gives it, keeping per-port order: inputs arriving meanwhile wait
    /// in the router and go to the new shards after the old ones have drained.
    private func reshard(to count: Int) {
        let old = self.routing.withLock { routing in
            routing.pending = []
            return routing.shards
        }
        var merged = PortChannels(settings: self.settings)
        var processed: UInt64 = 0
        var dropped: UInt64 = 0
        for shard in old {
            shard.queue.sync {
                self.drain(shard)
                merged.absorb(shard.channels)
                processed += shard.processed.load(ordering: .relaxed)
                dropped += shard.intake.counts.dropped[0]
            }
        }
        let now = self.clock()
        var shards: [Shard] = []
        for index in 0..<count {
            let part = merged.split { Self.shard(of: $0, count: count) == index }
            shards.append(Shard(index: index, channels: part, capacity: self.capacity, now: now))
        }
        // Channel-level alerts of shards that are gone stay in `merged`; the first new shard keeps the totals.
        shards[0].channels.absorb(merged)
        for shard in shards { shard.channels.linkSpeedsMbps = self.linkSpeeds }
        self.shardCount = count
        self.routing.withLock { routing in
            routing.shards = shards
            routing.retiredProcessed += processed
            routing.retiredDropped += dropped
            let pending = routing.pending ?? []
            routing.pending = nil
            for item in pending {
                let shard = shards[Self.shard(of: item.input.port, count: count)]
                if shard.intake.offer(item, key: item.input.port).wake { shard.queue.async { self.drain(shard) } }
            }
        }
        self.logger.notice(
            "Channels re-sharded from \(old.count) to \(count) workers (\(merged.portCount + shards.reduce(0) { $0 + $1.channels.portCount }) ports)",
            metadata: ["EVENT": "channels_resharded", "WORKERS": .stringConvertible(count)])
    }

    private func sampleStats(_ context: WorkerContext) {
        let datagrams: [[UInt8]]
        do {
            // Opened at the first sample, so that the event socket, opened at start-up, is the process's first.
            let requester = try self.requester ?? NetlinkRequester()
            self.requester = requester
            datagrams = try requester.dumpLinks()
        } catch {
            context.fail("statistics dump: \(error)")
            return
        }
        let shards = self.shards
        var batches = [[(port: String, ifindex: Int32, stats: LinkStatistics)]](repeating: [], count: shards.count)
        for datagram in datagrams {
            for item in NetlinkDecoder.decode(datagram) {
                guard case .link(let message) = item, let name = message.name, let stats = message.stats,
                    LinkFilter.isPortName(name), LinkFilter.isSafeKeyPart(name)
                else { continue }
                let port = name.string
                batches[Self.shard(of: port, count: shards.count)].append((port, message.ifindex, stats))
            }
        }
        for (shard, batch) in zip(shards, batches) where !batch.isEmpty {
            shard.queue.async {
                let now = self.clock()
                var outputs: [ChannelOutput] = []
                for sample in batch {
                    outputs += shard.channels.stats(
                        port: sample.port, ifindex: sample.ifindex, stats: sample.stats, now: now)
                }
                self.publish(outputs)
            }
        }
    }

    private func publish(_ outputs: [ChannelOutput]) {
        for output in outputs {
            switch output {
            case .linkChange(let port, let state):
                self.bus.publish(.portState(state), port: port)
            case .health(let port, let health):
                // With the port's states (high), so that a release comes before the held state it lets through.
                self.bus.publish(.portHealth(health), port: port, priority: .high)
                self.logger.notice(
                    health.damped
                        ? "Port \(port) is flapping: damped (\(health.mode), penalty \(Int(health.penalty)), \(health.flaps) flaps)"
                        : "Port \(port) is stable again: damping ended (penalty \(Int(health.penalty)))",
                    metadata: ["PORT": .string(port), "EVENT": health.damped ? "damping_started" : "damping_ended"])
            case .bar(let port, let bar):
                self.bus.publish(.counterBar(bar), port: port)
            case .flood(let rule, let held):
                self.logger.warning(
                    "Alert flood: \(held) events of rule \(rule) held back in the last second (alerts.flood_limit); /v1/alerts lists every active alert",
                    metadata: ["EVENT": "alert_flood", "RULE": .string(rule)])
            case .alert(let subject, let change):
                let alert = BusEventData.Alert(change)
                let port = subject.hasPrefix(PortChannels.channelSubjectPrefix) ? nil : subject
                self.bus.publish(change.kind == .raised ? .alertRaised(alert) : .alertCleared(alert), port: port)
                let text =
                    change.kind == .raised
                    ? "Alert \(change.rule) raised for \(subject) (\(change.severity.rawValue), \(change.condition.rawValue) \(change.value))"
                    : "Alert \(change.rule) cleared for \(subject) (\(change.suppressed) repeats suppressed)"
                var metadata: Logger.Metadata = [
                    "EVENT": "alert_\(change.kind.rawValue)", "RULE": .string(change.rule),
                    "SEVERITY": .string(change.severity.rawValue),
                ]
                metadata[port == nil ? "CHANNEL" : "PORT"] = .string(subject)
                self.logger.log(level: change.kind == .raised ? .warning : .notice, "\(text)", metadata: metadata)
            }
        }
    }
}

/// The channel shards' figures.
public struct ChannelFigures: Sendable, Codable, Equatable {
    public struct Shard: Sendable, Codable, Equatable {
        public var index: Int
        public var ports: Int
        public var queueDepth: Int
        public var processed: UInt64
        public var dropped: UInt64
        /// Inputs replaced in a full intake by a later one of the same port.
        public var coalesced: UInt64
        public var latency: LatencySummary
        public var duplicatesFolded: UInt64
        public var alertsActive: Int
        public var suppressed: [String: UInt64]
        /// Alert events held back by flood control, by rule.
        public var floodHeld: [String: UInt64]

        enum CodingKeys: String, CodingKey {
            case index, ports, processed, dropped, coalesced, latency, suppressed
            case floodHeld = "flood_held"
            case queueDepth = "queue_depth"
            case duplicatesFolded = "duplicates_folded"
            case alertsActive = "alerts_active"
        }
    }

    public var shards: [Shard] = []
    /// Inputs processed and dropped by shards replaced by a re-sharding (or waiting for the new ones).
    public var retiredProcessed: UInt64 = 0
    public var retiredDropped: UInt64 = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case shards
        case retiredProcessed = "retired_processed"
        case retiredDropped = "retired_dropped"
    }
}

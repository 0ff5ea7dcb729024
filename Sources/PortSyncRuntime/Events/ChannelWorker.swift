public import Dispatch
public import Logging
public import PortSyncCore

/// The channel pipelines as an important worker on their own queue: the link channel (deduplicated, with source
/// context), port health (damping) and counter bars, with the alert monitors, publishing to the event bus.
///
/// Intake is bounded like the bus's: the port path appends under a lock and never waits; a full intake drops the
/// input and counts it (the port's next message or the next statistics dump restores the channel's view). A
/// periodic RTM_GETLINK dump on the channel's own netlink socket samples every port's counters at
/// `channels.stats_interval_ms`.
public final class ChannelWorker: SupervisedWorker, @unchecked Sendable {
    public let name = "channels"
    public let criticality = WorkerCriticality.important
    public let queue = DispatchQueue(label: "portsyncd.channels")

    enum Input: Sendable {
        case link(LinkEvent, port: String)
        case deleted(port: String, ifindex: Int32, trace: UInt64)
    }

    private let intake: BoundedIntake<Input>
    private let bus: EventBus
    private let logger: Logger
    private let clock: @Sendable () -> UInt64

    // Channel queue only.
    private var channels: PortChannels
    private var statsIntervalMs: Int
    private var tickTimer: (any DispatchSourceTimer)?
    private var statsTimer: (any DispatchSourceTimer)?
    private var requester: NetlinkRequester?

    public init(
        settings: ChannelSettings, statsIntervalMs: Int, capacity: Int, bus: EventBus, logger: Logger,
        clock: @escaping @Sendable () -> UInt64 = { MonotonicClock.nowMicroseconds() }
    ) {
        self.channels = PortChannels(settings: settings)
        self.statsIntervalMs = statsIntervalMs
        self.intake = BoundedIntake(capacities: [capacity])
        self.bus = bus
        self.logger = logger
        self.clock = clock
    }

    public func start(_ context: WorkerContext) throws {
        self.tickTimer = DispatchSource.repeating(on: self.queue, every: .seconds(1), leeway: .milliseconds(50)) {
            [unowned self] in self.publish(self.channels.tick(now: self.clock()))
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

    /// From the port path: never waits.
    func offer(_ input: Input) {
        let (_, wake) = self.intake.offer(input)
        if wake { self.queue.async { self.drain() } }
    }

    /// A reload: damping parameters and alert rules apply now.
    public func update(_ settings: ChannelSettings) {
        self.queue.async { self.publish(self.channels.update(settings, now: self.clock())) }
    }

    /// Inputs dropped because the channels' intake was full.
    public var droppedInputs: UInt64 { self.intake.counts.dropped[0] }

    /// The last bars of a port for an interval (for `/v1/ports/{name}/bars`).
    public func bars(port: String, intervalMicros: UInt64) async -> [CounterBar] {
        await withCheckedContinuation { result in
            self.queue.async {
                result.resume(returning: self.channels.bars(port: port, intervalMicros: intervalMicros))
            }
        }
    }

    /// The alerts active now.
    public func activeAlerts() async -> [(rule: String, subject: String)] {
        await withCheckedContinuation { result in
            self.queue.async { result.resume(returning: self.channels.alerts.active) }
        }
    }

    private func drain() {
        let inputs = self.intake.takeAll()[0]
        let now = self.clock()
        var outputs: [ChannelOutput] = []
        for input in inputs {
            switch input {
            case .link(let event, let port): outputs += self.channels.link(event, port: port, now: now)
            case .deleted(let port, let ifindex, let trace):
                // In order with the port's link events: published from here, not by the port path.
                self.publish(outputs)
                outputs = []
                self.bus.publish(.portDeleted(.init(ifindex: ifindex, traceID: trace)), port: port)
                outputs += self.channels.deleted(port: port, now: now)
            }
        }
        self.publish(outputs)
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
        let now = self.clock()
        var outputs: [ChannelOutput] = []
        for datagram in datagrams {
            for item in NetlinkDecoder.decode(datagram) {
                guard case .link(let message) = item, let name = message.name, let stats = message.stats,
                    LinkFilter.isPortName(name), LinkFilter.isSafeKeyPart(name)
                else { continue }
                outputs += self.channels.stats(port: name.string, ifindex: message.ifindex, stats: stats, now: now)
            }
        }
        self.publish(outputs)
    }

    private func publish(_ outputs: [ChannelOutput]) {
        for output in outputs {
            switch output {
            case .linkChange(let port, let state):
                self.bus.publish(.portState(state), port: port)
            case .health(let port, let health):
                self.bus.publish(.portHealth(health), port: port)
                self.logger.notice(
                    health.damped
                        ? "Port \(port) is flapping: damped (\(health.mode), penalty \(Int(health.penalty)), \(health.flaps) flaps)"
                        : "Port \(port) is stable again: damping ended (penalty \(Int(health.penalty)))",
                    metadata: ["PORT": .string(port), "EVENT": health.damped ? "damping_started" : "damping_ended"])
            case .bar(let port, let bar):
                self.bus.publish(.counterBar(bar), port: port)
            case .alert(let port, let change):
                let alert = BusEventData.Alert(change)
                self.bus.publish(change.kind == .raised ? .alertRaised(alert) : .alertCleared(alert), port: port)
                let text =
                    change.kind == .raised
                    ? "Alert \(change.rule) raised for \(port) (\(change.severity.rawValue), value \(change.value))"
                    : "Alert \(change.rule) cleared for \(port) (\(change.suppressed) repeats suppressed)"
                self.logger.log(
                    level: change.kind == .raised ? .warning : .notice, "\(text)",
                    metadata: [
                        "PORT": .string(port), "EVENT": "alert_\(change.kind.rawValue)", "RULE": .string(change.rule),
                    ])
            }
        }
    }
}

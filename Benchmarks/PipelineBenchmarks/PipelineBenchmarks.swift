import Benchmark
import PortSyncCore

/// The pipeline's stages, each alone on its real input, and the whole pipeline up to the hand-off.
///
/// Every iteration handles `batchSize` messages (`scalingFactor: .kilo`), so the scaled figures are per message:
/// wall clock in ns per message, throughput in messages per second, allocations per message. The raw counts that
/// `Thresholds/` records are per iteration, that is per 1000 messages. The messages are built once, before
/// measuring, and read in place, as the daemon reads a datagram in its receive buffer.
let benchmarks: @Sendable () -> Void = {
    let batchSize = BenchmarkScalingFactor.kilo.rawValue

    /// Allocation counts are deterministic: the committed thresholds hold them to the recorded value, within
    /// `allocations` per 1000 messages either way (0 where the goal is none at all).
    func configuration(allocations: Int) -> Benchmark.Configuration {
        .init(
            metrics: [.wallClock, .throughput, .mallocCountTotal],
            timeUnits: .nanoseconds,
            warmupIterations: 10,
            scalingFactor: .kilo,
            maxDuration: .seconds(1),
            maxIterations: 20_000,
            thresholds: [.mallocCountTotal: .init(absolute: [.p90: allocations])]
        )
    }

    // The prefilter sees every message of every captured datagram: ports, other interfaces, NLMSG_DONE.
    let everyMessage = Fixtures.messages().repeated(to: batchSize)
    // The extract and validate stages see what the prefilter passes.
    let prefilter = PrefilterStage()
    let portMessages = Fixtures.messages { prefilter.check($0) == .pass }.repeated(to: batchSize)
    var portEvents: [LinkEvent] = []
    portMessages.forEach(in: 0..<portMessages.count) { message in
        guard case .link(let link) = NetlinkDecoder.decodeMessage(message) else {
            preconditionFailure("a captured port message did not decode")
        }
        portEvents.append(LinkEvent(trace: UInt64(portEvents.count), receivedAt: 0, message: link))
    }
    let events = portEvents

    Benchmark("prefilter", configuration: configuration(allocations: 0)) { _ in
        everyMessage.forEach(in: 0..<batchSize) { message in
            blackHole(prefilter.check(message))
        }
    }

    Benchmark("extract", configuration: configuration(allocations: 0)) { _ in
        var trace: UInt64 = 0
        portMessages.forEach(in: 0..<batchSize) { message in
            trace &+= 1
            guard case .link(let link) = NetlinkDecoder.decodeMessage(message) else { return }
            blackHole(LinkEvent(trace: trace, receivedAt: 1, message: link))
        }
    }

    var validate = ValidateStage()
    Benchmark("validate", configuration: configuration(allocations: 0)) { _ in
        for index in 0..<batchSize {
            var event = events[index]
            blackHole(validate.check(&event))
        }
    }

    // Each offer is taken at once, as the writer does while it has room: the queue holds one item at a time, and
    // every item names another port than the previous 99 999.
    var handoff = HandoffQueue<PortChange>(capacity: 1 << 16, policy: .coalesce)
    var handoffItems: [HandoffItem<PortChange>] = []
    var nextItem = 0
    Benchmark("hand-off, 100 000 ports", configuration: configuration(allocations: 0)) { _ in
        var now: UInt64 = 0
        for index in nextItem..<(nextItem + batchSize) {
            now &+= 1
            blackHole(handoff.offer(handoffItems[index], now: now))
            blackHole(handoff.take(now: now))
        }
        nextItem = nextItem + batchSize == handoffItems.count ? 0 : nextItem + batchSize
    } setup: {
        guard handoffItems.isEmpty else { return }
        let state = PortOperState(adminUp: true, operUp: true, mtu: 9100)
        handoffItems = (0..<100_000).map { port in
            let name = "Ethernet\(port * 4)"
            return HandoffItem(key: name, priority: .medium, trace: UInt64(port), payload: .state(state))
        }
    }

    let pipeline = PipelineRun(ports: 100_000, batchSize: batchSize)
    Benchmark("pipeline to hand-off, 100 000 ports", configuration: configuration(allocations: 0)) { _ in
        pipeline.runBatch()
    } setup: {
        pipeline.prepare()
    }
}

/// The whole pipeline over datagrams that name `ports` different ports (`Ethernet0`, `Ethernet4`, … one
/// `RTM_NEWLINK` per datagram, as the kernel sends link events), `batchSize` datagrams an iteration, going round
/// all the ports in turn.
///
/// It runs the daemon's own `PipelineCore` as `PortPipeline.process(datagram:)` and `pump()` do: one clock read per
/// datagram for the stages and one for the drain, every stage's event and counts, the hand-off, its wait
/// histogram. The writer's side is reduced to taking each update out of the hand-off (no Redis), and the observer
/// does nothing (the daemon at a log level above `notice`).
final class PipelineRun {
    let ports: Int
    let batchSize: Int
    private var datagrams = MessageBatch()
    private var core: PipelineCore<SilentObserver>
    private var next = 0

    /// A hand-off under `coalesce` large enough never to be full here (each offer is taken at once).
    static var settings: Config.Pipeline {
        var settings = Config.Pipeline()
        settings.streamBufferCapacity = 1 << 16
        settings.dropPolicy = HandoffPolicy.coalesce.rawValue
        return settings
    }

    init(ports: Int, batchSize: Int) {
        precondition(ports % batchSize == 0, "each iteration takes a whole batch")
        self.ports = ports
        self.batchSize = batchSize
        self.core = PipelineCore(settings: Self.settings, observer: SilentObserver())
    }

    /// Builds the datagrams, then sends every port once through the pipeline: measuring starts with a daemon that
    /// has seen every port (the validate stage's per-port memory has its final size).
    func prepare() {
        guard self.datagrams.count == 0 else { return }
        for port in 0..<self.ports {
            self.datagrams.append(LinkMessageBuilder.newLink(name: "Ethernet\(port * 4)", ifindex: Int32(port + 2)))
        }
        self.core = PipelineCore(settings: Self.settings, observer: SilentObserver())
        self.datagrams.forEach(in: 0..<self.ports) { self.process(datagram: $0) }
        precondition(self.core.messages.candidatesSent == UInt64(self.ports), "every port reaches the hand-off")
    }

    /// Takes the next `batchSize` datagrams through the pipeline.
    func runBatch() {
        self.datagrams.forEach(in: self.next..<(self.next + self.batchSize)) { datagram in
            self.process(datagram: datagram)
        }
        blackHole(self.core.messages.candidatesSent)
        self.next += self.batchSize
        if self.next == self.ports { self.next = 0 }
    }

    /// `PortPipeline.process(datagram:)`: the stages at the datagram's time, then the pump.
    @inline(__always)
    private func process(datagram: UnsafeRawBufferPointer) {
        self.core.process(datagram: datagram, now: MonotonicTime.nowMicroseconds())
        let now = MonotonicTime.nowMicroseconds()
        blackHole(self.core.pump(now: now, while: { _ in true }) { item, _ in blackHole(item.trace) })
    }
}

/// The daemon's observer at a log level above `notice`: nothing to log, no resync dump to write.
struct SilentObserver: PipelineObserver {}

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
    Benchmark("validate", configuration: configuration(allocations: 10)) { _ in
        for index in 0..<batchSize {
            var event = events[index]
            blackHole(validate.check(&event))
        }
    }

    // Each offer is taken at once, as the writer does while it has room: the queue holds one item at a time, and
    // every item names another port than the previous 99 999.
    var handoff = HandoffQueue<PortUpdate>(capacity: 1 << 16, policy: .coalesce)
    var handoffItems: [HandoffItem<PortUpdate>] = []
    var nextItem = 0
    Benchmark("hand-off, 100 000 ports", configuration: configuration(allocations: 10)) { _ in
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
            return HandoffItem(key: name, priority: .medium, trace: UInt64(port), payload: .state(port: name, state))
        }
    }

    let pipeline = PipelineRun(ports: 100_000, batchSize: batchSize)
    Benchmark("pipeline to hand-off, 100 000 ports", configuration: configuration(allocations: 10)) { _ in
        pipeline.runBatch()
    } setup: {
        pipeline.prepare()
    }
}

/// The whole pipeline over datagrams that name `ports` different ports (`Ethernet0`, `Ethernet4`, … one
/// `RTM_NEWLINK` per datagram, as the kernel sends link events), `batchSize` datagrams an iteration, going round
/// all the ports in turn.
final class PipelineRun {
    let ports: Int
    let batchSize: Int
    private var datagrams = MessageBatch()
    private var model = PipelineModel()
    private var next = 0

    init(ports: Int, batchSize: Int) {
        precondition(ports % batchSize == 0, "each iteration takes a whole batch")
        self.ports = ports
        self.batchSize = batchSize
    }

    /// Builds the datagrams, then sends every port once through the pipeline: measuring starts with a daemon that
    /// has seen every port (the validate stage's per-port memory has its final size).
    func prepare() {
        guard self.datagrams.count == 0 else { return }
        for port in 0..<self.ports {
            self.datagrams.append(LinkMessageBuilder.newLink(name: "Ethernet\(port * 4)", ifindex: Int32(port + 2)))
        }
        self.model = PipelineModel()
        self.datagrams.forEach(in: 0..<self.ports) { self.model.process(datagram: $0) }
        precondition(self.model.candidatesSent == UInt64(self.ports), "every port reaches the hand-off")
    }

    /// Takes the next `batchSize` datagrams through the pipeline.
    func runBatch() {
        var accepted = 0
        self.datagrams.forEach(in: self.next..<(self.next + self.batchSize)) { datagram in
            accepted &+= self.model.process(datagram: datagram)
        }
        blackHole(accepted)
        self.next += self.batchSize
        if self.next == self.ports { self.next = 0 }
    }
}

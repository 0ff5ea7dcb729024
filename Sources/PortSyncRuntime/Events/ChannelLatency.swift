import Dispatch
import Glibc
import Logging
package import PortSyncCore
import Synchronization

/// The link events a storm of `ports` ports sends, for `portsyncd-bench channels`: what the extract stage makes of
/// a kernel `RTM_NEWLINK` (name, ifindex, flags, MTU, kind, carrier changes, oper state, address and the
/// IFLA_STATS64 counters every such message carries). Visit `n` of a port is its `n`-th message: even visits up,
/// odd visits down, each one carrier change later, so every message is a change the link channel publishes.
/// Counters grow with time at a rate of the port's own (8 Mb/s to 1 Gb/s), so bars have real rates.
package struct ChannelWorkload: Sendable {
    package let names: [String]
    private let interfaceNames: [InterfaceName?]

    package init(ports: Int) {
        self.names = (0..<ports).map { "Ethernet\($0 * 4)" }
        self.interfaceNames = self.names.map { InterfaceName($0) }
    }

    package var ports: Int { self.names.count }

    package func ifindex(_ port: Int) -> Int32 { Int32(truncatingIfNeeded: port + 2) }

    /// The counters of `port` at `now` (monotonic µs).
    package func stats(_ port: Int, now: UInt64) -> LinkStatistics {
        let bytesPerMicro = UInt64(1 + port % 125)
        let rxBytes = now &* bytesPerMicro
        let txBytes = rxBytes / 2
        return LinkStatistics(
            rxPackets: rxBytes / 800, txPackets: txBytes / 800, rxBytes: rxBytes, txBytes: txBytes,
            rxErrors: now / 50_000_000, txErrors: 0, rxDropped: now / 20_000_000, txDropped: 0)
    }

    /// The `visit`-th link message of `port`, received at `now`.
    package func event(_ port: Int, visit: Int, trace: UInt64, now: UInt64) -> LinkEvent {
        let up = visit % 2 == 0
        let ifindex = self.ifindex(port)
        let message = LinkMessage(
            kind: .newLink, ifindex: ifindex, flags: up ? [.up, .broadcast, .running, .multicast, .lowerUp] : [.up],
            name: self.interfaceNames[port], mtu: 9100, linkKind: InterfaceName("veth"),
            carrierChanges: UInt32(truncatingIfNeeded: visit), operState: up ? 6 : 2,
            address: HardwareAddress(bytes: [0x02, 0x42, 0xAC, UInt8(truncatingIfNeeded: ifindex >> 8), 0, 1]),
            stats: self.stats(port, now: now))
        return LinkEvent(trace: trace, receivedAt: now, message: message)
    }
}

/// Channel processing latency through the daemon's own `ChannelWorker` and `EventBus`, for
/// `portsyncd-bench channels latency`: each link event is offered as the port path offers it (`offer(.link)`,
/// stamped with its receive time), and a bus subscriber (as a stream client, without the socket) takes it; the
/// latency of an event is from its offer to the subscriber's `take` that returned it.
///
/// The worker runs with the default `[channels]`, `[alerts]` and `[events]` settings and its real one-second tick
/// (so bars of every port close once per 10 s during the run, on the same queue). No statistics dump runs (it
/// needs the kernel's ports); the link messages carry the counters. The subscriber's buffer is larger than a
/// client's default so that it is never closed as slow. Logging is off (the daemon at `notice` would also write a
/// journal line when a port's damping starts).
package enum ChannelLatency {
    package struct Result: Sendable {
        package var ports: Int
        /// Events offered per second (0: as fast as the worker takes them, at most `window` outstanding).
        package var rate: Int
        package var offered: Int
        /// `port_state` events the subscriber took.
        package var published: Int
        package var seconds: Double
        /// Offer → taken by the subscriber, µs, sorted.
        package var latencies: [UInt64]
        package var droppedByChannels: UInt64
        package var droppedByBus: [String: UInt64]
        /// Other events the subscriber took during the run.
        package var health: Int
        package var bars: Int
        package var alerts: Int
        /// Process CPU time over the measured part (every thread), seconds.
        package var cpuSeconds: Double

        package func percentile(_ p: Double) -> UInt64 {
            guard !self.latencies.isEmpty else { return 0 }
            let rank = Int((p / 100 * Double(self.latencies.count)).rounded(.up)) - 1
            return self.latencies[Swift.min(Swift.max(rank, 0), self.latencies.count - 1)]
        }
    }

    private final class Seen: Sendable {
        let measured = Atomic<Int>(0)
        let warmUp = Atomic<Int>(0)
        /// When the subscriber last took a measured event, monotonic µs.
        let lastTaken = Atomic<UInt64>(0)
        let results = Mutex<(latencies: [UInt64], health: Int, bars: Int, alerts: Int)>(([], 0, 0, 0))
        let subscription = Mutex<EventBusState.SubscriberID>(0)
        let subscribed = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
    }

    /// Warms up with one message per port, then offers messages round robin over the ports for `seconds`, at
    /// `rate` per second (0: unpaced, at most `window` offered and not yet taken), and waits (at most 10 s) for the
    /// subscriber to take every one. `seconds` in the result runs to the last one taken.
    package static func measure(
        ports: Int, rate: Int, seconds: Double, workers: Int = Config().channels.workers, window: Int = 256
    ) -> Result {
        let config = Config()
        let logger = Logger(label: "portsyncd-bench") { _ in SwiftLogNoOpLogHandler() }
        let bus = EventBus(
            epoch: EventBus.newEpoch(),
            capacities: (config.events.highCapacity, config.events.mediumCapacity, config.events.lowCapacity),
            replayCapacity: config.events.replayCapacity,
            clientBufferCapacity: Swift.max(config.events.clientBufferCapacity, 1 << 16))
        let worker = ChannelWorker(
            settings: ChannelSettings(config), workers: workers, statsIntervalMs: 0,
            capacity: config.channels.intakeCapacity, bus: bus, logger: logger)
        let context = { (name: String) in WorkerContext(name: name, generation: 1) { _, _ in } }
        bus.queue.sync { try? bus.start(context(bus.name)) }
        worker.queue.sync { try? worker.start(context(worker.name)) }
        defer { worker.queue.sync { worker.stop() } }

        let workload = ChannelWorkload(ports: ports)
        let seen = Seen()
        let warmUpCount = UInt64(ports)
        Task.detached {
            let subscription = await bus.subscribe(filter: EventFilter(), lastEventID: nil)
            seen.subscription.withLock { $0 = subscription.id }
            seen.subscribed.signal()
            var latencies: [UInt64] = []
            var health = 0
            var bars = 0
            var alerts = 0
            for await _ in subscription.doorbell {
                guard let events = await bus.take(subscription.id).events else { break }
                let now = MonotonicClock.nowMicroseconds()
                for event in events {
                    switch event.data {
                    case .portState(let state):
                        if state.traceID < warmUpCount {
                            seen.warmUp.add(1, ordering: .relaxed)
                        } else {
                            latencies.append(now - (state.receivedMicros ?? now))
                            seen.lastTaken.store(now, ordering: .relaxed)
                            seen.measured.add(1, ordering: .releasing)
                        }
                    case .portHealth: health += 1
                    case .counterBar: bars += 1
                    case .alertRaised, .alertCleared: alerts += 1
                    default: break
                    }
                }
            }
            seen.results.withLock { $0 = (latencies, health, bars, alerts) }
            seen.done.signal()
        }
        seen.subscribed.wait()

        // Every port once, so that measuring starts with a worker that knows them all.
        for port in 0..<ports {
            worker.offer(
                .link(
                    workload.event(port, visit: 0, trace: UInt64(port), now: MonotonicClock.nowMicroseconds()),
                    port: workload.names[port]))
            while port - seen.warmUp.load(ordering: .relaxed) >= window { Self.pause() }
        }
        Self.wait(deadlineSeconds: 10) { seen.warmUp.load(ordering: .relaxed) >= ports }

        let cpuBefore = Self.processCPUSeconds()
        let start = MonotonicClock.nowMicroseconds()
        let end = start + UInt64(seconds * 1_000_000)
        var offered = 0
        var now = start
        while now < end {
            if rate > 0 {
                let due = start + UInt64(offered) * 1_000_000 / UInt64(rate)
                if due > now {
                    Self.sleep(until: due)
                    now = MonotonicClock.nowMicroseconds()
                    continue
                }
            } else if offered - seen.measured.load(ordering: .acquiring) >= window {
                Self.pause()
                now = MonotonicClock.nowMicroseconds()
                continue
            }
            let port = offered % ports
            let visit = 1 + offered / ports
            worker.offer(
                .link(
                    workload.event(port, visit: visit, trace: warmUpCount + UInt64(offered), now: now),
                    port: workload.names[port]))
            offered += 1
            now = MonotonicClock.nowMicroseconds()
        }
        Self.wait(deadlineSeconds: 10) { seen.measured.load(ordering: .acquiring) >= offered }
        let cpu = Self.processCPUSeconds() - cpuBefore
        let elapsed = Double(Swift.max(seen.lastTaken.load(ordering: .relaxed), start) - start) / 1_000_000

        bus.unsubscribe(seen.subscription.withLock { $0 })
        seen.done.wait()
        let (latencies, health, bars, alerts) = seen.results.withLock { $0 }
        return Result(
            ports: ports, rate: rate, offered: offered, published: latencies.count, seconds: elapsed,
            latencies: latencies.sorted(), droppedByChannels: worker.droppedInputs,
            droppedByBus: bus.intakeCounters.dropped, health: health, bars: bars, alerts: alerts, cpuSeconds: cpu)
    }

    private static func wait(deadlineSeconds: UInt64, until condition: () -> Bool) {
        let deadline = MonotonicClock.nowMicroseconds() + deadlineSeconds * 1_000_000
        while !condition() && MonotonicClock.nowMicroseconds() < deadline { Self.pause(micros: 1000) }
    }

    private static func pause(micros: Int = 20) {
        var spec = timespec(tv_sec: 0, tv_nsec: micros * 1000)
        nanosleep(&spec, nil)
    }

    private static func sleep(until micros: UInt64) {
        var spec = timespec(tv_sec: Int(micros / 1_000_000), tv_nsec: Int(micros % 1_000_000) * 1000)
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &spec, nil)
    }

    private static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
    }
}

import Foundation
import PortSyncCore
import PortSyncRuntime

/// `portsyncd-bench channels …`: the channel pipelines (link channel, damping, counter bars, alerts) with the
/// default `[channels]` and `[alerts]` settings (10 s bars, 60 kept per port, damping in monitor mode).
///
/// - `latency [PORTS] [RATE] [SECONDS]`: link events offered to the real `ChannelWorker` at RATE per second (0:
///   unpaced, at most 256 outstanding) round robin over PORTS ports, each a state change with counters, and taken
///   from the real `EventBus` by a subscriber; offer → taken p50/p99/p999/max in µs (`ChannelLatency`). One line.
/// - `ticks [PORTS] [ROUNDS]`: `PortChannels` alone on a simulated clock, every port with a full bar history (the
///   daemon after 10 minutes): per round (one bar interval), the CPU time of one statistics sample per port (one
///   dump), of a tick that closes nothing, and of the tick that closes every port's bar; RSS per port. One line per
///   round.
/// - `events [PORTS] [EVENTS]`: `PortChannels.link` alone, state changes with counters round robin over PORTS ports
///   at a simulated 10 000/s with a tick every simulated second: CPU ns per event (ticks apart), and the JSON of a
///   `port_state` event as a stream client renders it. One line.
/// - `trace [SEEDS]`: every output and query answer of `PortChannels` over SEEDS random scenarios (`ChannelTrace`),
///   for comparing two builds: a change meant to keep the channels' behaviour must print the same text. Run with
///   `SWIFT_DETERMINISTIC_HASHING=1`.
enum ChannelBench {
    static let usage = """
               portsyncd-bench channels latency [PORTS] [RATE] [SECONDS]
               portsyncd-bench channels ticks [PORTS] [ROUNDS]
               portsyncd-bench channels events [PORTS] [EVENTS]
               portsyncd-bench channels trace [SEEDS]

        """

    /// Runs the mode named in `arguments` (after `channels`); false for a usage error.
    static func run(_ arguments: [String]) -> Bool {
        guard let mode = arguments.first, arguments.count <= 4 else { return false }
        let numbers = arguments.dropFirst().map { Double($0) }
        guard numbers.allSatisfy({ ($0 ?? -1) >= 0 }) else { return false }
        func number(_ index: Int, _ otherwise: Int) -> Int {
            index < numbers.count ? Int(numbers[index] ?? Double(otherwise)) : otherwise
        }
        let ports = number(0, 8192)
        guard ports > 0 else { return false }
        switch mode {
        case "latency":
            let seconds = numbers.count > 2 ? numbers[2] ?? 10 : 10
            guard seconds > 0 else { return false }
            Self.latency(ports: ports, rate: number(1, 10_000), seconds: seconds)
        case "ticks" where numbers.count <= 2: Self.ticks(ports: ports, rounds: Swift.max(number(1, 5), 1))
        case "events" where numbers.count <= 2: Self.events(ports: ports, count: number(1, 200_000))
        case "trace" where numbers.count <= 1:
            for seed in 0..<UInt64(number(0, 20)) { ChannelTrace.run(seed: seed) }
        default: return false
        }
        return true
    }

    static func latency(ports: Int, rate: Int, seconds: Double) {
        let result = ChannelLatency.measure(ports: ports, rate: rate, seconds: seconds)
        let dropped = result.droppedByBus.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }
        print(
            "{\"ports\": \(ports), \"rate\": \(rate), \"offered\": \(result.offered), "
                + "\"published\": \(result.published), \"seconds\": \(result.seconds), "
                + "\"events_per_s\": \(Double(result.published) / result.seconds), "
                + "\"p50_us\": \(result.percentile(50)), \"p99_us\": \(result.percentile(99)), "
                + "\"p999_us\": \(result.percentile(99.9)), \"max_us\": \(result.latencies.last ?? 0), "
                + "\"cpu_us_per_event\": \(result.cpuSeconds * 1e6 / Double(Swift.max(result.published, 1))), "
                + "\"dropped_by_channels\": \(result.droppedByChannels), "
                + "\"dropped_by_bus\": {\(dropped.joined(separator: ", "))}, "
                + "\"health_events\": \(result.health), \"bar_events\": \(result.bars), "
                + "\"alert_events\": \(result.alerts)}")
    }

    static func ticks(ports: Int, rounds: Int) {
        let settings = ChannelSettings(Config())
        let interval = settings.barIntervalsMicros.first ?? 10_000_000
        let second: UInt64 = 1_000_000
        let workload = ChannelWorkload(ports: ports)
        let base = interval * 100_000
        var channels = PortChannels(settings: settings)
        var sink = 0

        func sample(at now: UInt64) -> Int {
            var count = 0
            for port in 0..<ports {
                let stats = workload.stats(port, now: now)
                let name = workload.names[port]
                count += channels.stats(port: name, ifindex: workload.ifindex(port), stats: stats, now: now).count
            }
            return count
        }

        let rssStart = Self.residentBytes()
        for port in 0..<ports {
            let event = workload.event(port, visit: 0, trace: UInt64(port), now: base + 1000)
            sink += channels.link(event, port: workload.names[port], now: base + 1000).count
        }
        let rssPorts = Self.residentBytes()
        // The daemon after `barHistory` intervals: every port's history full, so each close also drops the oldest.
        let setupStart = Self.threadCPUNanos()
        for index in 0..<settings.barHistory {
            let start = base + UInt64(index) * interval
            sink += sample(at: start + 3 * second) + sample(at: start + 6 * second)
            sink += channels.tick(now: start + interval + 10_000).count
        }
        let setupSeconds = Double(Self.threadCPUNanos() - setupStart) / 1e9
        let rssFull = Self.residentBytes()

        for round in 0..<rounds {
            let start = base + UInt64(settings.barHistory + round) * interval
            var cpu = Self.threadCPUNanos()
            sink += sample(at: start + second / 2)
            let sampleMs = Double(Self.threadCPUNanos() - cpu) / 1e6
            cpu = Self.threadCPUNanos()
            let idleOutputs = channels.tick(now: start + second).count
            let idleMs = Double(Self.threadCPUNanos() - cpu) / 1e6
            sink += sample(at: start + 5 * second)
            cpu = Self.threadCPUNanos()
            let closeOutputs = channels.tick(now: start + interval + 10_000).count
            let closeMs = Double(Self.threadCPUNanos() - cpu) / 1e6
            print(
                "{\"ports\": \(ports), \"round\": \(round), \"stats_sample_cpu_ms\": \(sampleMs), "
                    + "\"idle_tick_cpu_ms\": \(idleMs), \"idle_tick_outputs\": \(idleOutputs), "
                    + "\"close_tick_cpu_ms\": \(closeMs), \"close_tick_outputs\": \(closeOutputs), "
                    + "\"rss_bytes_per_port_new\": \((rssPorts - rssStart) / ports), "
                    + "\"rss_bytes_per_port_full_history\": \((rssFull - rssStart) / ports), "
                    + "\"rss_mib\": \(rssFull >> 20), \"setup_cpu_s\": \(setupSeconds), \"sink\": \(sink)}")
        }
    }

    static func events(ports: Int, count: Int) {
        let settings = ChannelSettings(Config())
        let workload = ChannelWorkload(ports: ports)
        var channels = PortChannels(settings: settings)
        var now: UInt64 = 1_000_000_000_000
        for port in 0..<ports {
            _ = channels.link(
                workload.event(port, visit: 0, trace: UInt64(port), now: now), port: workload.names[port], now: now)
        }
        // Built first, so that only the channels are timed.
        let events = (0..<count).map { index in
            let port = index % ports
            return workload.event(
                port, visit: 1 + index / ports, trace: UInt64(ports + index), now: now + UInt64(index + 1) * 100)
        }
        var nextTick = now + 1_000_000
        var tickNanos: UInt64 = 0
        var ticks = 0
        var outputs = [0, 0, 0, 0]
        var states: [(String, BusEventData.PortState)] = []
        let loopStart = Self.threadCPUNanos()
        for (index, event) in events.enumerated() {
            now = event.receivedAt
            if now >= nextTick {
                let start = Self.threadCPUNanos()
                outputs[2] += channels.tick(now: now).count
                tickNanos += Self.threadCPUNanos() - start
                ticks += 1
                nextTick += 1_000_000
            }
            for output in channels.link(event, port: workload.names[index % ports], now: now) {
                switch output {
                case .linkChange(let port, let state):
                    outputs[0] += 1
                    if states.count < 20_000 { states.append((port, state)) }
                case .health: outputs[1] += 1
                case .bar: outputs[2] += 1
                case .alert, .flood: outputs[3] += 1
                }
            }
        }
        let linkNanos = Self.threadCPUNanos() - loopStart - tickNanos
        let jsonStart = Self.threadCPUNanos()
        var bytes = 0
        for (port, state) in states {
            bytes += BusEvent(port: port, timeMillis: 1_700_000_000_000, data: .portState(state)).json().utf8.count
        }
        let jsonNanos = Double(Self.threadCPUNanos() - jsonStart) / Double(Swift.max(states.count, 1))
        print(
            "{\"ports\": \(ports), \"events\": \(count), "
                + "\"link_ns_per_event\": \(Double(linkNanos) / Double(Swift.max(count, 1))), "
                + "\"ticks\": \(ticks), \"tick_ms_mean\": \(Double(tickNanos) / 1e6 / Double(Swift.max(ticks, 1))), "
                + "\"port_state\": \(outputs[0]), \"port_health\": \(outputs[1]), \"bars\": \(outputs[2]), "
                + "\"alerts\": \(outputs[3]), \"json_ns_per_port_state\": \(jsonNanos), \"json_bytes\": \(bytes)}")
    }

    /// CPU time of the calling thread, ns.
    static func threadCPUNanos() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    /// The process's resident set now (`/proc/self/statm`), bytes.
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

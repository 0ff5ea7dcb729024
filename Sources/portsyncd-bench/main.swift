import Foundation
import PortSyncCore
import PortSyncRuntime

/// `portsyncd-bench DIR [ROUNDS]`: the decoder and the SONiC filter over the captured kernel datagrams in DIR,
/// in ns per message, one line of JSON per round (the bench script takes the median).
///
/// `portsyncd-bench redis-writer SOCKET [PORTS] [UPDATES] [IN_FLIGHT] [sync|async]`: the Redis writer's throughput
/// into the Redis server at SOCKET (`WriterThroughput`), in HSET-equivalents per second, one line of JSON.
///
/// `portsyncd-bench channels latency|ticks|events|trace …`: the channel pipelines (`ChannelBench`), lines of JSON
/// (`trace`: every output of seeded random scenarios, to compare two builds).
let usage = """
    usage: portsyncd-bench FIXTURE_DIR [ROUNDS]
           portsyncd-bench redis-writer SOCKET [PORTS] [UPDATES] [IN_FLIGHT] [sync|async]

    """ + ChannelBench.usage
let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data(usage.utf8))
    exit(2)
}
if arguments[1] == "redis-writer" {
    let mode = arguments.count == 7 ? BatchSendMode(rawValue: arguments[6]) : .sync
    let numbers = arguments.dropFirst(3).prefix(3).map { Int($0) }
    guard arguments.count >= 3, arguments.count <= 7, let mode, numbers.allSatisfy({ ($0 ?? 0) > 0 }) else {
        FileHandle.standardError.write(Data(usage.utf8))
        exit(2)
    }
    let ports = numbers.count > 0 ? numbers[0] ?? 1024 : 1024
    let updates = numbers.count > 1 ? numbers[1] ?? 500_000 : 500_000
    let inFlight = numbers.count > 2 ? numbers[2] ?? 1024 : 1024
    do {
        let result = try WriterThroughput.measure(
            socketPath: arguments[2], ports: ports, updates: updates, maxInFlight: inFlight, mode: mode)
        print(
            "{\"mode\": \"\(mode.rawValue)\", \"writer_hset_per_s\": \(result.perSecond), "
                + "\"written\": \(result.written), \"updates\": \(result.updates), \"seconds\": \(result.seconds)}")
        exit(result.written == result.updates ? 0 : 1)
    } catch {
        FileHandle.standardError.write(Data("portsyncd-bench: \(error)\n".utf8))
        exit(1)
    }
}
if arguments[1] == "channels" {
    guard ChannelBench.run(Array(arguments.dropFirst(2))) else {
        FileHandle.standardError.write(Data(usage.utf8))
        exit(2)
    }
    exit(0)
}
let rounds = arguments.count > 2 ? Int(arguments[2]) ?? 7 : 7
let directory = URL(fileURLWithPath: arguments[1])
let files = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
let datagrams = files.filter { $0.pathExtension == "bin" }.sorted { $0.path < $1.path }
    .compactMap { try? Data(contentsOf: $0) }.map { [UInt8]($0) }
guard !datagrams.isEmpty else {
    FileHandle.standardError.write(Data("no .bin fixtures in \(directory.path)\n".utf8))
    exit(2)
}
let messagesPerPass = datagrams.reduce(0) { $0 + NetlinkDecoder.decode($1).count }

func nanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

let filter = LinkFilter()
for _ in 0..<rounds {
    let passes = 20_000
    var checksum = 0
    let decodeStart = nanoseconds()
    for _ in 0..<passes {
        for datagram in datagrams {
            datagram.withUnsafeBytes { raw in
                NetlinkDecoder.forEach(in: raw) { item in
                    if case .link(let message) = item { checksum &+= Int(message.ifindex) }
                }
            }
        }
    }
    let decodeNs = Double(nanoseconds() - decodeStart) / Double(passes * messagesPerPass)
    let filterStart = nanoseconds()
    for _ in 0..<passes {
        for datagram in datagrams {
            datagram.withUnsafeBytes { raw in
                NetlinkDecoder.forEach(in: raw) { item in
                    if case .link(let message) = item, case .accept = filter.classify(message) { checksum &+= 1 }
                }
            }
        }
    }
    let filterNs = Double(nanoseconds() - filterStart) / Double(passes * messagesPerPass)
    print(
        "{\"decode_ns_per_message\": \(decodeNs), \"decode_filter_ns_per_message\": \(filterNs), \"checksum\": \(checksum)}"
    )
}

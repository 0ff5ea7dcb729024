import Foundation
import Testing

/// One datagram the kernel sent, captured byte for byte by `scripts/capture-netlink-fixtures.py`.
///
/// `step-N.bin` is the N-th datagram received after the capture step `step`:
/// `veth-create` (`ip link add Ethernet0 mtu 9100 type veth peer name peer0`), `admin-up`, `peer-up`, `admin-down`,
/// `mtu-change` (to 1500), `portchannel-create` (a `PortChannel0001` veth), `bridge-enslave` (creates `Bridge`),
/// `bridge-master` (`Ethernet0` master `Bridge`), `bridge-release`, `veth-delete`, and `dump` (the multipart
/// `RTM_GETLINK` reply to a request with sequence 42, ending in `NLMSG_DONE`).
///
/// Two more sets live in subdirectories, so that the set above (which the decoder tests and the benchmarks take
/// whole) stays as it is: `groups/` (a port's link, address, route and neighbour traffic, and an `RTM_GETADDR`
/// dump) and `portchannel/` (the life of a `PortChannel9` veth). The script's docstring lists their steps.
struct Fixture: Sendable, CustomStringConvertible {
    /// The file name without `.bin`, for example `veth-create-1`.
    var name: String
    /// The capture step, for example `veth-create`.
    var step: String
    /// The datagram's position within its step.
    var index: Int
    var bytes: [UInt8]

    var description: String { self.name }
}

enum Fixtures {
    /// The `Fixtures` directory copied into the test bundle.
    static func directory() throws -> URL {
        try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
    }

    /// Every fixture of the main set (or of the set in `subdirectory`), ordered by step name, then by index within
    /// the step.
    static func all(in subdirectory: String? = nil) throws -> [Fixture] {
        var directory = try self.directory()
        if let subdirectory { directory.appendPathComponent(subdirectory, isDirectory: true) }
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        var fixtures: [Fixture] = []
        for file in files where file.pathExtension == "bin" {
            let name = file.deletingPathExtension().lastPathComponent
            let dash = try #require(name.lastIndex(of: "-"), "fixture \(name) is not named step-N")
            let index = try #require(Int(name[name.index(after: dash)...]), "fixture \(name) is not named step-N")
            let bytes = [UInt8](try Data(contentsOf: file))
            fixtures.append(Fixture(name: name, step: String(name[..<dash]), index: index, bytes: bytes))
        }
        fixtures.sort { ($0.step, $0.index) < ($1.step, $1.index) }
        try #require(!fixtures.isEmpty, "no fixtures in the bundle")
        return fixtures
    }

    /// The datagrams of one capture step, in the order the kernel sent them.
    static func step(_ step: String, in subdirectory: String? = nil) throws -> [Fixture] {
        let fixtures = try self.all(in: subdirectory).filter { $0.step == step }
        try #require(!fixtures.isEmpty, "no fixture for step \(step)")
        return fixtures
    }

    /// The bytes of one fixture, by name (`veth-create-1`).
    static func bytes(_ name: String) throws -> [UInt8] {
        try #require(try self.all().first { $0.name == name }, "no fixture \(name)").bytes
    }

    /// The byte ranges of the netlink messages in `datagram`, read from `nlmsg_len` alone (so independently of the
    /// decoder under test). Only for well-formed datagrams such as the fixtures.
    static func messageRanges(_ datagram: [UInt8]) throws -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var offset = 0
        while offset < datagram.count {
            try #require(datagram.count - offset >= 16, "fixture has a trailing partial header")
            let length = datagram[offset..<(offset + 4)].reversed().reduce(0) { $0 << 8 | Int($1) }
            try #require(length >= 16 && offset + length <= datagram.count, "fixture has a bad nlmsg_len")
            ranges.append(offset..<(offset + length))
            offset += (length + 3) & ~3
        }
        return ranges
    }
}

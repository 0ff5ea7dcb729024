import PortSyncCore
import Testing

/// The batched STATE_DB write: its RESP encoding, byte for byte the same as the generic encoder's, and the SHA-1
/// that names its script.
@Suite("StateWriteBatch and SHA1")
struct StateWriteBatchTests {
    let schema = SonicSchema(databases: SonicDatabases(unixSocketPath: nil))

    @Test("A batch encodes as EVALSHA sha 0 appl-id state-id appl-prefix state-prefix, then four arguments per port")
    func encoding() {
        var batch = StateWriteBatch()
        #expect(batch.isEmpty)
        let ports: [(String, PortOperState)] = [
            ("Ethernet0", PortOperState(adminUp: true, operUp: false, mtu: 9100)),
            ("PortChannel0001", PortOperState(adminUp: false, operUp: false, mtu: 68)),
            ("Ethernet-IB0.10", PortOperState(adminUp: true, operUp: true, mtu: 0)),
            ("Ethernet4", PortOperState(adminUp: true, operUp: true, mtu: 4_294_967_295)),
        ]
        var arguments = [
            "EVALSHA", SonicScripts.conditionalStateSetBatchSHA, "0", String(self.schema.databases.appl.id),
            String(self.schema.databases.state.id), "PORT_TABLE:", "PORT_TABLE|",
        ]
        for (port, state) in ports {
            batch.append(port: port, state: state)
            let fields = Dictionary(uniqueKeysWithValues: state.stateFields)
            arguments += [port, fields["netdev_oper_status"] ?? "", fields["admin_status"] ?? "", fields["mtu"] ?? ""]
        }
        #expect(batch.count == 4)
        #expect(batch.encoded(schema: self.schema) == RedisCommand(arguments).encoded)
        batch.removeAll()
        #expect(batch.isEmpty && batch.encoded(schema: self.schema) == RedisCommand(Array(arguments.prefix(7))).encoded)
    }

    @Test("RESP lengths and counts of every size are written in decimal as the generic encoder writes them")
    func decimals() {
        for length in [0, 1, 9, 10, 11, 99, 100, 999, 1000, 65_535, 1_000_000] {
            let argument = String(repeating: "x", count: length)
            var encoded: [UInt8] = []
            RedisCommand([argument]).encode(into: &encoded)
            let expected = "*1\r\n$\(length)\r\n" + argument + "\r\n"
            #expect(encoded == Array(expected.utf8), "length \(length)")
        }
    }

    @Test("SHA1 matches the FIPS 180 examples and names the batched script")
    func sha1() {
        #expect(SHA1.hex("".utf8) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(SHA1.hex("abc".utf8) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(
            SHA1.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(SHA1.hex([UInt8](repeating: 0x61, count: 1_000)) == "291e9a6c66994949b57ba5e650361e98fc36b1ba")
        #expect(SonicScripts.conditionalStateSetBatchSHA == SHA1.hex(SonicScripts.conditionalStateSetBatch.utf8))
    }
}

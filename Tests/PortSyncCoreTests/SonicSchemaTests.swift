import Foundation
import PortSyncCore
import Testing

/// The SONiC key names and the exact argument vectors of every write (`docs/sonic-contract.md`: the key layout,
/// statement 18).
@Suite("SonicSchema")
struct SonicSchemaTests {
    let schema = SonicSchema(databases: SonicDatabases(unixSocketPath: "/var/run/redis/redis.sock"))

    static func strings(_ command: RedisCommand) -> [String] {
        command.arguments.map { String(decoding: $0, as: UTF8.self) }
    }

    @Test("Keys of the default layout")
    func defaultKeys() {
        #expect(self.schema.applPortKey("Ethernet0") == "PORT_TABLE:Ethernet0")
        #expect(self.schema.applProducerKey("Ethernet0") == "_PORT_TABLE:Ethernet0")
        #expect(self.schema.applKeySet == "PORT_TABLE_KEY_SET")
        #expect(self.schema.applChannel == "PORT_TABLE_CHANNEL@0")
        #expect(self.schema.statePortKey("Ethernet0") == "PORT_TABLE|Ethernet0")
        #expect(self.schema.configPortPattern == "PORT|*")
        #expect(self.schema.configPortKey("Ethernet0") == "PORT|Ethernet0")
        #expect(self.schema.loggerKey == "LOGGER|portsyncd")
        #expect(self.schema.deviceMetadataKey == "DEVICE_METADATA|localhost")
        #expect(self.schema.warmRestartEnableKey("system") == "WARM_RESTART_ENABLE_TABLE|system")
        #expect(self.schema.warmRestartKey == "WARM_RESTART_TABLE|portsyncd")
        #expect(Self.strings(self.schema.select(self.schema.databases.state)) == ["SELECT", "6"])
    }

    @Test("portName(fromConfigKey:) takes the name out of PORT|<name> and nothing else")
    func portNameFromConfigKey() {
        #expect(self.schema.portName(fromConfigKey: "PORT|Ethernet0") == "Ethernet0")
        #expect(self.schema.portName(fromConfigKey: "PORT|Ethernet-IB0") == "Ethernet-IB0")
        #expect(self.schema.portName(fromConfigKey: "PORT|") == nil)
        #expect(self.schema.portName(fromConfigKey: "PORT:Ethernet0") == nil)
        #expect(self.schema.portName(fromConfigKey: "PORT_QOS_MAP|Ethernet0") == nil)
        #expect(self.schema.portName(fromConfigKey: "Ethernet0") == nil)
    }

    @Test("Keys follow the ids and separators of the layout")
    func otherLayout() {
        let schema = SonicSchema(
            databases: SonicDatabases(
                unixSocketPath: nil, appl: .init(id: 10, separator: "|"), config: .init(id: 14, separator: ":"),
                state: .init(id: 16, separator: ":")))
        #expect(schema.applProducerKey("Ethernet0") == "_PORT_TABLE|Ethernet0")
        #expect(schema.applChannel == "PORT_TABLE_CHANNEL@10")
        #expect(schema.statePortKey("Ethernet0") == "PORT_TABLE:Ethernet0")
        #expect(schema.configPortPattern == "PORT:*")
        #expect(schema.portName(fromConfigKey: "PORT:Ethernet0") == "Ethernet0")
        #expect(schema.portName(fromConfigKey: "PORT|Ethernet0") == nil)
    }

    @Test("producerSet: EVALSHA sha 2+n channel keyset tmp×n G key f1 v1 …")
    func producerSet() {
        let fields: [(field: [UInt8], value: [UInt8])] = [
            (Array("lanes".utf8), Array("65,66,67,68".utf8)), (Array("alias".utf8), Array("etp1".utf8)),
            (Array("speed".utf8), Array("100000".utf8)),
        ]
        let command = self.schema.producerSet(key: "Ethernet0", fields: fields, scriptSHA: "abc123")
        #expect(
            Self.strings(command) == [
                "EVALSHA", "abc123", "5", "PORT_TABLE_CHANNEL@0", "PORT_TABLE_KEY_SET", "_PORT_TABLE:Ethernet0",
                "_PORT_TABLE:Ethernet0", "_PORT_TABLE:Ethernet0", "G", "Ethernet0", "lanes", "65,66,67,68", "alias",
                "etp1", "speed", "100000",
            ])
        let initDone = self.schema.producerSet(
            key: SonicSchema.portInitDone, fields: [(Array("lanes".utf8), Array("0".utf8))], scriptSHA: "f00d")
        #expect(
            Self.strings(initDone) == [
                "EVALSHA", "f00d", "3", "PORT_TABLE_CHANNEL@0", "PORT_TABLE_KEY_SET", "_PORT_TABLE:PortInitDone", "G",
                "PortInitDone", "lanes", "0",
            ])
        // Field values are passed byte for byte.
        let raw = self.schema.producerSet(key: "Ethernet0", fields: [([0x66], [0xFF, 0x00])], scriptSHA: "s")
        #expect(raw.arguments.last == [0xFF, 0x00])
    }

    @Test("conditionalStateSet: EVALSHA sha 2 appl-key state-key appl-id state-id fields…")
    func conditionalStateSet() {
        let command = self.schema.conditionalStateSet(
            port: "Ethernet8", state: PortOperState(adminUp: true, operUp: false, mtu: 9100), scriptSHA: "beef")
        #expect(
            Self.strings(command) == [
                "EVALSHA", "beef", "2", "PORT_TABLE:Ethernet8", "PORT_TABLE|Ethernet8", "0", "6", "state", "ok",
                "netdev_oper_status", "down", "admin_status", "up", "mtu", "9100",
            ])
    }

    @Test("s18: stateSet is one HSET with state, netdev_oper_status, admin_status, mtu in that order")
    func s18StateSet() {
        let command = self.schema.stateSet(
            port: "Ethernet0", state: PortOperState(adminUp: false, operUp: true, mtu: 1500))
        #expect(
            Self.strings(command) == [
                "HSET", "PORT_TABLE|Ethernet0", "state", "ok", "netdev_oper_status", "up", "admin_status", "down",
                "mtu",
                "1500",
            ])
        #expect(command.name == "HSET")
        #expect(Self.strings(self.schema.stateDelete(port: "Ethernet0")) == ["DEL", "PORT_TABLE|Ethernet0"])
    }

    @Test("PortOperState from a NEWLINK: IFF_UP, IFF_RUNNING, and mtu 0 when IFLA_MTU is absent")
    func portOperStateFromMessage() throws {
        let name = try #require(InterfaceName("Ethernet0"))
        let noMTU = LinkMessage(kind: .newLink, ifindex: 3, flags: [.up, .lowerUp], name: name)
        #expect(PortOperState(noMTU) == PortOperState(adminUp: true, operUp: false, mtu: 0))
        #expect(PortOperState(noMTU).stateFields.last?.1 == "0")
        let running = LinkMessage(kind: .newLink, ifindex: 3, flags: [.running], name: name, mtu: 9216)
        #expect(PortOperState(running) == PortOperState(adminUp: false, operUp: true, mtu: 9216))
    }

    @Test("RESP encoding is byte exact, with CR LF, non-UTF-8 and empty arguments")
    func respEncoding() {
        let command = RedisCommand([Array("HSET".utf8), Array("a\r\nb".utf8), [0xFF, 0x00, 0xC3], []])
        let expected: [UInt8] =
            Array("*4\r\n$4\r\nHSET\r\n$4\r\na\r\nb\r\n$3\r\n".utf8) + [0xFF, 0x00, 0xC3] + Array("\r\n$0\r\n\r\n".utf8)
        #expect(command.encoded == expected)
        #expect(RedisCommand([[UInt8]]()).encoded == Array("*0\r\n".utf8))
        let long = RedisCommand([Array("SET".utf8), [UInt8](repeating: 0x61, count: 1234)])
        #expect(Array(long.encoded.prefix(20)) == Array("*2\r\n$3\r\nSET\r\n$1234\r\n".utf8))
        #expect(long.encoded.count == 20 + 1234 + 2)
        var buffer: [UInt8] = Array("prefix".utf8)
        RedisCommand("PING").encode(into: &buffer)
        #expect(buffer == Array("prefix*1\r\n$4\r\nPING\r\n".utf8))
    }
}

/// SONiC's `database_config.json` (statement 1).
@Suite("SonicDatabaseConfig")
struct SonicDatabaseConfigTests {
    typealias ParseError = SonicDatabaseConfig.ParseError

    /// The shape of a single-ASIC switch's file (rendered `database_config.json.j2`).
    static let sonicFile = """
        {
            "INSTANCES": {
                "redis": {
                    "hostname": "127.0.0.1",
                    "port": 6379,
                    "unix_socket_path": "/var/run/redis/redis.sock",
                    "persistence_for_warm_boot": "yes"
                },
                "redis_chassis": {
                    "hostname": "redis_chassis.server",
                    "port": 6380,
                    "unix_socket_path": "/var/run/redis-chassis/redis_chassis.sock"
                }
            },
            "DATABASES": {
                "APPL_DB": { "id": 0, "separator": ":", "instance": "redis" },
                "ASIC_DB": { "id": 1, "separator": ":", "instance": "redis" },
                "COUNTERS_DB": { "id": 2, "separator": ":", "instance": "redis" },
                "LOGLEVEL_DB": { "id": 3, "separator": ":", "instance": "redis" },
                "CONFIG_DB": { "id": 4, "separator": "|", "instance": "redis" },
                "PFC_WD_DB": { "id": 5, "separator": ":", "instance": "redis" },
                "FLEX_COUNTER_DB": { "id": 5, "separator": ":", "instance": "redis" },
                "STATE_DB": { "id": 6, "separator": "|", "instance": "redis" },
                "SNMP_OVERLAY_DB": { "id": 7, "separator": "|", "instance": "redis" },
                "CHASSIS_APP_DB": { "id": 12, "separator": "|", "instance": "redis_chassis" },
                "APPL_STATE_DB": { "id": 14, "separator": ":", "instance": "redis" }
            },
            "VERSION": "1.0"
        }
        """

    static func parse(_ text: String) throws(ParseError) -> SonicDatabaseConfig {
        try SonicDatabaseConfig.parse(Data(text.utf8))
    }

    @Test("s1: a SONiC file gives the unix socket, ids 0/4/6 and separators : | |")
    func sonicFile() throws {
        let config = try Self.parse(Self.sonicFile)
        #expect(config.databases.count == 11)
        #expect(config.instances["redis_chassis"]?.port == 6380)
        #expect(
            try config.layout()
                == SonicDatabases(
                    unixSocketPath: "/var/run/redis/redis.sock", hostname: "127.0.0.1", port: 6379,
                    appl: .init(id: 0, separator: ":"), config: .init(id: 4, separator: "|"),
                    state: .init(id: 6, separator: "|")))
    }

    @Test("Ids, socket and port are taken from the file, not assumed")
    func otherValues() throws {
        let text = """
            {"INSTANCES": {"redis": {"hostname": "10.0.0.1", "port": 6400,
                                     "unix_socket_path": "/var/run/redis1/redis.sock"}},
             "DATABASES": {"APPL_DB": {"id": 20, "separator": ":", "instance": "redis"},
                           "CONFIG_DB": {"id": 24, "instance": "redis"},
                           "STATE_DB": {"id": 26, "separator": "|", "instance": "redis"}}}
            """
        #expect(
            try Self.parse(text).layout()
                == SonicDatabases(
                    unixSocketPath: "/var/run/redis1/redis.sock", hostname: "10.0.0.1", port: 6400,
                    appl: .init(id: 20, separator: ":"), config: .init(id: 24, separator: "|"),
                    state: .init(id: 26, separator: "|")))
    }

    @Test("A database missing from the file falls back to SONiC's compiled-in id and separator")
    func missingStateDB() throws {
        let text = """
            {"INSTANCES": {"redis": {"unix_socket_path": "/var/run/redis/redis.sock"}},
             "DATABASES": {"APPL_DB": {"id": 0, "separator": ":", "instance": "redis"},
                           "CONFIG_DB": {"id": 4, "separator": "|", "instance": "redis"}}}
            """
        let config = try Self.parse(text)
        let state = try #require(config.databases["STATE_DB"])
        #expect(state.id == 6 && state.separator == "|" && state.instance == "redis")
        let layout = try config.layout()
        #expect(layout.state == .init(id: 6, separator: "|"))
        #expect(layout.hostname == "127.0.0.1" && layout.port == 6379)
    }

    @Test("Text that is not JSON throws notJSON")
    func garbage() {
        for text in ["", "not json", "{\"INSTANCES\": ", "\u{FF}"] {
            let error = #expect(throws: ParseError.self) { try Self.parse(text) }
            guard case .notJSON = error else {
                Issue.record("\(text.debugDescription) gave \(String(describing: error))")
                continue
            }
        }
    }

    @Test("Structural errors name what is wrong")
    func structuralErrors() {
        #expect(throws: ParseError.invalid("top level (not an object)")) { try Self.parse("[1, 2]") }
        #expect(throws: ParseError.missing("INSTANCES")) { try Self.parse(#"{"DATABASES": {}}"#) }
        #expect(throws: ParseError.missing("DATABASES")) { try Self.parse(#"{"INSTANCES": {}}"#) }
        // Without a "redis" instance there is nothing to fall back on.
        #expect(throws: ParseError.missing("DATABASES.APPL_DB")) {
            try Self.parse(#"{"INSTANCES": {"other": {}}, "DATABASES": {}}"#)
        }
        #expect(throws: ParseError.invalid("DATABASES.APPL_DB.id")) {
            try Self.parse(#"{"INSTANCES": {"redis": {}}, "DATABASES": {"APPL_DB": {"id": -1, "instance": "redis"}}}"#)
        }
    }

    @Test("A database on an instance the file does not define throws")
    func unknownInstance() {
        let text = """
            {"INSTANCES": {"redis": {"unix_socket_path": "/var/run/redis/redis.sock"}},
             "DATABASES": {"APPL_DB": {"id": 0, "separator": ":", "instance": "nowhere"}}}
            """
        #expect(throws: ParseError.invalid(#"DATABASES.APPL_DB.instance "nowhere""#)) { try Self.parse(text) }
    }

    @Test("layout() refuses APPL_DB and STATE_DB on different instances")
    func splitInstances() throws {
        let text = """
            {"INSTANCES": {"redis": {"unix_socket_path": "/var/run/redis/redis.sock"},
                           "redis2": {"unix_socket_path": "/var/run/redis2/redis.sock"}},
             "DATABASES": {"APPL_DB": {"id": 0, "separator": ":", "instance": "redis"},
                           "CONFIG_DB": {"id": 4, "separator": "|", "instance": "redis"},
                           "STATE_DB": {"id": 6, "separator": "|", "instance": "redis2"}}}
            """
        let config = try Self.parse(text)
        #expect(throws: ParseError.invalid("STATE_DB: portsyncd needs APPL_DB, CONFIG_DB and STATE_DB on one instance"))
        {
            try config.layout()
        }
    }
}

/// The names and commands of SONiC's port contract, built from the database layout.
///
/// Every Redis write portsyncd makes is built here, as a `RedisCommand`, so the contract is in one file and can
/// be tested without a server. See `docs/sonic-contract.md` for the statement each one serves.
public struct SonicSchema: Sendable {
    public let databases: SonicDatabases

    public init(databases: SonicDatabases) { self.databases = databases }

    public static let portTable = "PORT_TABLE"
    public static let portConfigDone = "PortConfigDone"
    public static let portInitDone = "PortInitDone"

    // MARK: Keys

    /// CONFIG_DB `PORT|*`
    public var configPortPattern: String { "PORT" + self.databases.config.separator + "*" }
    /// The port name of a CONFIG_DB `PORT|<name>` key.
    public func portName(fromConfigKey key: String) -> String? {
        let prefix = "PORT" + self.databases.config.separator
        guard key.hasPrefix(prefix), key.count > prefix.count else { return nil }
        return String(key.dropFirst(prefix.count))
    }
    public func configPortKey(_ name: String) -> String { "PORT" + self.databases.config.separator + name }
    /// APPL_DB final hash `PORT_TABLE:<name>`, written only by the consumer (orchagent).
    public func applPortKey(_ name: String) -> String { Self.portTable + self.databases.appl.separator + name }
    /// APPL_DB producer temporary hash `_PORT_TABLE:<name>`.
    public func applProducerKey(_ name: String) -> String { "_" + self.applPortKey(name) }
    /// `PORT_TABLE_KEY_SET`
    public var applKeySet: String { Self.portTable + "_KEY_SET" }
    /// `PORT_TABLE_CHANNEL@<appl id>`
    public var applChannel: String { Self.portTable + "_CHANNEL@" + String(self.databases.appl.id) }
    /// STATE_DB `PORT_TABLE|<name>`
    public func statePortKey(_ name: String) -> String { Self.portTable + self.databases.state.separator + name }

    // MARK: Start-up reads and writes

    public func select(_ database: SonicDatabases.Database) -> RedisCommand {
        RedisCommand("SELECT", String(database.id))
    }
    public var loggerKey: String { "LOGGER" + self.databases.config.separator + "portsyncd" }
    public var deviceMetadataKey: String { "DEVICE_METADATA" + self.databases.config.separator + "localhost" }
    public func warmRestartEnableKey(_ scope: String) -> String {
        "WARM_RESTART_ENABLE_TABLE" + self.databases.state.separator + scope
    }
    public var warmRestartKey: String { "WARM_RESTART_TABLE" + self.databases.state.separator + "portsyncd" }

    /// The APPL_DB producer `set` (SONiC's `ProducerStateTable::set`): one atomic script call that puts
    /// `fields` in `_PORT_TABLE:<key>`, adds `key` to `PORT_TABLE_KEY_SET` and publishes on
    /// `PORT_TABLE_CHANNEL@0` if the key was new. Never called with no fields (statement 8).
    public func producerSet(key: String, fields: [(field: [UInt8], value: [UInt8])], scriptSHA: String) -> RedisCommand
    {
        precondition(!fields.isEmpty, "a producer set with no fields is a delete in SONiC; portsyncd never sends one")
        var arguments: [[UInt8]] = [Array("EVALSHA".utf8), Array(scriptSHA.utf8), Array(String(2 + fields.count).utf8)]
        arguments.reserveCapacity(6 + 3 * fields.count)
        arguments.append(Array(self.applChannel.utf8))
        arguments.append(Array(self.applKeySet.utf8))
        let temporary = Array(self.applProducerKey(key).utf8)
        for _ in fields { arguments.append(temporary) }
        arguments.append(Array("G".utf8))
        arguments.append(Array(key.utf8))
        for pair in fields {
            arguments.append(pair.field)
            arguments.append(pair.value)
        }
        return RedisCommand(arguments)
    }

    /// The STATE_DB port update of statement 18, conditional on the APPL_DB final hash existing, as one script call
    /// on the STATE_DB connection. It replies 1 when it wrote and 0 when APPL_DB has no such port.
    public func conditionalStateSet(port: String, state: PortOperState, scriptSHA: String) -> RedisCommand {
        var arguments: [[UInt8]] = [
            Array("EVALSHA".utf8), Array(scriptSHA.utf8), Array("2".utf8),
            Array(self.applPortKey(port).utf8), Array(self.statePortKey(port).utf8),
            Array(String(self.databases.appl.id).utf8), Array(String(self.databases.state.id).utf8),
        ]
        for (field, value) in state.stateFields {
            arguments.append(Array(field.utf8))
            arguments.append(Array(value.utf8))
        }
        return RedisCommand(arguments)
    }

    /// The unconditional STATE_DB `HSET` of statement 18 (one multi-field command).
    public func stateSet(port: String, state: PortOperState) -> RedisCommand {
        RedisCommand(["HSET", self.statePortKey(port)] + state.stateFields.flatMap { [$0.0, $0.1] })
    }

    /// `DEL PORT_TABLE|<name>` in STATE_DB (statement 19).
    public func stateDelete(port: String) -> RedisCommand { RedisCommand("DEL", self.statePortKey(port)) }
}

/// The link state portsyncd writes to STATE_DB `PORT_TABLE|<port>`.
public struct PortOperState: Sendable, Hashable, Codable {
    public var adminUp: Bool
    public var operUp: Bool
    public var mtu: UInt32

    public init(adminUp: Bool, operUp: Bool, mtu: UInt32) {
        self.adminUp = adminUp
        self.operUp = operUp
        self.mtu = mtu
    }

    /// From a NEWLINK: admin from `IFF_UP`, oper from `IFF_RUNNING` (statement 15), MTU 0 when absent as in SONiC.
    public init(_ message: LinkMessage) {
        self.init(adminUp: message.isAdminUp, operUp: message.isOperUp, mtu: message.mtu ?? 0)
    }

    /// The fields in SONiC's order: `state`, `netdev_oper_status`, `admin_status`, `mtu`.
    public var stateFields: [(String, String)] {
        [
            ("state", "ok"),
            ("netdev_oper_status", self.operUp ? "up" : "down"),
            ("admin_status", self.adminUp ? "up" : "down"),
            ("mtu", String(self.mtu)),
        ]
    }
}

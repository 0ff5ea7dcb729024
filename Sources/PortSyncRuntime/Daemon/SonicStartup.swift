import Logging
import PortSyncCore

/// SONiC's start-up Redis work (statements 1–6 and 22–23 of `docs/sonic-contract.md`), over a blocking connection:
/// every step needs the previous one's answer, and nothing else runs yet. Reads are pipelined, so 8192 ports cost a
/// few round trips.
struct SonicStartup {
    let client: RedisBlockingClient
    let schema: SonicSchema
    let logger: Logger

    private var config: SonicDatabases.Database { self.schema.databases.config }
    private var state: SonicDatabases.Database { self.schema.databases.state }
    private var appl: SonicDatabases.Database { self.schema.databases.appl }

    /// Statement 26: `LOGGER|portsyncd` gets `LOGLEVEL` (SONiC's name of `level`, `[log] level`: NOTICE by default)
    /// and `LOGOUTPUT=SYSLOG` where they are missing. Returns the row's `LOGLEVEL` and `LOGOUTPUT` as they are now
    /// (statement 34: SONiC's table sets the level).
    func linkLogger(level: String) throws(RedisError) -> (level: String?, output: String?) {
        let replies = try self.client.pipeline([
            self.schema.select(self.config),
            RedisCommand("HGET", self.schema.loggerKey, "LOGLEVEL"),
            RedisCommand("HGET", self.schema.loggerKey, "LOGOUTPUT"),
        ])
        try Self.check(replies)
        var fields: [String] = []
        let sonicLevel = replies[1].string ?? SonicLogLevel.sonicName(forLevel: level)
        let output = replies[2].string ?? SonicLogLevel.Output.syslog.rawValue
        if replies[1] == .null { fields += ["LOGLEVEL", sonicLevel] }
        if replies[2] == .null { fields += ["LOGOUTPUT", output] }
        if !fields.isEmpty { try self.client.run(RedisCommand(["HSET", self.schema.loggerKey] + fields)) }
        return (sonicLevel, output)
    }

    /// Statement 3: `DEVICE_METADATA|localhost` `switch_type`, `switch` when absent.
    func switchType() throws(RedisError) -> String {
        let replies = try self.client.pipeline([
            self.schema.select(self.config),
            RedisCommand("HGET", self.schema.deviceMetadataKey, "switch_type"),
        ])
        try Self.check(replies)
        return replies[1].string ?? "switch"
    }

    /// Statements 2 and 31: reads the warm-restart tables and where APPL_DB's `PortConfigDone` and `PortInitDone`
    /// stand, decides the kind of start, and writes `restore_count` (+1 warm, 0 otherwise, as SONiC's
    /// `WarmStart::checkWarmStart`).
    func decideStartKind() throws(RedisError) -> (
        decision: StartKind.Decision, configDone: ProducerKeyPresence, initDone: ProducerKeyPresence
    ) {
        let replies = try self.client.pipeline([
            self.schema.select(self.state),
            RedisCommand("HGET", self.schema.warmRestartEnableKey("system"), "enable"),
            RedisCommand("HGET", self.schema.warmRestartEnableKey("swss"), "enable"),
            RedisCommand("HGET", self.schema.warmRestartKey, "restore_count"),
        ])
        try Self.check(replies)
        let enabled = replies[1].string == "true" || replies[2].string == "true"
        let restoreCount = replies[3].string
        let (configDone, initDone) = try self.applPresence()
        let decision = StartKind.decide(
            warmEnabled: enabled, restoreCount: restoreCount, portConfigDone: configDone)
        if enabled, decision.kind.restoreCount == 0 {
            self.logger.warning(
                "Warm restart is enabled but \(self.schema.warmRestartKey) has no valid restore_count; not warm",
                metadata: ["EVENT": "start_mode"])
        }
        try Self.check(
            try self.client.pipeline([
                self.schema.select(self.state),
                RedisCommand(
                    "HSET", self.schema.warmRestartKey, "restore_count", String(decision.kind.restoreCount)),
            ]))
        return (decision, configDone, initDone)
    }

    /// Where APPL_DB's `PortConfigDone` and `PortInitDone` stand (final hash, pending producer entry, or neither).
    func applPresence() throws(RedisError) -> (configDone: ProducerKeyPresence, initDone: ProducerKeyPresence) {
        let keys = [SonicSchema.portConfigDone, SonicSchema.portInitDone]
        let replies = try self.client.pipeline(
            [self.schema.select(self.appl)]
                + keys.flatMap { key in
                    [
                        RedisCommand("EXISTS", self.schema.applPortKey(key)),
                        RedisCommand("EXISTS", self.schema.applProducerKey(key)),
                    ]
                })
        try Self.check(replies)
        func presence(_ at: Int) -> ProducerKeyPresence {
            ProducerKeyPresence(finalExists: replies[at].integer == 1, pendingExists: replies[at + 1].integer == 1)
        }
        return (presence(1), presence(3))
    }

    /// Loads the two scripts; their SHA1s as Redis computed them.
    func loadScripts() throws(RedisError) -> SonicScriptHashes {
        let replies = try self.client.pipeline([
            RedisCommand("SCRIPT", "LOAD", SonicScripts.producerSet),
            RedisCommand("SCRIPT", "LOAD", SonicScripts.conditionalStateSet),
        ])
        guard let producer = replies[0].string, let state = replies[1].string else {
            throw RedisError("SCRIPT LOAD failed: \(replies)")
        }
        return SonicScriptHashes(producerSet: producer, stateSet: state)
    }

    /// Statement 4: every CONFIG_DB `PORT|<name>` with all its fields (a field name's `@…` suffix cut off, as
    /// SONiC's `Table::get` does for list fields), sorted by name.
    func readConfiguredPorts() throws(RedisError) -> [(name: String, fields: [(field: [UInt8], value: [UInt8])])] {
        let keysReply = try self.client.pipeline([
            self.schema.select(self.config), RedisCommand("KEYS", self.schema.configPortPattern),
        ])
        try Self.check(keysReply)
        guard let keyItems = keysReply[1].array else { throw RedisError("KEYS returned \(keysReply[1])") }
        let keys = keyItems.compactMap(\.string).sorted()
        let replies = try self.client.pipeline(keys.map { RedisCommand("HGETALL", $0) })
        var ports: [(name: String, fields: [(field: [UInt8], value: [UInt8])])] = []
        for (key, reply) in zip(keys, replies) {
            guard let name = self.schema.portName(fromConfigKey: key) else { continue }
            guard let pairs = reply.fieldValuePairs else { throw RedisError("HGETALL \(key) returned \(reply)") }
            let fields = pairs.map { pair in
                (field: Array(pair.field.prefix(while: { $0 != UInt8(ascii: "@") })), value: pair.value)
            }
            // A key that vanished between KEYS and HGETALL has no fields: SONiC would skip it too.
            if !fields.isEmpty { ports.append((name, fields)) }
        }
        return ports
    }

    /// Deletes the STATE_DB port rows of every port but `keeping`, the interfaces this process will sync; never
    /// the row of a port in `keeping` (statement 32). At a cold start `keeping` leaves out the old interfaces (swss.sh
    /// deletes STATE_DB `PORT_TABLE*` before one, so this changes nothing on SONiC); at a warm start or a rejoin it
    /// is every interface the kernel has, so only rows of ports gone while no daemon ran are deleted. Returns the
    /// ports deleted.
    func deleteStaleStateRows(keeping kernel: Set<String>) throws(RedisError) -> [String] {
        let prefix = SonicSchema.portTable + self.state.separator
        let keysReply = try self.client.pipeline([self.schema.select(self.state), RedisCommand("KEYS", prefix + "*")])
        try Self.check(keysReply)
        guard let keyItems = keysReply[1].array else { throw RedisError("KEYS returned \(keysReply[1])") }
        let stale = keyItems.compactMap(\.string).compactMap { key -> String? in
            guard key.hasPrefix(prefix) else { return nil }
            let name = String(key.dropFirst(prefix.count))
            guard LinkFilter.isPortName(name), !kernel.contains(name) else {
                return nil
            }
            return name
        }.sorted()
        guard !stale.isEmpty else { return [] }
        try Self.check(try self.client.pipeline(stale.map { self.schema.stateDelete(port: $0) }))
        return stale
    }

    /// Statements 5 and 6 (cold start only): one atomic producer write per port, then `PortConfigDone`.
    func copyToApplDB(
        _ ports: [(name: String, fields: [(field: [UInt8], value: [UInt8])])], scripts: SonicScriptHashes
    ) throws(RedisError) {
        var commands = [self.schema.select(self.appl)]
        commands.reserveCapacity(ports.count + 2)
        for port in ports {
            commands.append(
                self.schema.producerSet(key: port.name, fields: port.fields, scriptSHA: scripts.producerSet))
        }
        commands.append(
            self.schema.producerSet(
                key: SonicSchema.portConfigDone, fields: [(Array("count".utf8), Array(String(ports.count).utf8))],
                scriptSHA: scripts.producerSet))
        try Self.check(try self.client.pipeline(commands))
    }

    /// Statement 23 (cold start only): the configured ports whose APPL_DB final hash already has `admin_status`
    /// (orchagent consumed them before this process started) count as seen.
    func portsAlreadyConsumed(_ names: [String]) throws(RedisError) -> Set<String> {
        guard !names.isEmpty else { return [] }
        let replies = try self.client.pipeline(
            [self.schema.select(self.appl)]
                + names.map { RedisCommand("HEXISTS", self.schema.applPortKey($0), "admin_status") })
        try Self.check(replies)
        var seen: Set<String> = []
        for (name, reply) in zip(names, replies.dropFirst()) where reply.integer == 1 { seen.insert(name) }
        return seen
    }

    private static func check(_ replies: [RedisReply]) throws(RedisError) {
        for reply in replies {
            if case .error(let message) = reply { throw RedisError(message) }
        }
    }
}

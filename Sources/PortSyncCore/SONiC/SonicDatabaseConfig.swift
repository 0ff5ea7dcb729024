public import Foundation

/// SONiC's `database_config.json`: which Redis instance holds each database, its id and key separator.
///
/// portsyncd takes `APPL_DB`, `CONFIG_DB` and `STATE_DB` from it (statement 1), and falls back to the
/// compiled-in SONiC ids and separators for a database the file does not list.
public struct SonicDatabaseConfig: Sendable, Hashable {
    /// The default path of the file on a SONiC switch (`DEFAULT_SONIC_DB_CONFIG_FILE`).
    public static let defaultPath = "/var/run/redis/sonic-db/database_config.json"

    public struct Instance: Sendable, Hashable {
        public var hostname: String
        public var port: Int
        public var unixSocketPath: String?
    }

    public struct Database: Sendable, Hashable {
        public var id: Int
        public var separator: String
        public var instance: String
    }

    public var instances: [String: Instance]
    public var databases: [String: Database]

    public init(instances: [String: Instance], databases: [String: Database]) {
        self.instances = instances
        self.databases = databases
    }

    /// The compiled-in SONiC map (`common/table.cpp`, `common/schema.h`), on the default instance.
    public static let fallback = SonicDatabaseConfig(
        instances: ["redis": Instance(hostname: "127.0.0.1", port: 6379, unixSocketPath: "/var/run/redis/redis.sock")],
        databases: [
            "APPL_DB": Database(id: 0, separator: ":", instance: "redis"),
            "CONFIG_DB": Database(id: 4, separator: "|", instance: "redis"),
            "STATE_DB": Database(id: 6, separator: "|", instance: "redis"),
        ]
    )

    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        case notJSON(String)
        case missing(String)
        case invalid(String)

        public var description: String {
            switch self {
            case .notJSON(let reason): "not valid JSON: \(reason)"
            case .missing(let what): "missing \(what)"
            case .invalid(let what): "invalid \(what)"
            }
        }
    }

    /// Parses the JSON text of a `database_config.json`.
    public static func parse(_ data: Data) throws(ParseError) -> SonicDatabaseConfig {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw .notJSON(String(describing: error))
        }
        guard let object = root as? [String: Any] else { throw .invalid("top level (not an object)") }
        guard let instancesObject = object["INSTANCES"] as? [String: Any] else { throw .missing("INSTANCES") }
        guard let databasesObject = object["DATABASES"] as? [String: Any] else { throw .missing("DATABASES") }
        var instances: [String: Instance] = [:]
        for (name, value) in instancesObject {
            guard let entry = value as? [String: Any] else { throw .invalid("INSTANCES.\(name)") }
            let hostname = entry["hostname"] as? String ?? "127.0.0.1"
            let port = (entry["port"] as? NSNumber)?.intValue ?? 6379
            let socket = (entry["unix_socket_path"] as? String).flatMap { $0.isEmpty ? nil : $0 }
            instances[name] = Instance(hostname: hostname, port: port, unixSocketPath: socket)
        }
        var databases: [String: Database] = [:]
        for (name, value) in databasesObject {
            guard let entry = value as? [String: Any] else { throw .invalid("DATABASES.\(name)") }
            guard let id = (entry["id"] as? NSNumber)?.intValue, id >= 0 else { throw .invalid("DATABASES.\(name).id") }
            guard let instance = entry["instance"] as? String else { throw .missing("DATABASES.\(name).instance") }
            guard instances[instance] != nil else { throw .invalid("DATABASES.\(name).instance \"\(instance)\"") }
            let separator = entry["separator"] as? String ?? Self.fallback.databases[name]?.separator ?? ":"
            databases[name] = Database(id: id, separator: separator, instance: instance)
        }
        for name in ["APPL_DB", "CONFIG_DB", "STATE_DB"] where databases[name] == nil {
            guard instances["redis"] != nil, let fallback = Self.fallback.databases[name] else {
                throw .missing("DATABASES.\(name)")
            }
            databases[name] = fallback
        }
        return SonicDatabaseConfig(instances: instances, databases: databases)
    }

    /// The three databases portsyncd uses, resolved.
    public func layout() throws(ParseError) -> SonicDatabases {
        func database(_ name: String) throws(ParseError) -> SonicDatabases.Database {
            guard let entry = self.databases[name] else { throw .missing("DATABASES.\(name)") }
            return .init(id: entry.id, separator: entry.separator)
        }
        guard let appl = self.databases["APPL_DB"], let instance = self.instances[appl.instance] else {
            throw .missing("the instance of APPL_DB")
        }
        for name in ["CONFIG_DB", "STATE_DB"] where self.databases[name]?.instance != appl.instance {
            throw .invalid("\(name): portsyncd needs APPL_DB, CONFIG_DB and STATE_DB on one instance")
        }
        return SonicDatabases(
            unixSocketPath: instance.unixSocketPath, hostname: instance.hostname, port: instance.port,
            appl: try database("APPL_DB"), config: try database("CONFIG_DB"), state: try database("STATE_DB")
        )
    }
}

/// Where portsyncd's three databases are: one Redis instance, three ids and separators.
public struct SonicDatabases: Sendable, Hashable {
    public struct Database: Sendable, Hashable {
        public var id: Int
        public var separator: String
        public init(id: Int, separator: String) {
            self.id = id
            self.separator = separator
        }
    }

    public var unixSocketPath: String?
    public var hostname: String
    public var port: Int
    public var appl: Database
    public var config: Database
    public var state: Database

    public init(
        unixSocketPath: String?, hostname: String = "127.0.0.1", port: Int = 6379,
        appl: Database = .init(id: 0, separator: ":"), config: Database = .init(id: 4, separator: "|"),
        state: Database = .init(id: 6, separator: "|")
    ) {
        self.unixSocketPath = unixSocketPath
        self.hostname = hostname
        self.port = port
        self.appl = appl
        self.config = config
        self.state = state
    }
}

import Foundation
public import PortSyncCore

/// Reads the configuration file. A file that does not exist means the defaults (SONiC needs no file,
/// statement 1); one that exists but cannot be read or decoded is an error naming file:line:col.
public enum ConfigFile {
    public static let defaultPath = "/etc/sonic/portsyncd.conf"

    public static func load(_ path: String) throws(ConfigError) -> Config {
        guard FileManager.default.fileExists(atPath: path) else { return Config() }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigError(
                file: path, line: 1, column: 1, message: "cannot read the file: \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: 1, column: 1, message: "the file is not UTF-8 text")
        }
        return try ConfigDecoder.decode(text, file: path)
    }

    /// Reads and resolves SONiC's `database_config.json` at `path`, applying a configured socket override.
    static func databases(_ config: Config) throws(RedisError) -> SonicDatabases {
        let path = config.redis.databaseConfig
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw RedisError("cannot read \(path): \(error.localizedDescription)")
        }
        var databases: SonicDatabases
        do {
            databases = try SonicDatabaseConfig.parse(data).layout()
        } catch {
            throw RedisError("\(path): \(error)")
        }
        if !config.redis.unixSocket.isEmpty { databases.unixSocketPath = config.redis.unixSocket }
        return databases
    }
}

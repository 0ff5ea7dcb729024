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
        var config = try ConfigDecoder.decode(text, file: path)
        if !config.http.bearerTokenFile.isEmpty {
            guard config.http.bearerToken.isEmpty else {
                throw ConfigError(
                    file: path, line: 1, column: 1,
                    message: "http.bearer_token and http.bearer_token_file are both set; set one of them")
            }
            config.http.bearerToken = try Self.bearerToken(from: config.http.bearerTokenFile)
        }
        return config
    }

    /// The token in `path` (`http.bearer_token_file`): one line of 1 to 256 printable ASCII characters without
    /// spaces, a final newline allowed. The error never quotes the file's content.
    static func bearerToken(from path: String) throws(ConfigError) -> String {
        func fail(_ message: String) -> ConfigError {
            ConfigError(file: path, line: 1, column: 1, message: "http.bearer_token_file: \(message)")
        }
        let data: Data
        do {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            data = try handle.read(upToCount: 4096) ?? Data()
        } catch {
            throw fail("cannot read the file: \(error.localizedDescription)")
        }
        var bytes = Array(data)
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { bytes.removeLast() }
        guard (1...256).contains(bytes.count), bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw fail("the file must hold one token of 1 to 256 printable ASCII characters without spaces")
        }
        return String(decoding: bytes, as: UTF8.self)
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

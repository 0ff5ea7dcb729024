import Foundation
import Glibc
public import PortSyncCore

/// Reads the configuration file. An existing file is decoded, and its errors name file:line:col. A file that cannot
/// be read is an error naming the path and the reason: a path that names nothing, a dangling symbolic link, a loop
/// of links, a directory, something other than a regular file, no permission. Only the default path may name
/// nothing, which means the defaults (SONiC needs no file, statement 1).
public enum ConfigFile {
    public static let defaultPath = "/etc/sonic/portsyncd.conf"

    /// The configuration in the file at `path`, or nil if nothing is there and `missingMeansDefaults` (the caller
    /// then uses `Config()`).
    public static func load(_ path: String, missingMeansDefaults: Bool) throws(ConfigError) -> Config? {
        let bytes: [UInt8]
        do {
            guard let read = try Self.read(path, missingMeansDefaults: missingMeansDefaults) else { return nil }
            bytes = read
        } catch {
            throw ConfigError(file: path, message: "cannot read the file: \(error.reason)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError(file: path, line: 1, column: 1, message: "the file is not UTF-8 text")
        }
        return try ConfigDecoder.decode(text, file: path)
    }

    /// Why a file cannot be read: the reason, with `strerror`'s text where there is an errno.
    struct Unreadable: Error {
        var reason: String

        init(_ reason: String) { self.reason = reason }

        init(errno: Int32) { self.reason = String(cString: strerror(errno)) }
    }

    /// The bytes of the regular file at `path`; nil if the path itself names nothing and `missingMeansDefaults`.
    /// The file is opened non-blocking, so that a FIFO put there cannot hang the reader, and checked with fstat.
    private static func read(_ path: String, missingMeansDefaults: Bool) throws(Unreadable) -> [UInt8]? {
        let fd: Int32
        do {
            fd = Int32(try Syscall.blocking("open") { Int(open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) })
        } catch {
            // open follows symbolic links; lstat tells a path that names nothing from a link that leads nowhere.
            if error.errno == ENOENT, let target = Self.linkTarget(path) {
                throw Unreadable(
                    "a symbolic link to \(target) that leads to nothing (\(String(cString: strerror(error.errno))))")
            }
            if error.errno == ENOENT && missingMeansDefaults { return nil }
            throw Unreadable(errno: error.errno)
        }
        defer { close(fd) }
        var info = stat()
        do {
            try Syscall.blocking("fstat") { Int(fstat(fd, &info)) }
        } catch {
            throw Unreadable(errno: error.errno)
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw Unreadable(errno: EISDIR)
        default: throw Unreadable("not a regular file")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count: Int
            do {
                count = try Syscall.blocking("read") {
                    chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                }
            } catch {
                throw Unreadable(errno: error.errno)
            }
            if count == 0 { return bytes }
            bytes += chunk[..<count]
        }
    }

    /// Where the symbolic link at `path` points, if `path` is one.
    private static func linkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink(path, &buffer, buffer.count - 1)
        guard length >= 0 else { return nil }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
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

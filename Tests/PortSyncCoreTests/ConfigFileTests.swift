import Foundation
import PortSyncCore
import Testing

/// The shipped `etc/portsyncd.toml`, and configuration errors whose reported position or value is wrong.
@Suite("Config: shipped file and known defects")
struct ConfigFileTests {
    /// `etc/portsyncd.toml` of this checkout.
    static func shippedFile() throws -> (path: String, text: String) {
        let root = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // PortSyncCoreTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()
        let url = root.appendingPathComponent("etc").appendingPathComponent("portsyncd.toml")
        let data = try #require(FileManager.default.contents(atPath: url.path), "\(url.path) is missing")
        return (url.path, try #require(String(data: data, encoding: .utf8), "\(url.path) is not UTF-8"))
    }

    /// The uncommented `key = value` lines of a TOML text, with the section each one is in.
    static func settingLines(_ text: String) -> [(section: String, line: String)] {
        var section = ""
        var result: [(section: String, line: String)] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") {
                section = String(line.dropFirst().prefix { $0 != "]" }).trimmingCharacters(in: .whitespaces)
                continue
            }
            result.append((section, line))
        }
        return result
    }

    @Test("The shipped etc/portsyncd.toml decodes to exactly Config()")
    func shippedFileIsDefault() throws {
        let file = try Self.shippedFile()
        #expect(try ConfigDecoder.decode(file.text, file: file.path) == Config())
    }

    @Test("Every schema key is in the shipped file, uncommented, as key = <default> under its [section]")
    func shippedFileDocumentsEveryKey() throws {
        let lines = Self.settingLines(try Self.shippedFile().text)
        for setting in Config.schema {
            let expected = "\(setting.key) = \(setting.tomlValue(in: Config()))"
            let found = lines.contains { entry in
                // The value, optionally followed by a comment.
                let rest = entry.line.hasPrefix(expected) ? entry.line.dropFirst(expected.count) : nil
                let trailing = rest?.trimmingCharacters(in: .whitespaces)
                return entry.section == setting.section
                    && (trailing == "" || (trailing?.hasPrefix("#") == true && rest?.first == " "))
            }
            #expect(found, "[\(setting.section)] \(expected) is not in the shipped file")
        }
        // And nothing else is set there.
        #expect(lines.count == Config.schema.count, "\(lines.map(\.line))")
    }

    @Test("The range documented for each integer key in the shipped file is the one enforced")
    func shippedFileRanges() throws {
        let text = try Self.shippedFile().text
        for setting in Config.schema {
            guard case .integer(let range, _) = setting.kind else { continue }
            let block = Self.comment(of: setting.key, in: setting.section, text: text) ?? ""
            let match = block.firstMatch(of: #/\((\d+) … (\d+)\)/#)
            let documented = match.flatMap { match in Int(match.1).flatMap { low in Int(match.2).map { low...$0 } } }
            #expect(documented == range, "\(setting.section).\(setting.key)")
        }
    }

    /// The comment block above `key = …` in `[section]` of the shipped file.
    static func comment(of key: String, in section: String, text: String) -> String? {
        var comments: [Substring] = []
        var current = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.drop { $0 == " " }
            if line.hasPrefix("#") {
                comments.append(line)
                continue
            }
            if line.hasPrefix("[") { current = String(line.dropFirst().prefix { $0 != "]" }) }
            if current == section && line.hasPrefix(key + " =") { return comments.joined(separator: " ") }
            comments = []
        }
        return nil
    }

    @Test(
        "The shipped file marks exactly the keys a reload applies \"(applied on reload)\", the rest \"(restart to apply)\""
    )
    func shippedFileReloadMarks() throws {
        let text = try Self.shippedFile().text
        for setting in Config.schema {
            let name = "\(setting.section).\(setting.key)"
            let block = try #require(Self.comment(of: setting.key, in: setting.section, text: text), "\(name)")
            let expected = Config.appliedOnReload.contains(name) ? "(applied on reload)" : "(restart to apply)"
            #expect(block.contains(expected), "\(name) should say \(expected)")
        }
        let known = Set(Config.schema.map { "\($0.section).\($0.key)" })
        #expect(Config.appliedOnReload.isSubset(of: known))
    }

    static func position(_ text: String) -> (line: Int, column: Int)? {
        do {
            _ = try ConfigDecoder.decode(text, file: "portsyncd.toml")
            return nil
        } catch {
            return (error.line, error.column)
        }
    }

    @Test("An unknown section is reported at its header, not at an earlier key of the same name")
    func unknownSectionPosition() {
        // A `level = …` key inside [log] must not be mistaken for the unknown [level] section on line 4.
        let text = "[log]\nlevel = \"info\"\n\n[level]\nvalue = 1\n"
        #expect(throws: ConfigError.self) { try ConfigDecoder.decode(text, file: "portsyncd.toml") }
        #expect(Self.position(text)?.line == 4)
    }

    @Test("A key written as a sub-table or dotted key is reported where it is written")
    func subTablePosition() {
        // The unknown key "pool" is reported where it is defined, not at the [redis] header.
        let subTable = "[redis]\nunix_socket = \"\"\n\n[redis.pool]\nsize = 1\n"
        let dotted = "[redis]\nunix_socket = \"\"\npool.size = 1\n"
        #expect(throws: ConfigError.self) { try ConfigDecoder.decode(subTable, file: "portsyncd.toml") }
        #expect(throws: ConfigError.self) { try ConfigDecoder.decode(dotted, file: "portsyncd.toml") }
        #expect(Self.position(subTable)?.line == 4)
        #expect(Self.position(dotted)?.line == 3)
    }

    @Test("A path with a NUL byte is refused, not cut short")
    func nulInPath() {
        // TOML allows "\u0000" in a string, but no setting has a use for it (a path handed to a C call would be cut
        // at the NUL: "/a\u0000b" would open "/a"): the decoder refuses the escape itself, where it is written.
        let text = "[redis]\ndatabase_config = \"/a\\u0000b\"\n"
        let error = #expect(throws: ConfigError.self) { try ConfigDecoder.decode(text, file: "portsyncd.toml") }
        #expect(error?.message == "a NUL character (\\u0000) is not allowed")
        #expect(error?.line == 2 && error?.column == 22)
        // In any string, and in a key.
        for (text, column) in [("[log]\nlevel = \"in\\U00000000fo\"\n", 12), ("[log]\n\"lev\\u0000el\" = 1\n", 5)] {
            let error = #expect(throws: ConfigError.self) { try ConfigDecoder.decode(text, file: "portsyncd.toml") }
            #expect(error?.description == "portsyncd.toml:2:\(column): a NUL character (\\u0000) is not allowed")
        }
    }
}

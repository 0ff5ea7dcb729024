internal import Foundation
internal import TOMLKit

/// Decodes the TOML text of a portsyncd configuration into a validated `Config`.
///
/// Syntax errors, unknown sections or keys, wrong types and out-of-range values all throw a `ConfigError` that
/// names the file, line and column.
public enum ConfigDecoder {
    public static func decode(_ text: String, file: String) throws(ConfigError) -> Config {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(
                file: file, line: error.source.begin.line, column: error.source.begin.column,
                message: "syntax error: \(error.description)")
        } catch {
            throw ConfigError(file: file, line: 1, column: 1, message: "cannot parse: \(error)")
        }
        let locator = TOMLKeyLocator(text: text)
        if let at = locator.nulEscape() {
            // TOMLKit hands strings over as C strings, so a NUL would silently cut the value: refuse it here.
            throw ConfigError(
                file: file, line: at.line, column: at.column, message: "a NUL character (\\u0000) is not allowed")
        }
        let schema = Config.schema
        var config = Config()
        for section in root.keys.sorted() {
            let position = locator.section(section)
            guard schema.contains(where: { $0.section == section }) else {
                throw ConfigError(
                    file: file, line: position.line, column: position.column,
                    message: "unknown section \"\(section)\" (known: \(Self.sections(schema)))")
            }
            guard let table = root[section]?.table else {
                throw ConfigError(
                    file: file, line: position.line, column: position.column,
                    message: "\"\(section)\" must be a table ([\(section)])")
            }
            for key in table.keys.sorted() {
                let at = locator.key(key, in: section)
                func fail(_ message: String) -> ConfigError {
                    ConfigError(file: file, line: at.line, column: at.column, message: message)
                }
                guard let setting = schema.first(where: { $0.section == section && $0.key == key }) else {
                    let known = schema.filter { $0.section == section }.map(\.key).joined(separator: ", ")
                    throw fail("unknown key \"\(key)\" in [\(section)] (known: \(known))")
                }
                guard let value = table[key] else { continue }
                let name = "\(section).\(key)"
                switch setting.kind {
                case .integer(let range, let path):
                    guard value.type == .int, let number = value.int else {
                        throw fail("\(name) must be \(setting.typeName), not \(value.type)")
                    }
                    guard range.contains(number) else {
                        throw fail("\(name) = \(number) is out of range \(range.lowerBound)...\(range.upperBound)")
                    }
                    config[keyPath: path] = number
                case .boolean(let path):
                    guard value.type == .bool, let flag = value.bool else {
                        throw fail("\(name) must be \(setting.typeName), not \(value.type)")
                    }
                    config[keyPath: path] = flag
                case .path(let path, let allowEmpty):
                    guard value.type == .string, let string = value.string else {
                        throw fail("\(name) must be \(setting.typeName), not \(value.type)")
                    }
                    if string.isEmpty && !allowEmpty { throw fail("\(name) must not be empty") }
                    if !string.isEmpty && !string.hasPrefix("/") {
                        throw fail("\(name) = \"\(string)\" must be an absolute path")
                    }
                    if string.utf8.contains(0) { throw fail("\(name) must not contain a NUL byte") }
                    config[keyPath: path] = string
                case .choice(let allowed, let path):
                    guard value.type == .string, let string = value.string else {
                        throw fail("\(name) must be \(setting.typeName), not \(value.type)")
                    }
                    guard allowed.contains(string) else {
                        throw fail("\(name) = \"\(string)\" is not one of \(allowed.joined(separator: ", "))")
                    }
                    config[keyPath: path] = string
                case .address(let path):
                    guard value.type == .string, let string = value.string else {
                        throw fail("\(name) must be \(setting.typeName), not \(value.type)")
                    }
                    guard ConfigSetting.isIPAddress(string) else {
                        throw fail("\(name) = \"\(string)\" is not an IPv4 or IPv6 address")
                    }
                    config[keyPath: path] = string
                case .token(let path):
                    guard value.type == .string, let string = value.string else {
                        throw fail("\(name) must be \(setting.typeName), not \(value.type)")
                    }
                    guard string.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }), string.utf8.count <= 256 else {
                        throw fail("\(name) must be at most 256 printable ASCII characters without spaces")
                    }
                    config[keyPath: path] = string
                case .integerList(let range, let count, let path):
                    guard value.type == .array, let array = value.array else {
                        throw fail("\(name) must be \(setting.typeName), not \(value.type)")
                    }
                    var numbers: [Int] = []
                    for element in array {
                        guard element.type == .int, let number = element.int else {
                            throw fail("\(name) must contain integers only, not \(element.type)")
                        }
                        guard range.contains(number) else {
                            throw fail(
                                "\(name): \(number) is out of range \(range.lowerBound)...\(range.upperBound)")
                        }
                        guard !numbers.contains(number) else { throw fail("\(name): \(number) is listed twice") }
                        numbers.append(number)
                    }
                    guard count.contains(numbers.count) else {
                        throw fail("\(name) must list \(count.lowerBound) to \(count.upperBound) values")
                    }
                    config[keyPath: path] = numbers.sorted()
                case .alertRules(let path):
                    guard value.type == .array, let array = value.array else {
                        throw fail("\(name) must be \(setting.typeName) ([[\(name)]]), not \(value.type)")
                    }
                    var rules: [AlertRule] = []
                    for (index, element) in array.enumerated() {
                        let position = locator.arrayTable(name, index: index) ?? at
                        do throws(AlertRuleDecoder.Failure) {
                            let rule = try AlertRuleDecoder.decode(element, index: index)
                            guard !rules.contains(where: { $0.name == rule.name }) else {
                                throw AlertRuleDecoder.Failure("rule \"\(rule.name)\" is defined twice")
                            }
                            rules.append(rule)
                        } catch {
                            throw ConfigError(
                                file: file, line: position.line, column: position.column,
                                message: "\(name)[\(index)]: \(error.message)")
                        }
                    }
                    guard rules.count <= AlertRuleDecoder.maximumRules else {
                        throw fail("\(name): at most \(AlertRuleDecoder.maximumRules) rules")
                    }
                    config[keyPath: path] = rules
                }
            }
        }
        // Pairs of keys whose values must be ordered; the error points at the first key, or the second if the
        // first is not in the file (its default is what conflicts).
        let ordered: [(low: String, high: String, strict: Bool, values: (Int, Int))] = [
            (
                "redis.reconnect_initial_ms", "redis.reconnect_max_ms", false,
                (config.redis.reconnectInitialMs, config.redis.reconnectMaxMs)
            ),
            (
                "pipeline.adaptive_block_below_us", "pipeline.adaptive_shed_above_us", false,
                (config.pipeline.adaptiveBlockBelowUs, config.pipeline.adaptiveShedAboveUs)
            ),
            (
                "supervisor.restart_initial_ms", "supervisor.restart_max_ms", false,
                (config.supervisor.restartInitialMs, config.supervisor.restartMaxMs)
            ),
            (
                "supervisor.heartbeat_interval_ms", "supervisor.stall_timeout_ms", true,
                (config.supervisor.heartbeatIntervalMs, config.supervisor.stallTimeoutMs)
            ),
            (
                "channels.reuse_threshold", "channels.suppress_threshold", false,
                (config.channels.reuseThreshold, config.channels.suppressThreshold)
            ),
            ("alerts.flap_clear", "alerts.flap_raise", false, (config.alerts.flapClear, config.alerts.flapRaise)),
        ]
        for pair in ordered where pair.strict ? pair.values.0 >= pair.values.1 : pair.values.0 > pair.values.1 {
            let low = pair.low.split(separator: ".").map(String.init)
            let high = pair.high.split(separator: ".").map(String.init)
            // A strict pair reads better from the larger key: "stall_timeout_ms must exceed heartbeat_interval_ms".
            let (first, second) = pair.strict ? (high, low) : (low, high)
            let at = locator.find(first[1], in: first[0]) ?? locator.key(second[1], in: second[0])
            let message =
                pair.strict
                ? "\(pair.high) (\(pair.values.1)) must exceed \(pair.low) (\(pair.values.0))"
                : "\(pair.low) (\(pair.values.0)) must not exceed \(pair.high) (\(pair.values.1))"
            throw ConfigError(file: file, line: at.line, column: at.column, message: message)
        }
        return config
    }

    private static func sections(_ schema: [ConfigSetting]) -> String {
        var seen: [String] = []
        for setting in schema where !seen.contains(setting.section) { seen.append(setting.section) }
        return seen.joined(separator: ", ")
    }
}

/// Finds where a section header or a key is written in TOML text, for error positions (TOMLKit reports positions
/// only for syntax errors). It understands `[section]` and `[section.sub]` headers, `key = value` lines and
/// dotted keys (`section.key = …` at the top level, `key.sub = …` inside a section).
struct TOMLKeyLocator {
    struct Position: Equatable {
        var line: Int
        var column: Int
    }

    private let lines: [Substring]

    init(text: String) {
        self.lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// Where section `name` is introduced: its `[name]` (or `[name.…]`) header, else a top-level dotted key.
    func section(_ name: String) -> Position {
        var current = ""
        var dotted: Position?
        for (index, line) in self.lines.enumerated() {
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            let column = line.count - trimmed.count + 1
            if trimmed.hasPrefix("[") {
                current = self.header(trimmed)
                if current == name || current.hasPrefix(name + ".") {
                    return Position(line: index + 1, column: column)
                }
                continue
            }
            if current.isEmpty, dotted == nil,
                self.keyColumn(line, key: name) != nil || self.keyColumn(line, key: name + ".", prefixOnly: true) != nil
            {
                dotted = Position(line: index + 1, column: column)
            }
        }
        return dotted ?? Position(line: 1, column: 1)
    }

    /// Where `key` of `section` is written, if it is; nil otherwise.
    func find(_ key: String, in section: String) -> Position? {
        var current = ""
        for (index, line) in self.lines.enumerated() {
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            let column = line.count - trimmed.count + 1
            if trimmed.hasPrefix("[") {
                current = self.header(trimmed)
                if current == section + "." + key || current.hasPrefix(section + "." + key + ".") {
                    return Position(line: index + 1, column: column)
                }
                continue
            }
            if current == section,
                self.keyColumn(line, key: key) != nil || self.keyColumn(line, key: key + ".", prefixOnly: true) != nil
            {
                return Position(line: index + 1, column: column)
            }
            if current.isEmpty,
                self.keyColumn(line, key: section + "." + key) != nil
                    || self.keyColumn(line, key: section + "." + key + ".", prefixOnly: true) != nil
            {
                return Position(line: index + 1, column: column)
            }
        }
        return nil
    }

    /// The header of the `index`-th table of an array of tables (`[[name]]`), if the file writes it that way.
    func arrayTable(_ name: String, index: Int) -> Position? {
        var seen = 0
        for (number, line) in self.lines.enumerated() {
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            guard trimmed.hasPrefix("[["), self.header(trimmed) == name else { continue }
            if seen == index { return Position(line: number + 1, column: line.count - trimmed.count + 1) }
            seen += 1
        }
        return nil
    }

    /// Where `key` of `section` is written, else where the section is.
    func key(_ key: String, in section: String) -> Position {
        self.find(key, in: section) ?? self.section(section)
    }

    /// The first `\u0000` (or `\U00000000`) escape, which would reach the decoder as a cut C string.
    func nulEscape() -> Position? {
        for (index, line) in self.lines.enumerated() {
            for escape in ["\\u0000", "\\U00000000"] {
                if let range = line.range(of: escape) {
                    return Position(
                        line: index + 1, column: line.distance(from: line.startIndex, to: range.lowerBound) + 1)
                }
            }
        }
        return nil
    }

    private func header(_ trimmed: Substring) -> String {
        let inner = trimmed.drop(while: { $0 == "[" }).prefix(while: { $0 != "]" })
        return inner.trimmingSpaces.replacingOccurrences(of: "\"", with: "")
    }

    private func keyColumn(_ line: Substring, key: String, prefixOnly: Bool = false) -> Int? {
        let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
        let column = line.count - trimmed.count + 1
        for candidate in [key, "\"" + key + "\""] where trimmed.hasPrefix(candidate) {
            if prefixOnly { return column }
            let rest = trimmed.dropFirst(candidate.count).drop(while: { $0 == " " || $0 == "\t" })
            if rest.hasPrefix("=") { return column }
        }
        return nil
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(self.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

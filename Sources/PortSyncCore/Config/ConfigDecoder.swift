/// Decodes the TOML text of a portsyncd configuration into a validated `Config`.
///
/// Syntax errors, unknown sections or keys, wrong types and out-of-range values all throw a `ConfigError` that
/// names the file, line and column.
public enum ConfigDecoder {
    public static func decode(_ text: String, file: String) throws(ConfigError) -> Config {
        let root: TOMLTable
        do {
            // No setting has a use for U+0000, which TOML allows in strings: it is refused where it is written.
            root = try TOMLParser.parse(text, options: TOMLParser.Options(allowsNUL: false))
        } catch {
            throw ConfigError(
                file: file, line: error.line, column: error.column,
                message: error.kind == .syntax ? "syntax error: \(error.message)" : error.message)
        }
        let schema = Config.schema
        var config = Config()
        for sectionEntry in root.entries.sorted(by: { $0.key < $1.key }) {
            let section = sectionEntry.key
            let position = sectionEntry.keyPosition
            guard schema.contains(where: { $0.section == section }) else {
                throw ConfigError(
                    file: file, line: position.line, column: position.column,
                    message: "unknown section \"\(section)\" (known: \(Self.sections(schema)))")
            }
            guard let table = sectionEntry.value.table else {
                throw ConfigError(
                    file: file, line: position.line, column: position.column,
                    message: "\"\(section)\" must be a table ([\(section)])")
            }
            for entry in table.entries.sorted(by: { $0.key < $1.key }) {
                let key = entry.key
                let value = entry.value
                let at = entry.keyPosition
                func fail(_ message: String) -> ConfigError {
                    ConfigError(file: file, line: at.line, column: at.column, message: message)
                }
                guard let setting = schema.first(where: { $0.section == section && $0.key == key }) else {
                    let known = schema.filter { $0.section == section }.map(\.key).joined(separator: ", ")
                    throw fail("unknown key \"\(key)\" in [\(section)] (known: \(known))")
                }
                let name = "\(section).\(key)"
                switch setting.kind {
                case .integer(let range, let path):
                    guard let number = value.integer.flatMap({ Int(exactly: $0) }) else {
                        throw fail("\(name) must be \(setting.typeName), not \(value.typeName)")
                    }
                    guard range.contains(number) else {
                        throw fail("\(name) = \(number) is out of range \(range.lowerBound)...\(range.upperBound)")
                    }
                    config[keyPath: path] = number
                case .boolean(let path):
                    guard let flag = value.boolean else {
                        throw fail("\(name) must be \(setting.typeName), not \(value.typeName)")
                    }
                    config[keyPath: path] = flag
                case .path(let path, let allowEmpty):
                    guard let string = value.string else {
                        throw fail("\(name) must be \(setting.typeName), not \(value.typeName)")
                    }
                    if string.isEmpty && !allowEmpty { throw fail("\(name) must not be empty") }
                    if !string.isEmpty && !string.hasPrefix("/") {
                        throw fail("\(name) = \"\(string)\" must be an absolute path")
                    }
                    if string.utf8.contains(0) { throw fail("\(name) must not contain a NUL byte") }
                    config[keyPath: path] = string
                case .choice(let allowed, let path):
                    guard let string = value.string else {
                        throw fail("\(name) must be \(setting.typeName), not \(value.typeName)")
                    }
                    guard allowed.contains(string) else {
                        throw fail("\(name) = \"\(string)\" is not one of \(allowed.joined(separator: ", "))")
                    }
                    config[keyPath: path] = string
                case .address(let path):
                    guard let string = value.string else {
                        throw fail("\(name) must be \(setting.typeName), not \(value.typeName)")
                    }
                    guard ConfigSetting.isIPAddress(string) else {
                        throw fail("\(name) = \"\(string)\" is not an IPv4 or IPv6 address")
                    }
                    config[keyPath: path] = string
                case .token(let path):
                    guard let string = value.string else {
                        throw fail("\(name) must be \(setting.typeName), not \(value.typeName)")
                    }
                    guard string.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }), string.utf8.count <= 256 else {
                        throw fail("\(name) must be at most 256 printable ASCII characters without spaces")
                    }
                    config[keyPath: path] = string
                case .integerList(let range, let count, let path):
                    guard let array = value.array else {
                        throw fail("\(name) must be \(setting.typeName), not \(value.typeName)")
                    }
                    var numbers: [Int] = []
                    for element in array {
                        guard let number = element.integer.flatMap({ Int(exactly: $0) }) else {
                            throw fail("\(name) must contain integers only, not \(element.typeName)")
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
                    guard let array = value.array else {
                        throw fail("\(name) must be \(setting.typeName) ([[\(name)]]), not \(value.typeName)")
                    }
                    var rules: [AlertRule] = []
                    for (index, element) in array.enumerated() {
                        // A rule written as [[alerts.rules]] is reported at its header, an inline one at the key.
                        let position = element.table?.definition == .header ? element.position : at
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
            let at =
                Self.written(first[1], in: first[0], of: root) ?? Self.written(second[1], in: second[0], of: root)
                ?? root.entry(second[0])?.keyPosition ?? TOMLPosition(line: 1, column: 1)
            let message =
                pair.strict
                ? "\(pair.high) (\(pair.values.1)) must exceed \(pair.low) (\(pair.values.0))"
                : "\(pair.low) (\(pair.values.0)) must not exceed \(pair.high) (\(pair.values.1))"
            throw ConfigError(file: file, line: at.line, column: at.column, message: message)
        }
        return config
    }

    /// Where `key` of `section` is written, if it is.
    private static func written(_ key: String, in section: String, of root: TOMLTable) -> TOMLPosition? {
        root[section]?.table?.entry(key)?.keyPosition
    }

    private static func sections(_ schema: [ConfigSetting]) -> String {
        var seen: [String] = []
        for setting in schema where !seen.contains(setting.section) { seen.append(setting.section) }
        return seen.joined(separator: ", ")
    }
}

/// One `[[alerts.rules]]` table: its keys, their types and ranges, and what each condition needs.
///
/// ```toml
/// [[alerts.rules]]
/// name = "rx_errors"          # [a-z][a-z0-9_]*, at most 64; not a built-in rule's name
/// condition = "error_rate"    # flap_rate, damped, oper_down, error_rate, utilisation, queue_depth, latency
/// severity = "major"          # info, warning (default), major, critical
/// raise = 100                 # raised at or above this …
/// clear = 10                  # … cleared below this (default: raise; never above it)
/// for_ms = 5000               # the value must hold this long before raising (default 0)
/// cooldown_ms = 30000         # quiet time before clearing (default 0)
/// auto_resolve = true         # false: stays raised until the rule changes or the port goes
/// window_ms = 10000           # flap_rate only: the window of the count
/// speed_mbps = 100000         # utilisation only: the link speed (default: the port's CONFIG_DB speed)
/// ```
enum AlertRuleDecoder {
    struct Failure: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    static let maximumRules = 64
    static let keys = [
        "name", "condition", "severity", "raise", "clear", "for_ms", "cooldown_ms", "auto_resolve", "window_ms",
        "speed_mbps",
    ]

    static func decode(_ value: TOMLValue, index: Int) throws(Failure) -> AlertRule {
        guard let table = value.table else {
            throw Failure("a rule must be a table, not \(value.typeName)")
        }
        for key in table.keys.sorted() where !Self.keys.contains(key) {
            throw Failure("unknown key \"\(key)\" (known: \(Self.keys.joined(separator: ", ")))")
        }
        let name = try Self.string(table, "name") ?? ""
        guard Self.isRuleName(name) else {
            throw Failure("name must be 1 to 64 of a-z, 0-9 and _, starting with a letter (got \"\(name)\")")
        }
        guard !Config.builtInAlertRules.contains(name) else {
            throw Failure("\"\(name)\" is a built-in rule: set it with the flap_* or port_down_* keys")
        }
        let conditions = AlertCondition.allCases.map(\.rawValue)
        guard let conditionName = try Self.string(table, "condition") else {
            throw Failure("rule \"\(name)\": condition is required (\(conditions.joined(separator: ", ")))")
        }
        guard let condition = AlertCondition(rawValue: conditionName) else {
            throw Failure(
                "rule \"\(name)\": condition \"\(conditionName)\" is not one of \(conditions.joined(separator: ", "))")
        }
        let severityName = try Self.string(table, "severity") ?? "warning"
        guard let severity = AlertSeverity(rawValue: severityName) else {
            throw Failure(
                "rule \"\(name)\": severity \"\(severityName)\" is not one of \(Config.severities.joined(separator: ", "))"
            )
        }
        guard let raise = try Self.number(table, "raise", rule: name) ?? (condition == .damped ? 1 : nil) else {
            throw Failure("rule \"\(name)\": raise is required")
        }
        let clear = try Self.number(table, "clear", rule: name) ?? raise
        guard clear <= raise else {
            throw Failure("rule \"\(name)\": clear (\(clear)) must not exceed raise (\(raise))")
        }
        let forMs = try Self.integer(table, "for_ms", 0...86_400_000, rule: name) ?? 0
        let cooldownMs = try Self.integer(table, "cooldown_ms", 0...86_400_000, rule: name) ?? 0
        var autoResolve = true
        if let flag = table["auto_resolve"] {
            guard let bool = flag.boolean else {
                throw Failure("rule \"\(name)\": auto_resolve must be a boolean, not \(flag.typeName)")
            }
            autoResolve = bool
        }
        let window = try Self.integer(table, "window_ms", 1000...86_400_000, rule: name)
        if window != nil && condition != .flapRate {
            throw Failure("rule \"\(name)\": window_ms applies to flap_rate only")
        }
        let speed = try Self.number(table, "speed_mbps", rule: name)
        if condition == .utilisation {
            if let speed, speed <= 0 || speed > 10_000_000 {
                throw Failure("rule \"\(name)\": speed_mbps must be above 0 and at most 10000000")
            }
        } else if speed != nil {
            throw Failure("rule \"\(name)\": speed_mbps applies to utilisation only")
        }
        return AlertRule(
            name: name, condition: condition, severity: severity, raiseAt: raise, clearBelow: clear,
            forMicros: UInt64(forMs) * 1000, cooldownMicros: UInt64(cooldownMs) * 1000, autoResolve: autoResolve,
            windowMicros: UInt64(window ?? 10_000) * 1000, speedMbps: speed ?? 0)
    }

    /// A rule as an inline TOML table (the value of `alerts.rules` for change detection and documentation).
    static func toml(_ rule: AlertRule) -> String {
        var fields = [
            "name = \"\(rule.name)\"", "condition = \"\(rule.condition.rawValue)\"",
            "severity = \"\(rule.severity.rawValue)\"", "raise = \(rule.raiseAt)", "clear = \(rule.clearBelow)",
            "for_ms = \(rule.forMicros / 1000)", "cooldown_ms = \(rule.cooldownMicros / 1000)",
            "auto_resolve = \(rule.autoResolve)",
        ]
        if rule.condition == .flapRate { fields.append("window_ms = \(rule.windowMicros / 1000)") }
        if rule.condition == .utilisation && rule.speedMbps > 0 { fields.append("speed_mbps = \(rule.speedMbps)") }
        return "{ " + fields.joined(separator: ", ") + " }"
    }

    static func isRuleName(_ name: String) -> Bool {
        guard let first = name.utf8.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first),
            name.utf8.count <= 64
        else { return false }
        return name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "_")
        }
    }

    private static func string(_ table: TOMLTable, _ key: String) throws(Failure) -> String? {
        guard let value = table[key] else { return nil }
        guard let string = value.string else {
            throw Failure("\(key) must be a string, not \(value.typeName)")
        }
        return string
    }

    private static func number(_ table: TOMLTable, _ key: String, rule: String) throws(Failure) -> Double? {
        guard let value = table[key] else { return nil }
        let number: Double? =
            switch value.content {
            case .integer(let integer): Double(integer)
            case .float(let float): float
            default: nil
            }
        guard let number else { throw Failure("rule \"\(rule)\": \(key) must be a number, not \(value.typeName)") }
        guard number.isFinite, number >= 0, number <= 1e15 else {
            throw Failure("rule \"\(rule)\": \(key) = \(number) is out of range 0...1e15")
        }
        return number
    }

    private static func integer(_ table: TOMLTable, _ key: String, _ range: ClosedRange<Int>, rule: String)
        throws(Failure) -> Int?
    {
        guard let value = table[key] else { return nil }
        guard let number = value.integer.flatMap({ Int(exactly: $0) }) else {
            throw Failure("rule \"\(rule)\": \(key) must be an integer, not \(value.typeName)")
        }
        guard range.contains(number) else {
            throw Failure(
                "rule \"\(rule)\": \(key) = \(number) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }
}

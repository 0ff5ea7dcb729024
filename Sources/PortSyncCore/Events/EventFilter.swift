/// What a subscriber asks for: event types and port patterns (`?events=port_state,alert_raised&ports=Ethernet0,
/// Ethernet4*`). No list means all. A pattern is a port name, optionally ending in `*` (a prefix); events about no
/// port (sync, reset, config_reloaded, worker_state, shutdown) pass every port filter.
public struct EventFilter: Sendable, Hashable {
    public var types: Set<BusEventType>?
    public var ports: [String]?

    public init(types: Set<BusEventType>? = nil, ports: [String]? = nil) {
        self.types = types
        self.ports = ports
    }

    /// An invalid filter: the message says what is wrong and what is accepted (HTTP 400).
    public struct Invalid: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        /// The query parameter at fault: `events` or `ports`.
        public var parameter: String?
        public var description: String { self.message }
    }

    /// Parses the query parameters `events` and `ports` (comma-separated; empty items ignored).
    public static func parse(events: String?, ports: String?) throws(Invalid) -> EventFilter {
        var filter = EventFilter()
        if let events {
            var types: Set<BusEventType> = []
            for item in events.split(separator: ",") where !item.isEmpty {
                guard let type = BusEventType(rawValue: String(item)) else {
                    let known = BusEventType.allCases.map(\.rawValue).joined(separator: ", ")
                    throw Invalid(
                        message: "unknown event type \"\(Self.printable(item))\" (known: \(known))", parameter: "events"
                    )
                }
                types.insert(type)
            }
            filter.types = types.isEmpty ? nil : types
        }
        if let ports {
            var patterns: [String] = []
            for item in ports.split(separator: ",") where !item.isEmpty {
                guard Self.isValidPattern(item) else {
                    throw Invalid(
                        message: "invalid port pattern \"\(Self.printable(item))\": a port name of letters, digits, "
                            + "'.', '_' and '-' (at most 15), optionally ending in '*'",
                        parameter: "ports")
                }
                patterns.append(String(item))
            }
            filter.ports = patterns.isEmpty ? nil : patterns
        }
        return filter
    }

    public func matches(type: BusEventType, port: String?) -> Bool {
        if let types = self.types, !types.contains(type) { return false }
        guard let patterns = self.ports, let port else { return true }
        return patterns.contains { Self.match(pattern: $0, port) }
    }

    public func matches(_ event: BusEvent) -> Bool { self.matches(type: event.type, port: event.port) }

    /// Whether `port` is wanted by this filter's ports (snapshots use this, whatever the type filter).
    public func wantsPort(_ port: String) -> Bool {
        guard let patterns = self.ports else { return true }
        return patterns.contains { Self.match(pattern: $0, port) }
    }

    static func match(pattern: String, _ port: String) -> Bool {
        if pattern.hasSuffix("*") { return port.hasPrefix(pattern.dropLast()) }
        return port == pattern
    }

    static func isValidPattern(_ item: Substring) -> Bool {
        let body = item.hasSuffix("*") ? item.dropLast() : item
        guard body.utf8.count <= 15, !(body.isEmpty && !item.hasSuffix("*")) else { return false }
        return body.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default: false
            }
        }
    }

    /// At most 40 characters of `text`, with anything outside printable ASCII escaped, for an error message.
    static func printable(_ text: Substring) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(40) {
            if scalar.value >= 0x20 && scalar.value < 0x7f && scalar != "\"" && scalar != "\\" {
                out.unicodeScalars.append(scalar)
            } else {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            }
        }
        return text.unicodeScalars.count > 40 ? out + "…" : out
    }
}

import Synchronization

/// The kinds of event the event bus carries; each has a JSON schema in the OpenAPI document
/// (`Sources/PortSyncHTTP/Resources/openapi.json`, served at `/v1/openapi.json`) that real events are validated
/// against in a test.
public enum BusEventType: String, Sendable, Hashable, Codable, CaseIterable {
    case portState = "port_state"
    case portDeleted = "port_deleted"
    case counterBar = "counter_bar"
    case portHealth = "port_health"
    case alertRaised = "alert_raised"
    case alertCleared = "alert_cleared"
    case configReloaded = "config_reloaded"
    case workerState = "worker_state"
    /// The snapshot of current port states sent to a new subscriber is complete; live events follow.
    case sync
    /// The id a subscriber resumes from is from another epoch or older than the replay ring: a fresh snapshot
    /// follows.
    case reset
    /// The daemon is stopping; the stream ends after this event.
    case shutdown
}

/// Where an event stands when buffers overflow: low goes first; high is never dropped for a slow client (the
/// client is closed instead).
public enum BusPriority: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case high
    case medium
    case low

    private var rank: Int {
        switch self {
        case .high: 2
        case .medium: 1
        case .low: 0
        }
    }

    public static func < (lhs: BusPriority, rhs: BusPriority) -> Bool { lhs.rank < rhs.rank }
}

/// An event's id: the epoch (new at each process start) and a sequence number within it, written
/// `<epoch>-<sequence>` (the SSE `id:` and `Last-Event-ID`).
public struct BusEventID: Sendable, Hashable, Codable, CustomStringConvertible {
    public var epoch: String
    public var sequence: UInt64

    public init(epoch: String, sequence: UInt64) {
        self.epoch = epoch
        self.sequence = sequence
    }

    public var description: String { "\(self.epoch)-\(self.sequence)" }

    /// Parses `<epoch>-<sequence>`; the epoch is 1 to 32 lowercase hex digits. `nil` for anything else.
    public init?(_ text: String) {
        guard text.utf8.count <= 64, let dash = text.lastIndex(of: "-") else { return nil }
        let epoch = text[..<dash]
        let digits = text[text.index(after: dash)...]
        guard (1...32).contains(epoch.count),
            epoch.utf8.allSatisfy({
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                    || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0)
            }),
            !digits.isEmpty, digits.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            let sequence = UInt64(digits)
        else { return nil }
        self.init(epoch: String(epoch), sequence: sequence)
    }
}

/// What an event says, by type.
public enum BusEventData: Sendable, Hashable {
    public struct PortState: Sendable, Hashable, Codable {
        public var admin: String
        public var oper: String
        public var mtu: UInt32
        public var carrierChanges: UInt32?
        public var ifindex: Int32
        public var traceID: UInt64
        /// Identical kernel messages that followed the previous event of this port and were folded (link channel).
        public var repeats: UInt64?
        /// When the kernel message was received, monotonic microseconds.
        public var receivedMicros: UInt64?
        /// The netlink sequence number of the message (0 for events).
        public var sequence: UInt32?

        public init(
            admin: String, oper: String, mtu: UInt32, carrierChanges: UInt32?, ifindex: Int32, traceID: UInt64,
            repeats: UInt64? = nil, receivedMicros: UInt64? = nil, sequence: UInt32? = nil
        ) {
            self.admin = admin
            self.oper = oper
            self.mtu = mtu
            self.carrierChanges = carrierChanges
            self.ifindex = ifindex
            self.traceID = traceID
            self.repeats = repeats
            self.receivedMicros = receivedMicros
            self.sequence = sequence
        }

        enum CodingKeys: String, CodingKey {
            case admin, oper, mtu, ifindex, repeats, sequence
            case carrierChanges = "carrier_changes"
            case traceID = "trace_id"
            case receivedMicros = "received_us"
        }
    }

    /// Damping of one port started or ended.
    public struct PortHealth: Sendable, Hashable, Codable {
        public var damped: Bool
        /// `monitor` or `enforce`.
        public var mode: String
        public var penalty: Double
        /// Link-down transitions seen, and those while damped.
        public var flaps: UInt64
        public var suppressedFlaps: UInt64

        public init(damped: Bool, mode: String, penalty: Double, flaps: UInt64, suppressedFlaps: UInt64) {
            self.damped = damped
            self.mode = mode
            self.penalty = penalty
            self.flaps = flaps
            self.suppressedFlaps = suppressedFlaps
        }

        enum CodingKeys: String, CodingKey {
            case damped, mode, penalty, flaps
            case suppressedFlaps = "suppressed_flaps"
        }
    }

    /// A closed counter bar.
    public struct Bar: Sendable, Hashable, Codable {
        public var bar: CounterBar

        public init(_ bar: CounterBar) { self.bar = bar }

        public func encode(to encoder: any Encoder) throws { try self.bar.encode(to: encoder) }
        public init(from decoder: any Decoder) throws { self.bar = try CounterBar(from: decoder) }
    }

    /// An alert raised or cleared.
    public struct Alert: Sendable, Hashable, Codable {
        public var rule: String
        /// What the rule measures (`flap_rate`, `error_rate`, `queue_depth`, …).
        public var condition: String
        /// The port, or the channel shard (`channels/0`) for the channel-level conditions.
        public var subject: String
        public var severity: String
        public var value: Double
        /// Repeats suppressed while it was active (on clear).
        public var suppressed: UInt64

        public init(_ change: AlertChange) {
            self.rule = change.rule
            self.condition = change.condition.rawValue
            self.subject = change.subject
            self.severity = change.severity.rawValue
            self.value = change.value
            self.suppressed = change.suppressed
        }
    }

    public struct PortDeleted: Sendable, Hashable, Codable {
        public var ifindex: Int32
        public var traceID: UInt64

        public init(ifindex: Int32, traceID: UInt64) {
            self.ifindex = ifindex
            self.traceID = traceID
        }

        enum CodingKeys: String, CodingKey {
            case ifindex
            case traceID = "trace_id"
        }
    }

    public struct ConfigReloaded: Sendable, Hashable, Codable {
        public var successful: Bool
        public var changed: [String]
        public var applied: [String]
        public var restartNeeded: [String]
        public var error: String?

        public init(
            successful: Bool, changed: [String] = [], applied: [String] = [], restartNeeded: [String] = [],
            error: String? = nil
        ) {
            self.successful = successful
            self.changed = changed
            self.applied = applied
            self.restartNeeded = restartNeeded
            self.error = error
        }

        enum CodingKeys: String, CodingKey {
            case successful, changed, applied, error
            case restartNeeded = "restart_needed"
        }
    }

    public struct Sync: Sendable, Hashable, Codable {
        /// Port states sent in the snapshot before this event.
        public var ports: Int

        public init(ports: Int) { self.ports = ports }
    }

    public struct Reset: Sendable, Hashable, Codable {
        /// `epoch_changed` (the daemon restarted), `too_old` (beyond the replay ring) or `unknown` (not an id of
        /// this daemon's).
        public var reason: String
        /// The current epoch.
        public var epoch: String

        public init(reason: String, epoch: String) {
            self.reason = reason
            self.epoch = epoch
        }
    }

    public struct Shutdown: Sendable, Hashable, Codable {
        public var reason: String

        public init(reason: String) { self.reason = reason }
    }

    case portState(PortState)
    case portDeleted(PortDeleted)
    case portHealth(PortHealth)
    case counterBar(Bar)
    case alertRaised(Alert)
    case alertCleared(Alert)
    case configReloaded(ConfigReloaded)
    case workerState(WorkerStatus)
    case sync(Sync)
    case reset(Reset)
    case shutdown(Shutdown)

    public var type: BusEventType {
        switch self {
        case .portState: .portState
        case .portDeleted: .portDeleted
        case .portHealth: .portHealth
        case .counterBar: .counterBar
        case .alertRaised: .alertRaised
        case .alertCleared: .alertCleared
        case .configReloaded: .configReloaded
        case .workerState: .workerState
        case .sync: .sync
        case .reset: .reset
        case .shutdown: .shutdown
        }
    }

    /// The default priority of the type: state changes and control events high, the rest by their nature.
    public var priority: BusPriority {
        switch self {
        case .portState, .portDeleted, .sync, .reset, .shutdown, .alertRaised, .alertCleared: .high
        case .configReloaded, .workerState, .portHealth: .medium
        case .counterBar: .low
        }
    }
}

/// One event on the bus. `id` is assigned by the bus when the event is published; `json` is its wire form,
/// rendered once and shared by every subscriber.
public struct BusEvent: Sendable, Hashable {
    /// Holds an event's wire JSON once rendered.
    final class WireCache: Sendable {
        private let json = Mutex<String?>(nil)
        private let sse = Mutex<String?>(nil)

        func json(_ render: () -> String) -> String { Self.get(self.json, render) }
        func sse(_ render: () -> String) -> String { Self.get(self.sse, render) }

        private static func get(_ slot: borrowing Mutex<String?>, _ render: () -> String) -> String {
            if let text = slot.withLock({ $0 }) { return text }
            let rendered = render()
            slot.withLock { $0 = rendered }
            return rendered
        }
    }

    public var id: BusEventID
    public var port: String?
    /// Unix time in milliseconds.
    public var timeMillis: Int64
    public var priority: BusPriority
    public var data: BusEventData
    /// The wire JSON and SSE frame, rendered by the first stream client that sends the event and shared by every copy
    /// of it, so that a thousand clients share one rendering and an event no client reads is never rendered. Not part of
    /// the event's identity.
    let wire = WireCache()

    public var type: BusEventType { self.data.type }

    public static func == (lhs: BusEvent, rhs: BusEvent) -> Bool {
        lhs.id == rhs.id && lhs.port == rhs.port && lhs.timeMillis == rhs.timeMillis && lhs.priority == rhs.priority
            && lhs.data == rhs.data
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.id)
        hasher.combine(self.port)
        hasher.combine(self.timeMillis)
        hasher.combine(self.priority)
        hasher.combine(self.data)
    }

    public init(
        id: BusEventID = BusEventID(epoch: "0", sequence: 0), port: String? = nil, timeMillis: Int64,
        priority: BusPriority? = nil, data: BusEventData
    ) {
        self.id = id
        self.port = port
        self.timeMillis = timeMillis
        self.priority = priority ?? data.priority
        self.data = data
    }
}

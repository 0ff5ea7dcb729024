/// One port as the daemon sees it (`GET /v1/ports`): the kernel's latest state and where its Redis write stands.
public struct PortView: Sendable, Hashable, Codable {
    /// Where the port's STATE_DB row stands.
    public enum Redis: String, Sendable, Hashable, Codable {
        /// STATE_DB holds the latest state.
        case synced
        /// The latest state is waiting in the hand-off or in flight, or APPL_DB has no entry yet (statement 19).
        case pending
        /// Configured in CONFIG_DB, not created by the kernel yet.
        case absent
    }

    public var name: String
    public var admin: String?
    public var oper: String?
    public var mtu: UInt32?
    public var ifindex: Int32?
    public var carrierChanges: UInt32?
    public var traceID: UInt64?
    /// When the latest state was published, Unix milliseconds.
    public var updatedMillis: Int64?
    public var redis: Redis
    /// In CONFIG_DB's PORT table at start-up.
    public var configured: Bool

    enum CodingKeys: String, CodingKey {
        case name, admin, oper, mtu, ifindex, redis, configured
        case carrierChanges = "carrier_changes"
        case traceID = "trace_id"
        case updatedMillis = "updated_ms"
    }

    /// Every port known from the bus's latest states, the writer's synced set and the configured set, by name.
    public static func merge(
        states: [String: BusEvent], synced: Set<String>, wanted: Set<String>, configured: Set<String>
    ) -> [PortView] {
        let names = Set(states.keys).union(configured).union(wanted)
        return names.sorted().map { name in
            var view = PortView(name: name, redis: .absent, configured: configured.contains(name))
            if let event = states[name], case .portState(let state) = event.data {
                view.admin = state.admin
                view.oper = state.oper
                view.mtu = state.mtu
                view.ifindex = state.ifindex
                view.carrierChanges = state.carrierChanges
                view.traceID = state.traceID
                view.updatedMillis = event.timeMillis
            }
            if synced.contains(name) {
                view.redis = .synced
            } else if wanted.contains(name) || states[name] != nil {
                view.redis = .pending
            }
            return view
        }
    }

    public init(name: String, redis: Redis, configured: Bool) {
        self.name = name
        self.redis = redis
        self.configured = configured
    }
}

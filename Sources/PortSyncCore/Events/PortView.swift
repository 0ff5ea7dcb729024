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
    /// Why the STATE_DB row is what it is: `synced`, or why not.
    public var syncState: PortSyncReason
    /// In CONFIG_DB's PORT table at start-up.
    public var configured: Bool

    enum CodingKeys: String, CodingKey {
        case name, admin, oper, mtu, ifindex, redis, configured
        case syncState = "sync_state"
        case carrierChanges = "carrier_changes"
        case traceID = "trace_id"
        case updatedMillis = "updated_ms"
    }

    /// Every port known from the bus's latest states, the writer's synced set, the configured set and the sync
    /// states (`reasons`, for every port the port path knows of), by name.
    public static func merge(
        states: [String: BusEvent], synced: Set<String>, wanted: Set<String>, configured: Set<String>,
        reasons: [String: PortSyncReason] = [:]
    ) -> [PortView] {
        let names = Set(states.keys).union(configured).union(wanted).union(reasons.keys)
        return names.sorted().map { name in
            var view = PortView(
                name: name, redis: .absent, configured: configured.contains(name),
                syncState: reasons[name] ?? (synced.contains(name) ? .synced : .pending))
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

    public init(name: String, redis: Redis, configured: Bool, syncState: PortSyncReason = .notInKernel) {
        self.name = name
        self.redis = redis
        self.configured = configured
        self.syncState = syncState
    }
}

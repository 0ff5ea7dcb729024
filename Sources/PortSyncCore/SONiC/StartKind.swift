/// Where a producer key (`PortConfigDone`, `PortInitDone`) stands in APPL_DB.
public enum ProducerKeyPresence: String, Sendable, Hashable, Codable {
    /// Neither the final hash nor a pending entry: APPL_DB was flushed, or nobody wrote it yet.
    case absent
    /// Written by a producer and waiting in the key set for orchagent (`_PORT_TABLE:<key>` exists).
    case pending
    /// Consumed by orchagent: the final hash `PORT_TABLE:<key>` exists.
    case consumed

    /// From `EXISTS` of the final hash and of the temporary one. orchagent's pop moves the fields from one to the
    /// other inside one Lua call, so a written key is always in one of the two: both missing means a flush.
    public init(finalExists: Bool, pendingExists: Bool) {
        if finalExists {
            self = .consumed
        } else if pendingExists {
            self = .pending
        } else {
            self = .absent
        }
    }

    public var isPresent: Bool { self != .absent }
}

/// The three kinds of start (contract statement 31), decided from Redis.
///
/// SONiC restarts its portsyncd only with the whole swss container, so each start of SONiC's daemon is a cold
/// start. A daemon restarted alone (systemd's `Restart=`, a crash, an operator) finds a running switch instead, and
/// must not take it for a cold start: that would bring every front-panel netdev down and ignore it for good.
public enum StartKind: Sendable, Hashable {
    /// swss has just started or flushed APPL_DB: SONiC's cold start (CONFIG_DB copy, `PortConfigDone`, old
    /// interfaces brought down and ignored).
    case cold
    /// SONiC's warm restart: no APPL_DB start-up writes, no old interfaces, `restore_count` + 1.
    case warm(restoreCount: Int)
    /// APPL_DB already holds a `PortConfigDone` that orchagent consumed: the switch runs, this process joins it.
    /// No APPL_DB write (but a missing `PortInitDone`), nothing brought down, every kernel port synced.
    case rejoin

    /// `cold`, `warm` or `rejoin`: the journal's `KIND=`, the metric's label, `/v1/health`'s `start_kind`.
    public var name: String {
        switch self {
        case .cold: "cold"
        case .warm: "warm"
        case .rejoin: "rejoin"
        }
    }

    public static let allNames = ["cold", "warm", "rejoin"]

    /// What SONiC's `WarmStart::checkWarmStart` writes to `restore_count`: the new count when warm, 0 otherwise.
    public var restoreCount: Int {
        if case .warm(let count) = self { return count }
        return 0
    }

    /// Whether the start-up copies CONFIG_DB to APPL_DB, writes `PortConfigDone` and brings old interfaces down.
    public var isCold: Bool { self == .cold }

    /// The decision and the reason for it, in words for the journal.
    public struct Decision: Sendable, Hashable {
        public var kind: StartKind
        public var reason: String
    }

    /// Decides the kind of this start.
    ///
    /// - Parameters:
    ///   - warmEnabled: `WARM_RESTART_ENABLE_TABLE|system` or `|swss` has `enable=true`.
    ///   - restoreCount: `WARM_RESTART_TABLE|portsyncd` `restore_count`, as stored.
    ///   - portConfigDone: where APPL_DB's `PortConfigDone` stands.
    public static func decide(
        warmEnabled: Bool, restoreCount: String?, portConfigDone: ProducerKeyPresence
    ) -> Decision {
        if warmEnabled {
            if let text = restoreCount, let count = Int(text), count >= 0, count < Int.max {
                return Decision(
                    kind: .warm(restoreCount: count + 1), reason: "warm restart enabled, restore_count was \(count)")
            }
            // SONiC falls back to cold; a switch that runs is still not brought down.
            if portConfigDone == .consumed {
                return Decision(
                    kind: .rejoin,
                    reason:
                        "warm restart enabled without a valid restore_count, and APPL_DB holds a consumed PortConfigDone"
                )
            }
            return Decision(kind: .cold, reason: "warm restart enabled without a valid restore_count")
        }
        switch portConfigDone {
        case .consumed:
            return Decision(
                kind: .rejoin,
                reason: "APPL_DB holds PortConfigDone consumed by orchagent: swss runs, this process alone restarted")
        case .pending:
            return Decision(
                kind: .cold,
                reason:
                    "PortConfigDone is in APPL_DB but orchagent has not consumed it yet: the cold start is done again")
        case .absent:
            return Decision(kind: .cold, reason: "APPL_DB has no PortConfigDone (swss started or flushed APPL_DB)")
        }
    }
}

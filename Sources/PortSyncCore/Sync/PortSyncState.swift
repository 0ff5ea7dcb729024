/// The daemon's view of the ports it syncs: the latest STATE_DB content it wants for each port, the configured
/// ports not yet seen (SONiC's waiting set), and where `PortInitDone` stands.
///
/// A value-type state machine owned by the port queue. It performs no I/O: it returns what to write, and the
/// writer reports back what Redis answered. Keeping the latest wanted state of every port is what lets a Redis
/// reconnect write everything again without loss.
public struct PortSyncState: Sendable {
    public enum InitDoneState: String, Sendable, Hashable, Codable {
        /// Not written yet: some configured port has not been seen.
        case pending
        /// Sent, reply not yet in.
        case inFlight = "in_flight"
        /// Acknowledged by Redis. Never written again in this process (statement 10).
        case written
    }

    /// What portsyncd wants STATE_DB `PORT_TABLE|<port>` to be.
    public enum Wanted: Sendable, Hashable {
        case state(PortOperState)
        case deleted
    }

    public private(set) var waiting: Set<String>
    public private(set) var initDone: InitDoneState = .pending
    public private(set) var wanted: [String: Wanted] = [:]
    /// Ports whose last conditional write found them in APPL_DB.
    public private(set) var synced: Set<String> = []
    /// Ports whose last conditional write found no APPL_DB entry (orchagent has not consumed them yet).
    public private(set) var awaitingApplDB: Set<String> = []

    /// - Parameters:
    ///   - configuredPorts: the CONFIG_DB ports, minus those already seen at start (statement 23).
    ///   - initDone: `.written` when APPL_DB already holds `PortInitDone` (a rejoin writes it only if missing).
    public init(waiting configuredPorts: Set<String>, initDone: InitDoneState = .pending) {
        self.waiting = configuredPorts
        self.initDone = initDone == .inFlight ? .pending : initDone
    }

    /// Records an accepted update; the caller writes it.
    public mutating func record(_ update: PortUpdate) {
        switch update {
        case .state(let port, let state): self.wanted[port] = .state(state)
        case .deleted(let port):
            self.wanted[port] = .deleted
            self.synced.remove(port)
            self.awaitingApplDB.remove(port)
        }
    }

    /// The reply to a conditional state write: `applied` when APPL_DB had the port (the port is now seen).
    public mutating func stateWriteCompleted(port: String, applied: Bool) {
        if applied {
            if !self.waiting.isEmpty { self.waiting.remove(port) }
            self.synced.insert(port)
            self.awaitingApplDB.remove(port)
        } else {
            self.synced.remove(port)
            self.awaitingApplDB.insert(port)
        }
    }

    /// Whether `PortInitDone` is to be written now; if so it is marked in flight.
    public mutating func takeInitDoneIfReady() -> Bool {
        guard self.initDone == .pending, self.waiting.isEmpty else { return false }
        self.initDone = .inFlight
        return true
    }

    public mutating func initDoneCompleted(success: Bool) {
        guard self.initDone == .inFlight else { return }
        self.initDone = success ? .written : .pending
    }

    /// A cold start again in the same process (APPL_DB flushed, statement 33): a new waiting set, `PortInitDone` to
    /// be written again, and the ports in `forgetting` (the new old interfaces, ignored from now on) forgotten.
    public mutating func restartCold(waiting configuredPorts: Set<String>, forgetting old: Set<String>) {
        self.waiting = configuredPorts
        self.initDone = .pending
        for port in old {
            self.wanted[port] = nil
            self.synced.remove(port)
            self.awaitingApplDB.remove(port)
        }
    }

    /// The connection to Redis was lost: what was in flight is unknown and goes back to pending.
    public mutating func connectionLost() {
        if self.initDone == .inFlight { self.initDone = .pending }
    }

    /// Where `port`'s STATE_DB row stands, and why it is not synced if it is not (`oldInterfaces`: the names of the
    /// interfaces this process ignores, statement 28).
    public func syncState(of port: String, oldInterfaces: Set<String>) -> PortSyncReason {
        if self.synced.contains(port) { return .synced }
        if self.awaitingApplDB.contains(port) { return .awaitingApplDB }
        if case .state = self.wanted[port] { return .pending }
        if oldInterfaces.contains(port) { return .ignoredOldInterface }
        return .notInKernel
    }

    /// Every port's wanted state, sorted by name, to write again after a reconnect.
    public var resync: [PortUpdate] {
        self.wanted.keys.sorted().compactMap { port in
            switch self.wanted[port] {
            case .state(let state): .state(port: port, state)
            case .deleted: .deleted(port: port)
            case nil: nil
            }
        }
    }
}

/// Why a port's STATE_DB row is what it is (`GET /v1/ports`' `sync_state`, the `portsyncd_configured_ports` label).
public enum PortSyncReason: String, Sendable, Hashable, Codable, CaseIterable {
    /// STATE_DB holds the kernel's latest state of the port.
    case synced
    /// The latest state is on its way to Redis.
    case pending
    /// The kernel has the port, but APPL_DB has no `PORT_TABLE:<port>` yet (orchagent has not consumed it):
    /// SONiC writes nothing then (statement 18).
    case awaitingApplDB = "awaiting_appl_db"
    /// An interface that existed at a cold start: brought down and ignored until a new netdev of that name comes
    /// (statements 22, 28).
    case ignoredOldInterface = "ignored_old_interface"
    /// The kernel has no netdev of that name.
    case notInKernel = "not_in_kernel"
}

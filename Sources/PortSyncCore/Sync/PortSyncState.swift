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

    /// - Parameter configuredPorts: the CONFIG_DB ports, minus those already seen at start (statement 23).
    public init(waiting configuredPorts: Set<String>) {
        self.waiting = configuredPorts
    }

    /// Records an accepted update; the caller writes it.
    public mutating func record(_ update: PortUpdate) {
        switch update {
        case .state(let port, let state): self.wanted[port] = .state(state)
        case .deleted(let port):
            self.wanted[port] = .deleted
            self.synced.remove(port)
        }
    }

    /// The reply to a conditional state write: `applied` when APPL_DB had the port (the port is now seen).
    public mutating func stateWriteCompleted(port: String, applied: Bool) {
        if applied {
            if !self.waiting.isEmpty { self.waiting.remove(port) }
            self.synced.insert(port)
        } else {
            self.synced.remove(port)
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

    /// The connection to Redis was lost: what was in flight is unknown and goes back to pending.
    public mutating func connectionLost() {
        if self.initDone == .inFlight { self.initDone = .pending }
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

public import PortSyncCore

/// What the HTTP API asks the running daemon. Every answer is gathered on the owning queue and handed back as a
/// value; none of these calls makes the port path wait for more than the time to copy its figures.
public protocol DaemonQueries: Sendable {
    /// The daemon's report (the one behind `STATUS=`), gathered now.
    func report() async -> DaemonReport
    /// Every known port: kernel state, Redis sync state, configured or not.
    func ports() async -> [PortView]
    /// The stage events of one kernel message, in order (empty if the ring has forgotten it).
    func trace(_ id: UInt64) async -> [StageEvent]
    /// The event bus.
    var events: EventBus { get }
    /// The channel pipelines (bars, alerts, shard figures).
    var channels: ChannelWorker { get }
}

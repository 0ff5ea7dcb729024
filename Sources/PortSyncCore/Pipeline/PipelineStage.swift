/// The stages every kernel link message goes through, in order.
///
/// ```
///  receive ─▶ prefilter ─▶ extract ─▶ validate ─▶ hand-off ─▶ write (Redis)
///  datagram   header and    attributes   key safety,   bounded,      STATE_DB /
///  → messages name bytes,   → LinkEvent  MTU, team/    per priority  APPL_DB
///             no String     + trace id   master, flap  with a policy
/// ```
public enum PipelineStage: String, Sendable, Hashable, CaseIterable, Codable {
    case receive
    case prefilter
    case extract
    case validate
    case handoff
    case write
}

/// What a stage did with one message.
public enum StageOutcome: String, Sendable, Hashable, CaseIterable, Codable {
    /// Passed on to the next stage.
    case pass
    /// Dropped on purpose (not a port, old interface, …): SONiC ignores it too.
    case ignore
    /// Refused as bad input (malformed, unsafe name, …).
    case reject
    /// Merged into a later state of the same port (the final state is kept).
    case coalesce
    /// Lost to overload, under a policy that allows it; counted.
    case drop
    /// Written to Redis.
    case done
}

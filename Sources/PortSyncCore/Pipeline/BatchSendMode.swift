/// How the hand-off is drained into Redis (`pipeline.batch_send_mode`).
public enum BatchSendMode: String, Sendable, Hashable, CaseIterable, Codable {
    /// One sender: the hand-off is drained on the port queue, most urgent first, into one Redis connection whose
    /// window (`writer_max_in_flight`) every priority shares.
    case sync
    /// One sender per priority, each with its own Redis connection and window, each draining its own priority's
    /// lane (still on the port queue). A backlog of less urgent writes cannot hold urgent ones back. A port's
    /// writes in flight still ride one connection, so per-port order holds.
    case async
}

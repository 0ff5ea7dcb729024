internal import Foundation

extension BusEvent {
    /// The wire form: one line of JSON with sorted keys, e.g.
    /// `{"data":{"admin":"up",…},"id":"5f1c-42","port":"Ethernet0","priority":"high","time_ms":…,"type":"port_state"}`.
    /// `port` is absent for events about no port. The schema of `data` per type is in the OpenAPI document (`/v1/openapi.json`).
    public func json() -> String {
        self.wire.json { self.render() }
    }

    /// The wire JSON, encoded now.
    func render() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body: Data
        do {
            body = try encoder.encode(Wire(self))
        } catch {
            // Every payload is made of strings, numbers and booleans: encoding cannot fail.
            return "{\"id\":\"\(self.id)\",\"type\":\"\(self.type.rawValue)\"}"
        }
        return String(decoding: body, as: UTF8.self)
    }

    private struct Wire: Encodable {
        let event: BusEvent

        init(_ event: BusEvent) { self.event = event }

        enum CodingKeys: String, CodingKey {
            case id, type, priority, port, data
            case timeMillis = "time_ms"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(self.event.id.description, forKey: .id)
            try container.encode(self.event.type.rawValue, forKey: .type)
            try container.encode(self.event.priority.rawValue, forKey: .priority)
            try container.encodeIfPresent(self.event.port, forKey: .port)
            try container.encode(self.event.timeMillis, forKey: .timeMillis)
            switch self.event.data {
            case .portState(let data): try container.encode(data, forKey: .data)
            case .portDeleted(let data): try container.encode(data, forKey: .data)
            case .portHealth(let data): try container.encode(data, forKey: .data)
            case .counterBar(let data): try container.encode(data, forKey: .data)
            case .alertRaised(let data), .alertCleared(let data): try container.encode(data, forKey: .data)
            case .configReloaded(let data): try container.encode(data, forKey: .data)
            case .workerState(let data): try container.encode(WorkerWire(data), forKey: .data)
            case .sync(let data): try container.encode(data, forKey: .data)
            case .reset(let data): try container.encode(data, forKey: .data)
            case .shutdown(let data): try container.encode(data, forKey: .data)
            }
        }
    }

    private struct WorkerWire: Encodable {
        let worker: String
        let criticality: String
        let phase: String
        let restarts: Int
        let error: String?

        init(_ status: WorkerStatus) {
            self.worker = status.name
            self.criticality = status.criticality.rawValue
            self.phase = status.phase.rawValue
            self.restarts = status.restarts
            self.error = status.lastError
        }
    }

    /// The Server-Sent Events frame: `id:`, `event:` and one `data:` line, then a blank line.
    public func sseFrame() -> String {
        self.wire.sse { "id: \(self.id)\nevent: \(self.type.rawValue)\ndata: \(self.json())\n\n" }
    }
}

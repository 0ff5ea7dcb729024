import Foundation
import PortSyncCore
import Testing

/// The event bus as values: ids, filters, the replay ring, slow clients, subscribe/resume, and the wire form.
@Suite("Event bus")
struct EventBusTests {
    static func state(_ port: String, admin: String = "up", oper: String = "up", trace: UInt64 = 1) -> BusEvent {
        BusEvent(
            port: port, timeMillis: 1_700_000_000_000,
            data: .portState(.init(admin: admin, oper: oper, mtu: 9100, carrierChanges: 3, ifindex: 7, traceID: trace)))
    }

    static func low(_ n: Int) -> BusEvent {
        BusEvent(
            timeMillis: Int64(n), priority: .low,
            data: .configReloaded(.init(successful: true)))
    }

    @Test("Event ids print and parse as <epoch>-<sequence>; anything else is refused")
    func ids() {
        #expect(BusEventID(epoch: "5f1c", sequence: 42).description == "5f1c-42")
        #expect(BusEventID("5f1c-42") == BusEventID(epoch: "5f1c", sequence: 42))
        for bad in ["", "42", "-42", "5f1c-", "5F1C-42", "5f1c-4x", "zz-1", "5f1c-99999999999999999999999", "a\u{0}-1"]
        {
            #expect(BusEventID(bad) == nil, "\(bad)")
        }
    }

    @Test("Filters: types and port patterns; unknown types and hostile patterns are refused with a message")
    func filters() throws {
        let filter = try EventFilter.parse(events: "port_state,alert_raised", ports: "Ethernet0,Ethernet1*")
        #expect(filter.matches(type: .portState, port: "Ethernet0"))
        #expect(filter.matches(type: .portState, port: "Ethernet12"))
        #expect(!filter.matches(type: .portState, port: "Ethernet4"))
        #expect(!filter.matches(type: .portDeleted, port: "Ethernet0"))
        #expect(filter.matches(type: .alertRaised, port: nil))
        #expect(try EventFilter.parse(events: nil, ports: nil) == EventFilter())
        #expect(try EventFilter.parse(events: ",,", ports: "") == EventFilter())
        #expect(throws: EventFilter.Invalid.self) { try EventFilter.parse(events: "port_sate", ports: nil) }
        do {
            _ = try EventFilter.parse(events: "bogus\u{7}", ports: nil)
        } catch {
            #expect(error.message.hasPrefix("unknown event type \"bogus\\u{7}\" (known: port_state, port_deleted"))
        }
        for bad in ["Ethernet|0", "Eth*0", "*x", "Ethernet0000000000", "a b", "Ethernet\u{0}"] {
            #expect(throws: EventFilter.Invalid.self, "\(bad)") { try EventFilter.parse(events: nil, ports: bad) }
        }
        #expect(try EventFilter.parse(events: nil, ports: "*").matches(type: .portState, port: "PortChannel1"))
    }

    @Test("The replay ring answers the events after an id, or says it is too old")
    func ring() {
        var ring = ReplayRing(capacity: 4)
        #expect(ring.events(after: 0) == .events([]))
        for n in 1...6 {
            var event = Self.state("Ethernet0", trace: UInt64(n))
            event.id = BusEventID(epoch: "e", sequence: UInt64(n))
            ring.append(event)
        }
        #expect(ring.oldest == 3 && ring.newest == 6)
        guard case .events(let after3) = ring.events(after: 3) else {
            Issue.record("after 3")
            return
        }
        #expect(after3.map(\.id.sequence) == [4, 5, 6])
        guard case .events(let after2) = ring.events(after: 2) else {
            Issue.record("after 2: 3 is still in the ring")
            return
        }
        #expect(after2.map(\.id.sequence) == [3, 4, 5, 6])
        #expect(ring.events(after: 1) == .tooOld)
        #expect(ring.events(after: 6) == .events([]))
        #expect(ring.events(after: 7) == .tooOld)
    }

    @Test("A full client buffer drops low priority first, then closes the client as slow")
    func slowClient() {
        var buffer = ClientBuffer(capacity: 3)
        #expect(buffer.offer(Self.low(1)) == .queued)
        #expect(buffer.offer(Self.state("Ethernet0")) == .queued)
        #expect(buffer.offer(Self.state("Ethernet4")) == .queued)
        #expect(buffer.offer(Self.low(2)) == .droppedLow)  // the offered low one goes
        #expect(buffer.offer(Self.state("Ethernet8")) == .droppedLow)  // the queued low one goes
        #expect(buffer.takeAll().map(\.port) == ["Ethernet0", "Ethernet4", "Ethernet8"])
        for port in ["a", "b", "c"] { #expect(buffer.offer(Self.state(port)) == .queued) }
        #expect(buffer.offer(Self.state("d")) == .slow)
        #expect(buffer.offer(Self.low(3)) == .slow)
        #expect(buffer.droppedLow == 2)
        var many = ClientBuffer(capacity: 2)
        let (dropped, slow) = many.offer(contentsOf: [Self.low(1), Self.state("a"), Self.state("b"), Self.state("c")])
        #expect(dropped == 1 && slow)
    }

    @Test("Subscribe: snapshot of matching ports, then sync; live events follow; deleted ports leave the snapshot")
    func subscribe() {
        var bus = EventBusState(epoch: "ab", replayCapacity: 100)
        _ = bus.publish(Self.state("Ethernet4"))
        _ = bus.publish(Self.state("Ethernet0", admin: "down"))
        _ = bus.publish(Self.state("Ethernet8"))
        _ = bus.publish(BusEvent(port: "Ethernet8", timeMillis: 0, data: .portDeleted(.init(ifindex: 9, traceID: 4))))
        let filter = EventFilter(ports: ["Ethernet*"])
        let (id, initial) = bus.subscribe(filter: filter, lastEventID: nil, nowMillis: 5)
        #expect(initial.map(\.type) == [.portState, .portState, .sync])
        #expect(initial.map(\.port) == ["Ethernet0", "Ethernet4", nil])
        #expect(initial.last?.id == BusEventID(epoch: "ab", sequence: 4))
        #expect(initial.last?.data == .sync(.init(ports: 2)))
        let live = bus.publish(Self.state("Ethernet0"))
        #expect(live.id.description == "ab-5")
        #expect(bus.isSubscribed(id) && bus.subscriberCount == 1)
        bus.unsubscribe(id)
        #expect(!bus.isSubscribed(id) && bus.subscriberCount == 0)
    }

    @Test("Resume: after an id of this epoch exactly the events after it; another epoch or a lost id: reset")
    func resume() {
        var bus = EventBusState(epoch: "ab", replayCapacity: 3)
        for n in 1...5 { _ = bus.publish(Self.state("Ethernet\(n % 2 == 0 ? 0 : 4)", trace: UInt64(n))) }
        let (_, resumed) = bus.subscribe(filter: EventFilter(ports: ["Ethernet0"]), lastEventID: "ab-2", nowMillis: 0)
        #expect(resumed.map(\.id.sequence) == [4])  // 3 and 5 are Ethernet4's
        for (text, reason) in [
            ("ab-1", "too_old"), ("cd-4", "epoch_changed"), ("garbage", "unknown"), ("ab-9", "too_old"),
        ] {
            let (_, initial) = bus.subscribe(filter: EventFilter(), lastEventID: text, nowMillis: 0)
            #expect(initial.first?.data == .reset(.init(reason: reason, epoch: "ab")), "\(text)")
            #expect(initial.last?.type == .sync, "\(text)")
            #expect(initial.count == 4, "\(text): reset, Ethernet0, Ethernet4, sync")
        }
        #expect(bus.counters.resets == ["too_old": 2, "epoch_changed": 1, "unknown": 1])
    }

    @Test("Route: each subscriber gets the events its filter matches, in order; one that matches none gets nothing")
    func route() {
        var bus = EventBusState(epoch: "ab", replayCapacity: 100)
        var groups = SubscriberGroups<String>()
        groups.add(1, filter: EventFilter(), "all")
        groups.add(2, filter: EventFilter(), "alsoAll")
        groups.add(3, filter: EventFilter(ports: ["Ethernet4"]), "four")
        groups.add(4, filter: EventFilter(types: [.alertRaised]), "alerts")
        let batch = ["Ethernet0", "Ethernet4", "Ethernet8", "Ethernet4"].map { bus.publish(Self.state($0)) }
        let routed = groups.route(batch)
        #expect(routed.count == 2, "one entry per filter that matched: the whole stream, and Ethernet4's")
        var got: [String: [UInt64]] = [:]
        for (sinks, events) in routed { for sink in sinks { got[sink] = events.map(\.id.sequence) } }
        #expect(got == ["all": [1, 2, 3, 4], "alsoAll": [1, 2, 3, 4], "four": [2, 4]])
        groups.remove(3)
        groups.add(2, filter: EventFilter(ports: ["Ethernet8"]), "alsoAll")  // a new filter replaces the old
        #expect(groups.count == 3 && Set(groups.all) == ["all", "alsoAll", "alerts"])
        got = [:]
        for (sinks, events) in groups.route(batch) { for sink in sinks { got[sink] = events.map(\.id.sequence) } }
        #expect(got == ["all": [1, 2, 3, 4], "alsoAll": [3]])
    }

    @Test("Wire form: JSON with sorted keys and the documented fields; an SSE frame around it")
    func wire() throws {
        var event = Self.state("Ethernet0", trace: 77)
        event.id = BusEventID(epoch: "ab", sequence: 9)
        #expect(
            event.json()
                == #"{"data":{"admin":"up","carrier_changes":3,"ifindex":7,"mtu":9100,"oper":"up","trace_id":77},"#
                + #""id":"ab-9","port":"Ethernet0","priority":"high","time_ms":1700000000000,"type":"port_state"}"#)
        #expect(event.sseFrame() == "id: ab-9\nevent: port_state\ndata: \(event.json())\n\n")
        let worker = BusEvent(
            timeMillis: 1,
            data: .workerState(WorkerStatus(name: "analytics", criticality: .optional, phase: .failed, restarts: 5)))
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(worker.json().utf8)) as? [String: Any])
        #expect(object["port"] == nil)
        let data = try #require(object["data"] as? [String: Any])
        #expect(data["worker"] as? String == "analytics" && data["phase"] as? String == "failed")
        #expect(data["restarts"] as? Int == 5)
    }
}

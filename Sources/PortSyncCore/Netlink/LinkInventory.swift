/// The interfaces a `RTM_GETLINK` dump lists: what the kernel has at start-up, by ifindex and name.
///
/// The start-up decisions that touch other daemons' view (the old-interface snapshot of statement 22, the stale
/// STATE_DB rows of statement 32) are taken from the dump itself, not from a second listing: one source, already in
/// hand, that cannot fail on its own (`if_nameindex()` opens a socket, and returns nothing when descriptors run
/// out: a stale-row sweep trusting that would delete the row of every live port).
public struct LinkInventory: Sendable, Hashable {
    /// Every interface of the dump, in dump order.
    public private(set) var links: [(index: Int32, name: InterfaceName)] = []
    /// Messages of the dump that did not decode. The inventory is then incomplete: a caller about to delete
    /// something for an interface it does not list must not trust it.
    public private(set) var malformed = 0

    public init(dump datagrams: [[UInt8]]) {
        for datagram in datagrams {
            datagram.withUnsafeBytes { raw in
                NetlinkDecoder.forEach(in: raw) { item in
                    switch item {
                    case .link(let link) where link.kind == .newLink:
                        if let name = link.name {
                            self.links.append((link.ifindex, name))
                        } else {
                            self.malformed += 1
                        }
                    case .malformed: self.malformed += 1
                    default: break
                    }
                }
            }
        }
    }

    /// Whether every message decoded, so that the names listed are all the kernel has.
    public var isComplete: Bool { self.malformed == 0 }

    /// The names, as strings.
    public var names: Set<String> { Set(self.links.map(\.name.string)) }

    public static func == (lhs: LinkInventory, rhs: LinkInventory) -> Bool {
        lhs.malformed == rhs.malformed && lhs.links.elementsEqual(rhs.links) { $0 == $1 }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.malformed)
        for link in self.links {
            hasher.combine(link.index)
            hasher.combine(link.name)
        }
    }
}

/// SplitMix64: a tiny seeded generator that gives the same numbers for the same seed on every build, so that a
/// randomised run reproduces (the tests' random scenarios, `portsyncd-bench channels trace`).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { self.state = seed }

    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound`, 0 if `bound` is 0 (a slight modulo bias does not matter here).
    public mutating func next(below bound: UInt64) -> UInt64 { bound == 0 ? 0 : self.next() % bound }

    /// The same, as an `Int`.
    public mutating func below(_ bound: Int) -> Int { Int(self.next(below: UInt64(bound))) }
}

/// An open-addressing hash index from a port's key to the index of its entry in its owner's array, for the
/// per-message look-ups of the validate stage and the hand-off.
///
/// `Dictionary` hashes a key with SipHash and re-hashes it on every access; a port name is at most 15 bytes, two
/// machine words, so a keyed multiply-xor hash of those words (`PortHash`) does the same job in a few instructions.
/// Each bucket keeps its entry's number and hash, so a look-up compares keys only on a full hash match (the owner
/// does, in `find`'s `matches`), and moving buckets (growing, deleting) never hashes a key again.
///
/// Linear probing, a power-of-two bucket count at most half full, backward-shift deletion (no tombstones), so a
/// look-up touches one or two buckets. It grows when half full and never shrinks; it allocates only when it grows.
@usableFromInline
struct PortHashIndex: Sendable {
    @usableFromInline
    struct Bucket: Sendable {
        /// The entry's number, `PortHashIndex.empty` where none.
        @usableFromInline var entry: Int32
        @usableFromInline var hash: UInt64

        @inlinable
        init(entry: Int32, hash: UInt64) {
            self.entry = entry
            self.hash = hash
        }
    }

    @usableFromInline var buckets: ContiguousArray<Bucket>
    /// Entries indexed.
    @usableFromInline var count = 0

    @inlinable static var empty: Int32 { -1 }

    @inlinable
    init(minimumCapacity: Int = 16) {
        var size = 16
        while size < 2 * minimumCapacity { size *= 2 }
        self.buckets = ContiguousArray(repeating: Bucket(entry: Self.empty, hash: 0), count: size)
    }

    @inlinable var mask: Int { self.buckets.count - 1 }

    /// The bucket of the entry with `hash` for which `matches` holds, or the empty bucket where such an entry
    /// would go.
    @inlinable
    func find(hash: UInt64, matches: (Int32) -> Bool) -> (bucket: Int, found: Bool) {
        var bucket = Int(truncatingIfNeeded: hash) & self.mask
        while true {
            let slot = self.buckets[bucket]
            if slot.entry == Self.empty { return (bucket, false) }
            if slot.hash == hash && matches(slot.entry) { return (bucket, true) }
            bucket = (bucket + 1) & self.mask
        }
    }

    /// The entry in `bucket`.
    @inlinable
    subscript(bucket: Int) -> Int32 {
        get { self.buckets[bucket].entry }
        set { self.buckets[bucket].entry = newValue }
    }

    /// Puts `entry` with `hash` in `bucket`, an empty bucket `find` returned for it; grows once half full.
    @inlinable
    mutating func insert(_ entry: Int32, hash: UInt64, at bucket: Int) {
        self.buckets[bucket] = Bucket(entry: entry, hash: hash)
        self.count += 1
        if 2 * self.count > self.buckets.count { self.grow() }
    }

    @usableFromInline
    mutating func grow() {
        let old = self.buckets
        self.buckets = ContiguousArray(repeating: Bucket(entry: Self.empty, hash: 0), count: 2 * old.count)
        for slot in old where slot.entry != Self.empty {
            var target = Int(truncatingIfNeeded: slot.hash) & self.mask
            while self.buckets[target].entry != Self.empty { target = (target + 1) & self.mask }
            self.buckets[target] = slot
        }
    }

    /// Removes the entry in `bucket` and shifts back the entries probed past it.
    @inlinable
    mutating func remove(at bucket: Int) {
        var hole = bucket
        var next = bucket
        while true {
            next = (next + 1) & self.mask
            let slot = self.buckets[next]
            if slot.entry == Self.empty { break }
            let home = Int(truncatingIfNeeded: slot.hash) & self.mask
            // The entry may move into the hole unless its home lies cyclically in (hole, next].
            let stays = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next)
            if !stays {
                self.buckets[hole] = slot
                hole = next
            }
        }
        self.buckets[hole].entry = Self.empty
        self.count -= 1
    }

    /// Every entry number indexed, in bucket order.
    var entries: [Int32] { self.buckets.map(\.entry).filter { $0 != Self.empty } }
}

/// The hash `PortHashIndex` uses: a keyed multiply-xor of a key's bytes, 16 at a time (a port name is one round).
///
/// The key (`seed`) is drawn per table, so which names collide cannot be chosen from outside.
@usableFromInline
enum PortHash {
    /// A fresh random key.
    @inlinable
    static func randomSeed() -> UInt64 {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }

    @inlinable
    static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        return product.high ^ product.low
    }

    /// The hash of up to 16 bytes given as two little-endian words (zero-padded) and their count.
    @inlinable
    static func hash(low: UInt64, high: UInt64, count: Int, seed: UInt64) -> UInt64 {
        self.mix(low ^ seed ^ 0xA076_1D64_78BD_642F, high ^ UInt64(truncatingIfNeeded: count) ^ 0xE703_7ED1_A0B4_28DB)
    }

    /// The hash of `bytes`; equal to `hash(low:high:count:seed:)` of the same bytes when there are at most 16.
    @inlinable
    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var state = seed
        var offset = 0
        repeat {
            let chunk = min(16, bytes.count - offset)
            var words: (UInt64, UInt64) = (0, 0)
            withUnsafeMutableBytes(of: &words) { raw in
                raw.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + chunk)]))
            }
            state = self.hash(
                low: UInt64(littleEndian: words.0), high: UInt64(littleEndian: words.1),
                count: offset == 0 ? bytes.count : chunk, seed: state)
            offset += chunk
        } while offset < bytes.count
        return state
    }

    /// The hash of a string's UTF-8.
    @inlinable
    static func hash(_ string: String, seed: UInt64) -> UInt64 {
        var string = string
        return string.withUTF8 { self.hash(UnsafeRawBufferPointer($0), seed: seed) }
    }
}

/// A fixed-size set of bits, 64 to a word.
public struct BitSet: Equatable, Sendable {
    public let count: Int
    public private(set) var words: [UInt64]

    public init(count: Int, filled: Bool = false) {
        self.count = count
        words = [UInt64](repeating: filled ? ~0 : 0, count: (count + 63) / 64)
        if filled { clearTail() }
    }

    public subscript(i: Int) -> Bool {
        get { words[i >> 6] & (1 << UInt64(i & 63)) != 0 }
        set {
            if newValue { words[i >> 6] |= 1 << UInt64(i & 63) } else { words[i >> 6] &= ~(1 << UInt64(i & 63)) }
        }
    }

    /// Number of set bits.
    public var cardinality: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }

    public static func | (a: BitSet, b: BitSet) -> BitSet { a.combined(b) { $0 | $1 } }
    public static func & (a: BitSet, b: BitSet) -> BitSet { a.combined(b) { $0 & $1 } }
    public static func - (a: BitSet, b: BitSet) -> BitSet { a.combined(b) { $0 & ~$1 } }
    public static prefix func ~ (a: BitSet) -> BitSet {
        var out = a
        for i in out.words.indices { out.words[i] = ~out.words[i] }
        out.clearTail()
        return out
    }

    private func combined(_ other: BitSet, _ f: (UInt64, UInt64) -> UInt64) -> BitSet {
        precondition(count == other.count, "bit sets of different sizes")
        var out = self
        for i in out.words.indices { out.words[i] = f(words[i], other.words[i]) }
        return out
    }

    /// Bits past `count` in the last word stay zero, so counts and equality hold.
    private mutating func clearTail() {
        let extra = words.count * 64 - count
        if extra > 0, !words.isEmpty { words[words.count - 1] &= ~0 >> UInt64(extra) }
    }
}

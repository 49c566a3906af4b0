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

    /// Sets the bits in `range` for which `isSet` holds, asked in index order; a word
    /// at a time (selections over whole models write tens of millions of bits).
    public mutating func set(_ range: Range<Int>, where isSet: (Int) -> Bool) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "bit range out of bounds")
        words.withUnsafeMutableBufferPointer { w in
            var i = range.lowerBound
            while i < range.upperBound {
                let word = i >> 6, end = min(range.upperBound, (word + 1) << 6)
                var bits: UInt64 = 0
                for j in i..<end where isSet(j) { bits |= 1 << UInt64(j & 63) }
                w[word] |= bits
                i = end
            }
        }
    }

    /// Calls `body` with the index of every set bit, in order, skipping clear words whole.
    public func forEachSetBit(_ body: (Int) -> Void) {
        for (k, word) in words.enumerated() where word != 0 {
            var rest = word
            while rest != 0 { body(k << 6 | rest.trailingZeroBitCount); rest &= rest - 1 }
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

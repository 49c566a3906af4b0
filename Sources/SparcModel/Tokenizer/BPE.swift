import Foundation
import HeapModule

/// A string key compared scalar by scalar. Swift's `String` equality is canonical
/// equivalence ("é" == "e\u{301}"), which would merge distinct vocabulary entries.
struct ExactKey: Hashable, Sendable {
    let s: String
    init(_ s: String) { self.s = s }
    init<S: Sequence<Unicode.Scalar>>(scalars: S) { s = String(String.UnicodeScalarView(scalars)) }
    static func == (a: ExactKey, b: ExactKey) -> Bool { a.s.utf8.elementsEqual(b.s.utf8) }
    func hash(into h: inout Hasher) {
        var s = self.s
        s.withUTF8 { h.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// The BPE model options of tokenizer.json beyond vocabulary and merges.
public struct BPEOptions: Equatable, Sendable {
    /// Characters missing from the vocabulary become `<0xAB>` byte tokens.
    public var byteFallback = false
    /// Consecutive unknown characters become a single `unk_token`.
    public var fuseUnk = false
    public var unkToken: String? = nil
    /// If set, a whole pre-token found in the vocabulary is emitted without merging.
    public var ignoreMerges = false
    /// Prefix of every symbol but a word's first (WordPiece style, e.g. "##").
    public var continuingSubwordPrefix: String? = nil
    /// Suffix of a word's last symbol (e.g. "</w>").
    public var endOfWordSuffix: String? = nil
    public init() {}
}

/// BPE over one pre-token, in O(n log n): symbols form a linked list, candidate merges
/// sit in a min-heap keyed by (rank, position), and a popped candidate is applied only if
/// the pair at its position is still the one it was made for (as `tokenizers`' word.rs).
struct BPEModel: Sendable {
    /// (left id, right id) → rank << 32 | merged id.
    let merges: PairTable
    /// Vocabulary entries that are one scalar, the usual initial symbols.
    let singleScalar: [Unicode.Scalar: Int32]
    /// The same for ASCII, by code (-1: not in the vocabulary), to skip hashing.
    let asciiIds: [Int32]
    let vocab: [ExactKey: Int32]
    /// Ids of `<0x00>`…`<0xFF>` when byte fallback is on and all 256 exist.
    let byteIds: [Int32]?
    let unkId: Int32?
    let options: BPEOptions
    @inline(__always) static func pairKey(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }

    func tokenize(_ word: [Unicode.Scalar]) -> [Int32] {
        var work = 0
        return tokenize(word, work: &work)
    }

    /// `work` grows by the heap operations done, to check the linear-time bound in tests.
    func tokenize(_ word: [Unicode.Scalar], work: inout Int) -> [Int32] {
        if word.isEmpty { return [] }
        if options.ignoreMerges, let id = vocab[ExactKey(scalars: word)] { return [id] }
        var ids = initialSymbols(word)
        if ids.count < 2 { return ids }

        let n = ids.count
        var next = [Int32](unsafeUninitializedCapacity: n) { b, c in for i in 0..<n { b[i] = i + 1 < n ? Int32(i + 1) : -1 }; c = n }
        var prev = [Int32](unsafeUninitializedCapacity: n) { b, c in for i in 0..<n { b[i] = Int32(i - 1) }; c = n }
        var alive = [Bool](repeating: true, count: n)
        // Keys: rank in the high half, position in the low half, so equal ranks pop leftmost first.
        var heap = Heap<UInt64>()
        for i in 0..<(n - 1) {
            if let m = merges[Self.pairKey(ids[i], ids[i + 1])] { heap.insert((m >> 32) << 32 | UInt64(i)) }
        }
        var steps = 0
        while let top = heap.popMin() {
            work += 1
            let pos = Int(top & 0xFFFF_FFFF), rank = top >> 32
            let nx = Int(next[pos])
            guard alive[pos], nx >= 0, let m = merges[Self.pairKey(ids[pos], ids[nx])], m >> 32 == rank else { continue }
            steps += 1
            ids[pos] = Int32(truncatingIfNeeded: m & 0xFFFF_FFFF)
            alive[nx] = false
            let after = next[nx]
            next[pos] = after
            if after >= 0 { prev[Int(after)] = Int32(pos) }
            let p = Int(prev[pos])
            if p >= 0, let m2 = merges[Self.pairKey(ids[p], ids[pos])] { heap.insert((m2 >> 32) << 32 | UInt64(p)) }
            if after >= 0, let m2 = merges[Self.pairKey(ids[pos], ids[Int(after)])] { heap.insert((m2 >> 32) << 32 | UInt64(pos)) }
        }
        var out: [Int32] = []
        out.reserveCapacity(n - steps)
        var i = 0
        while i >= 0 { out.append(ids[i]); i = Int(next[i]) }  // position 0 is never merged away
        return out
    }

    /// One id per character (with the subword prefix / word suffix when configured); a
    /// missing character becomes byte tokens, else `unk` (fused when asked), else nothing.
    private func initialSymbols(_ word: [Unicode.Scalar]) -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(word.count)
        let plain = options.continuingSubwordPrefix == nil && options.endOfWordSuffix == nil
        var pendingUnk = false
        for (k, c) in word.enumerated() {
            let id: Int32?
            if plain {
                id = c.value < 128 ? (asciiIds[Int(c.value)] >= 0 ? asciiIds[Int(c.value)] : nil) : singleScalar[c]
            } else {
                var s = String(c)
                if k > 0, let p = options.continuingSubwordPrefix { s = p + s }
                if k == word.count - 1, let x = options.endOfWordSuffix { s += x }
                id = vocab[ExactKey(s)]
            }
            if let id {
                if pendingUnk, let u = unkId { ids.append(u); pendingUnk = false }
                ids.append(id)
                continue
            }
            if let byteIds {
                // As tokenizers: byte tokens are added without first closing a pending unk.
                for b in String(c).utf8 { ids.append(byteIds[Int(b)]) }
                continue
            }
            if let u = unkId {
                if pendingUnk && !options.fuseUnk { ids.append(u) }
                pendingUnk = true
            }
        }
        if pendingUnk, let u = unkId { ids.append(u) }
        return ids
    }
}

/// Open-addressing hash table from a merge pair to its rank and result. The BPE inner loop
/// does a few look-ups per merge; a multiplicative hash is much cheaper than `Hasher`.
struct PairTable: Sendable {
    private var keys: [UInt64]
    private var values: [UInt64]
    private let shift: UInt64
    private static let empty = UInt64.max  // no real key: ids are below 2³¹

    init(capacityFor n: Int) {
        var bits: UInt64 = 4
        while (1 << bits) < 2 * max(n, 1) { bits += 1 }
        keys = [UInt64](repeating: Self.empty, count: 1 << bits)
        values = [UInt64](repeating: 0, count: 1 << bits)
        shift = 64 - bits
    }

    @inline(__always) private func slot(_ key: UInt64) -> Int { Int((key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    /// Inserts or replaces.
    mutating func set(_ key: UInt64, _ value: UInt64) {
        let mask = keys.count - 1
        var i = slot(key)
        while keys[i] != Self.empty && keys[i] != key { i = (i + 1) & mask }
        keys[i] = key
        values[i] = value
    }

    @inline(__always) subscript(key: UInt64) -> UInt64? {
        let mask = keys.count - 1
        var i = slot(key)
        while true {
            let k = keys[i]
            if k == key { return values[i] }
            if k == Self.empty { return nil }
            i = (i + 1) & mask
        }
    }
}

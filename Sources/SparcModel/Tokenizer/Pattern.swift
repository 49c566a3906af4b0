import Foundation

/// A pattern as tokenizer.json writes it: `{"String": "..."}` (a literal) or
/// `{"Regex": "..."}`. Text is handled as arrays of Unicode scalars throughout the
/// tokenizer, since `tokenizers` works on `char`s and Swift's `String` comparison would
/// treat canonically equivalent text ("é" and "e\u{301}") as equal.
public enum TokenPattern: Equatable, Sendable {
    case string(String)
    case regex(String)
}

/// A pattern ready to match: the GPT-2 / Llama-3 / Qwen2 split regexes by hand (exact
/// Oniguruma semantics and fast), literals by scanning, any other regex with
/// `NSRegularExpression` (ICU; its `\s`, `\p{L}`, `\p{N}` agree with Oniguruma's).
struct CompiledPattern: @unchecked Sendable {  // NSRegularExpression is immutable and thread-safe
    private enum Kind {
        case known(SplitPattern)
        case literal([Unicode.Scalar])
        case regex(NSRegularExpression)
    }
    private let kind: Kind

    init(_ pattern: TokenPattern) throws {
        switch pattern {
        case .string(let s):
            kind = .literal(Array(s.unicodeScalars))
        case .regex(let source):
            if let known = SplitPattern.sources[source] {
                kind = .known(known)
            } else {
                do {
                    kind = .regex(try NSRegularExpression(pattern: source))
                } catch {
                    throw Tokenizer.Error.invalid("the regex \(source.debugDescription) does not compile: \(error.localizedDescription)")
                }
            }
        }
    }

    /// The whole of `u` cut into consecutive ranges, each flagged as a match or not (as
    /// `tokenizers`' `Pattern::find_matches`). An empty input gives one empty non-match.
    func findMatches(_ u: [Unicode.Scalar]) -> [(range: Range<Int>, isMatch: Bool)] {
        if u.isEmpty { return [(0..<0, false)] }
        var out: [(range: Range<Int>, isMatch: Bool)] = []
        var prev = 0
        func add(_ r: Range<Int>) {
            if prev < r.lowerBound { out.append((prev..<r.lowerBound, false)) }
            out.append((r, true))
            prev = r.upperBound
        }
        switch kind {
        case .known(let p):
            var i = 0
            while i < u.count {
                let n = p.matchLength(u, i)
                add(i..<(i + n))
                i += n
            }
        case .literal(let lit):
            guard !lit.isEmpty else { return [(0..<u.count, false)] }
            var i = 0
            while i + lit.count <= u.count {
                if u[i] == lit[0] && u[i..<(i + lit.count)].elementsEqual(lit) {
                    add(i..<(i + lit.count))
                    i += lit.count
                } else {
                    i += 1
                }
            }
        case .regex(let re):
            let s = String(String.UnicodeScalarView(u))
            // NSRegularExpression speaks UTF-16 offsets; map them back to scalar indices.
            var scalarAt = [Int](repeating: 0, count: s.utf16.count + 1)
            var o = 0
            for (k, c) in u.enumerated() {
                scalarAt[o] = k
                o += c.value > 0xFFFF ? 2 : 1
            }
            scalarAt[o] = u.count
            for m in re.matches(in: s, range: NSRange(location: 0, length: o)) {
                let lo = scalarAt[m.range.location], hi = scalarAt[m.range.location + m.range.length]
                add(lo..<hi)
            }
        }
        if prev < u.count { out.append((prev..<u.count, false)) }
        return out
    }

    /// `u` with every match replaced by `content` (the `Replace` normalizer and decoder).
    func replace(_ u: [Unicode.Scalar], with content: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(u.count)
        for (r, isMatch) in findMatches(u) {
            if isMatch { out += content } else { out += u[r] }
        }
        return out
    }
}

/// How `Split` (and the pre-tokenizers built on it) treats the matched delimiters.
public enum SplitBehavior: String, Equatable, Sendable {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"

    /// The pieces of `u` given its match list, as `NormalizedString::split` makes them
    /// (empty pieces are dropped by the caller).
    func apply(_ matches: [(range: Range<Int>, isMatch: Bool)]) -> [Range<Int>] {
        switch self {
        case .isolated:
            return matches.map(\.range)
        case .removed:
            return matches.filter { !$0.isMatch }.map(\.range)
        case .contiguous:
            // Runs of adjacent matches become one piece.
            var out: [Range<Int>] = []
            var previousMatch = false
            for (r, m) in matches {
                if m == previousMatch, let last = out.last { out[out.count - 1] = last.lowerBound..<r.upperBound }
                else { out.append(r) }
                previousMatch = m
            }
            return out
        case .mergedWithPrevious:
            var out: [Range<Int>] = []
            var previousMatch = false
            for (r, m) in matches {
                if m && !previousMatch, let last = out.last { out[out.count - 1] = last.lowerBound..<r.upperBound }
                else { out.append(r) }
                previousMatch = m
            }
            return out
        case .mergedWithNext:
            var out: [Range<Int>] = []
            var previousMatch = false
            for (r, m) in matches.reversed() {
                if m && !previousMatch, let last = out.last { out[out.count - 1] = r.lowerBound..<last.upperBound }
                else { out.append(r) }
                previousMatch = m
            }
            return out.reversed()
        }
    }
}

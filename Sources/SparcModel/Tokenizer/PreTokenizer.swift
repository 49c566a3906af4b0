/// Pre-tokenization as the Hugging Face `tokenizers` library does it: a sequence of
/// splitting steps, each applied to every piece the previous step made.
///
/// The GPT-2, Llama-3 and Qwen2 split patterns are matched by hand rather than by a regex
/// engine so that `\s`, `\p{L}` and `\p{N}` mean exactly what they mean in Oniguruma
/// (Unicode White_Space and general categories L* and N*), as in `tokenizers`, and fast.
public enum PreTokenizerStep: Equatable, Sendable {
    /// `Digits`: split off digits, each on its own (`individual`) or as runs.
    case digits(individual: Bool)
    /// `Split` with a known pattern, behaviour `Isolated`, not inverted.
    case split(SplitPattern)
    /// `ByteLevel`: optional prefix space, optional GPT-2 split (the byte mapping itself
    /// is done by the tokenizer after all steps).
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// `Split` in general.
    case splitBy(TokenPattern, behavior: SplitBehavior, invert: Bool)
    /// `Metaspace`: spaces become `replacement`, which is prepended per `prependScheme`;
    /// with `split`, each piece starts at a replacement character.
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme, split: Bool)
    /// `Whitespace`: runs of word characters and runs of other non-space characters.
    case whitespace
    /// `WhitespaceSplit`: split on whitespace, dropping it.
    case whitespaceSplit
    /// `Punctuation`: each punctuation character is a delimiter.
    case punctuation(SplitBehavior)
}

public enum PrependScheme: String, Equatable, Sendable {
    case first, always, never
}

public enum SplitPattern: String, Sendable {
    case gpt2, llama3, qwen2

    /// The regexes as written in tokenizer.json files, to recognise them.
    static let sources: [String: SplitPattern] = [
        #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#: .gpt2,
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .llama3,
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .qwen2,
    ]

    var source: String { SplitPattern.sources.first { $0.value == self }?.key ?? "" }

    /// Length (≥ 1) of the match at `i`; every character is covered by some alternative.
    func matchLength(_ u: [Unicode.Scalar], _ i: Int) -> Int {
        switch self {
        case .gpt2: return Self.matchGPT2(u, i)
        case .llama3: return Self.matchLlama3(u, i, maxDigits: 3)
        case .qwen2: return Self.matchLlama3(u, i, maxDigits: 1)
        }
    }

    // MARK: the patterns, alternative by alternative; each returns the match length ≥ 1

    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    private static func matchGPT2(_ u: [Unicode.Scalar], _ i: Int) -> Int {
        if let n = contraction(u, i, caseInsensitive: false) { return n }
        let afterSpace = u[i] == " " ? i + 1 : i
        if afterSpace < u.count {
            if isL(u[afterSpace]) { return run(u, afterSpace, isL) - i }
            if isN(u[afterSpace]) { return run(u, afterSpace, isN) - i }
            if isOther(u[afterSpace]) { return run(u, afterSpace, isOther) - i }
        }
        return whitespace(u, i)
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    private static func matchLlama3(_ u: [Unicode.Scalar], _ i: Int, maxDigits: Int) -> Int {
        if let n = contraction(u, i, caseInsensitive: true) { return n }
        let c = u[i]
        if !isNewline(c) && !isL(c) && !isN(c), i + 1 < u.count, isL(u[i + 1]) { return run(u, i + 1, isL) - i }
        if isL(c) { return run(u, i, isL) - i }
        if isN(c) { return min(run(u, i, isN) - i, maxDigits) }
        let afterSpace = c == " " ? i + 1 : i
        if afterSpace < u.count, isOther(u[afterSpace]) {
            return run(run(u, afterSpace, isOther), isNewline, in: u) - i
        }
        if isSpace(c) {
            let end = run(u, i, isSpace)
            if let lastNewline = (i..<end).last(where: { isNewline(u[$0]) }) { return lastNewline + 1 - i }
        }
        return whitespace(u, i)
    }

    /// `\s+(?!\S)|\s+` at i: a whitespace run, less its last character when a
    /// non-space follows and the run is longer than one; else one character (u[i] is
    /// whitespace here, or any other character as a safe fallback).
    private static func whitespace(_ u: [Unicode.Scalar], _ i: Int) -> Int {
        guard isSpace(u[i]) else { return 1 }
        let end = run(u, i, isSpace)
        if end == u.count { return end - i }
        return end - i > 1 ? end - i - 1 : 1
    }

    private static func contraction(_ u: [Unicode.Scalar], _ i: Int, caseInsensitive: Bool) -> Int? {
        guard u[i] == "'", i + 1 < u.count else { return nil }
        func lower(_ c: Unicode.Scalar) -> Unicode.Scalar {
            caseInsensitive ? (c.properties.lowercaseMapping.unicodeScalars.first ?? c) : c
        }
        let a = lower(u[i + 1])
        if "stmd".unicodeScalars.contains(a) { return 2 }
        guard i + 2 < u.count else { return nil }
        let b = lower(u[i + 2])
        if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { return 3 }
        return nil
    }

    private static func run(_ u: [Unicode.Scalar], _ i: Int, _ p: (Unicode.Scalar) -> Bool) -> Int {
        var j = i
        while j < u.count && p(u[j]) { j += 1 }
        return j
    }

    private static func run(_ i: Int, _ p: (Unicode.Scalar) -> Bool, in u: [Unicode.Scalar]) -> Int { run(u, i, p) }
}

// ASCII answers from a table: the Unicode property look-ups are the pre-tokenizer's hot spot.
private let asciiClass: [UInt8] = (0..<128).map { v -> UInt8 in
    let c = Unicode.Scalar(UInt8(v))
    let cat = c.properties.generalCategory
    let l: UInt8 = [.uppercaseLetter, .lowercaseLetter].contains(cat) ? 1 : 0
    let n: UInt8 = cat == .decimalNumber ? 2 : 0
    let s: UInt8 = c.properties.isWhitespace ? 4 : 0
    return l | n | s
}

@inline(__always) func isL(_ c: Unicode.Scalar) -> Bool {
    if c.value < 128 { return asciiClass[Int(c.value)] & 1 != 0 }
    switch c.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
    default: return false
    }
}

@inline(__always) func isN(_ c: Unicode.Scalar) -> Bool {
    if c.value < 128 { return asciiClass[Int(c.value)] & 2 != 0 }
    switch c.properties.generalCategory {
    case .decimalNumber, .letterNumber, .otherNumber: return true
    default: return false
    }
}

@inline(__always) func isSpace(_ c: Unicode.Scalar) -> Bool {
    c.value < 128 ? asciiClass[Int(c.value)] & 4 != 0 : c.properties.isWhitespace
}
@inline(__always) func isNewline(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }
@inline(__always) func isOther(_ c: Unicode.Scalar) -> Bool { !isSpace(c) && !isL(c) && !isN(c) }

/// Oniguruma's `\w` (Unicode): alphabetic, marks, decimal digits, connector punctuation, joiners.
func isWordChar(_ c: Unicode.Scalar) -> Bool {
    if c.value < 128 { return asciiClass[Int(c.value)] & 3 != 0 || c == "_" }
    let p = c.properties
    switch p.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
    default: return p.isAlphabetic || c.value == 0x200C || c.value == 0x200D
    }
}

/// Rust's `char::is_alphanumeric` (Alphabetic or Numeric), for `single_word` added tokens.
func isAlphanumeric(_ c: Unicode.Scalar) -> Bool { c.properties.isAlphabetic || isN(c) }

/// Rust's `is_ascii_punctuation() || is_punctuation()` (general category P*).
func isPunctuation(_ c: Unicode.Scalar) -> Bool {
    if c.value < 128 {
        let v = c.value
        return (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v)
    }
    switch c.properties.generalCategory {
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
         .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
    default: return false
    }
}

/// A piece of text during pre-tokenization; `atStart` marks the piece that begins at the
/// start of the input (for Metaspace's `prepend_scheme: first`).
struct Piece {
    var text: [Unicode.Scalar]
    var atStart: Bool
}

struct PreTokenizer: Sendable {
    let steps: [PreTokenizerStep]
    private let patterns: [CompiledPattern?]

    init(steps: [PreTokenizerStep]) throws {
        self.steps = steps
        patterns = try steps.map { step in
            switch step {
            case .split(let p): return try CompiledPattern(.regex(p.source))
            case .splitBy(let p, _, _): return try CompiledPattern(p)
            case .byteLevel: return try CompiledPattern(.regex(SplitPattern.gpt2.source))
            default: return nil
            }
        }
    }

    /// For tests: the pieces of `text` as strings.
    func split(_ text: String) -> [String] {
        split([Piece(text: Array(text.unicodeScalars), atStart: true)]).map { String(String.UnicodeScalarView($0.text)) }
    }

    /// Splits pieces step by step; empty pieces are dropped, as in `tokenizers`.
    func split(_ input: [Piece]) -> [Piece] {
        var pieces = input
        for (step, pattern) in zip(steps, patterns) {
            var next: [Piece] = []
            next.reserveCapacity(pieces.count * 2)
            for piece in pieces {
                apply(step, pattern, piece, into: &next)
            }
            pieces = next
        }
        return pieces
    }

    private func apply(_ step: PreTokenizerStep, _ pattern: CompiledPattern?, _ piece: Piece, into out: inout [Piece]) {
        /// Appends the non-empty sub-ranges; only the first can still be at the input start.
        func emit(_ text: [Unicode.Scalar], _ ranges: [Range<Int>]) {
            for r in ranges where !r.isEmpty {
                out.append(Piece(text: Array(text[r]), atStart: piece.atStart && r.lowerBound == 0))
            }
        }
        let u = piece.text
        switch step {
        case .digits(let individual):
            emit(u, Self.runs(u, individual: individual, isN))
        case .split:
            emit(u, SplitBehavior.isolated.apply(pattern?.findMatches(u) ?? []))
        case .splitBy(_, let behavior, let invert):
            var m = pattern?.findMatches(u) ?? []
            if invert { m = m.map { ($0.range, !$0.isMatch) } }
            emit(u, behavior.apply(m))
        case .byteLevel(let addPrefixSpace, let useRegex):
            var p = u
            if addPrefixSpace && p.first != " " { p.insert(" ", at: 0) }
            if useRegex {
                emit(p, SplitBehavior.isolated.apply(pattern?.findMatches(p) ?? []))
            } else if !p.isEmpty {
                out.append(Piece(text: p, atStart: piece.atStart))
            }
        case .metaspace(let replacement, let scheme, let split):
            var p = u.map { $0 == " " ? replacement : $0 }
            let prepend = scheme == .always || (scheme == .first && piece.atStart)
            if prepend && p.first != replacement { p.insert(replacement, at: 0) }
            if split {
                let matches = p.indices.map { ($0..<($0 + 1), p[$0] == replacement) }
                emit(p, SplitBehavior.mergedWithNext.apply(Self.coalesce(matches, count: p.count)))
            } else if !p.isEmpty {
                out.append(Piece(text: p, atStart: piece.atStart))
            }
        case .whitespace:
            // `\w+|[^\w\s]+` kept, whitespace removed.
            var ranges: [Range<Int>] = []
            var i = 0
            while i < u.count {
                if isSpace(u[i]) { i += 1; continue }
                let word = isWordChar(u[i])
                var j = i + 1
                while j < u.count && !isSpace(u[j]) && isWordChar(u[j]) == word { j += 1 }
                ranges.append(i..<j)
                i = j
            }
            emit(u, ranges)
        case .whitespaceSplit:
            var ranges: [Range<Int>] = []
            var i = 0
            while i < u.count {
                if isSpace(u[i]) { i += 1; continue }
                var j = i + 1
                while j < u.count && !isSpace(u[j]) { j += 1 }
                ranges.append(i..<j)
                i = j
            }
            emit(u, ranges)
        case .punctuation(let behavior):
            let matches = u.indices.map { ($0..<($0 + 1), isPunctuation(u[$0])) }
            emit(u, behavior.apply(Self.coalesce(matches, count: u.count)))
        }
    }

    /// Per-character match flags as a `find_matches` list: each matching character alone,
    /// runs of non-matching characters joined.
    private static func coalesce(_ chars: [(Range<Int>, Bool)], count: Int) -> [(range: Range<Int>, isMatch: Bool)] {
        if count == 0 { return [(0..<0, false)] }
        var out: [(range: Range<Int>, isMatch: Bool)] = []
        for (r, m) in chars {
            if !m, let last = out.last, !last.isMatch { out[out.count - 1].range = last.range.lowerBound..<r.upperBound }
            else { out.append((r, m)) }
        }
        return out
    }

    /// Runs of characters with and without `p` (those with it one by one when `individual`).
    private static func runs(_ u: [Unicode.Scalar], individual: Bool, _ p: (Unicode.Scalar) -> Bool) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        while i < u.count {
            var j = i + 1
            if p(u[i]) {
                if !individual { while j < u.count && p(u[j]) { j += 1 } }
            } else {
                while j < u.count && !p(u[j]) { j += 1 }
            }
            out.append(i..<j)
            i = j
        }
        return out
    }
}

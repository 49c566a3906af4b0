/// Pre-tokenization as the Hugging Face `tokenizers` library does it for byte-level BPE:
/// a sequence of splitting steps, each applied to every piece the previous step made.
///
/// The GPT-2 and Llama-3 split patterns are matched by hand rather than by a regex
/// engine so that `\s`, `\p{L}` and `\p{N}` mean exactly what they mean in Oniguruma
/// (Unicode White_Space and general categories L* and N*), as in `tokenizers`.
public enum PreTokenizerStep: Equatable, Sendable {
    /// `Digits`: split off digits, each on its own (`individual`) or as runs.
    case digits(individual: Bool)
    /// `Split` with a known pattern, behaviour `Isolated`.
    case split(SplitPattern)
    /// `ByteLevel`: optional prefix space, optional GPT-2 split.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
}

public enum SplitPattern: String, Sendable {
    case gpt2, llama3

    /// The regexes as written in tokenizer.json files, to recognise them.
    static let sources: [String: SplitPattern] = [
        #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#: .gpt2,
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .llama3,
    ]
}

struct PreTokenizer: Sendable {
    let steps: [PreTokenizerStep]

    /// Splits `text` into pieces (the byte-level mapping is applied later by the BPE model).
    func split(_ text: String) -> [String] {
        var pieces = [text]
        for step in steps {
            var next: [String] = []
            next.reserveCapacity(pieces.count * 2)
            for piece in pieces {
                switch step {
                case .digits(let individual):
                    next += splitDigits(piece, individual: individual)
                case .split(let pattern):
                    next += splitPattern(piece, pattern)
                case .byteLevel(let addPrefixSpace, let useRegex):
                    let p = addPrefixSpace && !piece.hasPrefix(" ") ? " " + piece : piece
                    next += useRegex ? splitPattern(p, .gpt2) : [p]
                }
            }
            pieces = next
        }
        return pieces.filter { !$0.isEmpty }
    }

    private func splitDigits(_ s: String, individual: Bool) -> [String] {
        let u = Array(s.unicodeScalars)
        var out: [String] = []
        var i = 0
        while i < u.count {
            var j = i + 1
            if isN(u[i]) {
                if !individual { while j < u.count && isN(u[j]) { j += 1 } }
            } else {
                while j < u.count && !isN(u[j]) { j += 1 }
            }
            out.append(String(String.UnicodeScalarView(u[i..<j])))
            i = j
        }
        return out
    }

    private func splitPattern(_ s: String, _ pattern: SplitPattern) -> [String] {
        let u = Array(s.unicodeScalars)
        var out: [String] = []
        var i = 0
        while i < u.count {
            let n = pattern == .gpt2 ? matchGPT2(u, i) : matchLlama3(u, i)
            out.append(String(String.UnicodeScalarView(u[i..<(i + n)])))
            i += n
        }
        return out
    }

    // MARK: the two patterns, alternative by alternative; each returns the match length ≥ 1

    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    private func matchGPT2(_ u: [Unicode.Scalar], _ i: Int) -> Int {
        if let n = contraction(u, i, caseInsensitive: false) { return n }
        let afterSpace = u[i] == " " ? i + 1 : i
        if afterSpace < u.count {
            if isL(u[afterSpace]) { return run(u, afterSpace, isL) - i }
            if isN(u[afterSpace]) { return run(u, afterSpace, isN) - i }
            if isOther(u[afterSpace]) { return run(u, afterSpace, isOther) - i }
        }
        return whitespace(u, i)
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    private func matchLlama3(_ u: [Unicode.Scalar], _ i: Int) -> Int {
        if let n = contraction(u, i, caseInsensitive: true) { return n }
        let c = u[i]
        if !isNewline(c) && !isL(c) && !isN(c), i + 1 < u.count, isL(u[i + 1]) { return run(u, i + 1, isL) - i }
        if isL(c) { return run(u, i, isL) - i }
        if isN(c) { return min(run(u, i, isN) - i, 3) }
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
    private func whitespace(_ u: [Unicode.Scalar], _ i: Int) -> Int {
        guard isSpace(u[i]) else { return 1 }
        let end = run(u, i, isSpace)
        if end == u.count { return end - i }
        return end - i > 1 ? end - i - 1 : 1
    }

    private func contraction(_ u: [Unicode.Scalar], _ i: Int, caseInsensitive: Bool) -> Int? {
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

    private func run(_ u: [Unicode.Scalar], _ i: Int, _ p: (Unicode.Scalar) -> Bool) -> Int {
        var j = i
        while j < u.count && p(u[j]) { j += 1 }
        return j
    }

    private func run(_ i: Int, _ p: (Unicode.Scalar) -> Bool, in u: [Unicode.Scalar]) -> Int { run(u, i, p) }
}

@inline(__always) func isL(_ c: Unicode.Scalar) -> Bool {
    switch c.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
    default: return false
    }
}

@inline(__always) func isN(_ c: Unicode.Scalar) -> Bool {
    switch c.properties.generalCategory {
    case .decimalNumber, .letterNumber, .otherNumber: return true
    default: return false
    }
}

@inline(__always) func isSpace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace }
@inline(__always) func isNewline(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }
@inline(__always) func isOther(_ c: Unicode.Scalar) -> Bool { !isSpace(c) && !isL(c) && !isN(c) }

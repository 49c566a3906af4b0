import Foundation

/// One `normalizer` of tokenizer.json (a `Sequence` is flattened into a list of these).
public enum NormalizerStep: Equatable, Sendable {
    case nfc, nfd, nfkc, nfkd
    case lowercase
    /// `Strip`: whitespace off the left and/or right end.
    case strip(left: Bool, right: Bool)
    /// `Prepend`: `text` before any non-empty input.
    case prepend(String)
    /// `Replace`: every match of the pattern by `content`.
    case replace(TokenPattern, content: String)
    /// `ByteLevel` as a normalizer: UTF-8 bytes to GPT-2's printable characters.
    case byteLevel
}

struct Normalizer: Sendable {
    let steps: [NormalizerStep]
    private let patterns: [CompiledPattern?]

    init(steps: [NormalizerStep]) throws {
        self.steps = steps
        patterns = try steps.map { if case .replace(let p, _) = $0 { return try CompiledPattern(p) } else { return nil } }
    }

    func normalize(_ input: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var u = input
        for (step, pattern) in zip(steps, patterns) {
            switch step {
            case .nfc, .nfd, .nfkc, .nfkd:
                // ASCII is the same in every normal form; skip the round trip through String.
                if u.allSatisfy({ $0.isASCII }) { continue }
                let s = String(String.UnicodeScalarView(u))
                let n: String
                switch step {
                case .nfc: n = s.precomposedStringWithCanonicalMapping
                case .nfd: n = s.decomposedStringWithCanonicalMapping
                case .nfkc: n = s.precomposedStringWithCompatibilityMapping
                default: n = s.decomposedStringWithCompatibilityMapping
                }
                u = Array(n.unicodeScalars)
            case .lowercase:
                // Per character, as Rust's `char::to_lowercase` (no context rules such as final sigma).
                var out: [Unicode.Scalar] = []
                out.reserveCapacity(u.count)
                for c in u {
                    if c.isASCII { out.append(c.value >= 65 && c.value <= 90 ? Unicode.Scalar(UInt8(c.value + 32)) : c) }
                    else { out += c.properties.lowercaseMapping.unicodeScalars }
                }
                u = out
            case .strip(let left, let right):
                var lo = 0, hi = u.count
                if left { while lo < hi && isSpace(u[lo]) { lo += 1 } }
                if right { while hi > lo && isSpace(u[hi - 1]) { hi -= 1 } }
                u = Array(u[lo..<hi])
            case .prepend(let s):
                if !u.isEmpty { u = Array(s.unicodeScalars) + u }
            case .replace(_, let content):
                if let pattern { u = pattern.replace(u, with: Array(content.unicodeScalars)) }
            case .byteLevel:
                u = ByteLevel.map(u)
            }
        }
        return u
    }
}

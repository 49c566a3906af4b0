import Foundation

/// One `decoder` of tokenizer.json (a `Sequence` is flattened). Each works on the list of
/// token strings, as `tokenizers`' `decode_chain`; the results are concatenated at the end.
public enum DecoderStep: Equatable, Sendable {
    /// GPT-2's printable characters back to bytes, decoded as UTF-8 (invalid → U+FFFD).
    case byteLevel
    /// `replacement` back to spaces; the first token loses its replacements unless `never`.
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme)
    case replace(TokenPattern, content: String)
    /// `<0xAB>` tokens back to bytes; a run that is not valid UTF-8 becomes one U+FFFD per byte.
    case byteFallback
    /// All tokens joined into one.
    case fuse
    /// Up to `start` / `stop` copies of `content` off each token's ends.
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    /// `BPEDecoder`: the end-of-word `suffix` becomes a space (nothing on the last token).
    case bpe(suffix: String)
}

struct Decoder: Sendable {
    let steps: [DecoderStep]
    private let patterns: [CompiledPattern?]

    init(steps: [DecoderStep]) throws {
        self.steps = steps
        patterns = try steps.map { if case .replace(let p, _) = $0 { return try CompiledPattern(p) } else { return nil } }
    }

    func decode(_ input: [String]) -> String {
        var tokens = input
        for (step, pattern) in zip(steps, patterns) {
            switch step {
            case .byteLevel:
                var bytes: [UInt8] = []
                for t in tokens {
                    // A token with any character outside the table contributes its own UTF-8.
                    var mapped: [UInt8] = []
                    var ok = true
                    for s in t.unicodeScalars {
                        guard let b = ByteLevel.scalarToByte[s] else { ok = false; break }
                        mapped.append(b)
                    }
                    bytes += ok ? mapped : Array(t.utf8)
                }
                tokens = [String(decoding: bytes, as: UTF8.self)]
            case .metaspace(let replacement, let scheme):
                tokens = tokens.enumerated().map { i, t in
                    var out = String.UnicodeScalarView()
                    for c in t.unicodeScalars {
                        if c == replacement {
                            if !(i == 0 && scheme != .never) { out.append(" ") }
                        } else {
                            out.append(c)
                        }
                    }
                    return String(out)
                }
            case .replace(_, let content):
                guard let pattern else { continue }
                let c = Array(content.unicodeScalars)
                tokens = tokens.map { String(String.UnicodeScalarView(pattern.replace(Array($0.unicodeScalars), with: c))) }
            case .byteFallback:
                var out: [String] = []
                var pending: [UInt8] = []
                func flush() {
                    guard !pending.isEmpty else { return }
                    if let s = String(validating: pending, as: UTF8.self) { out.append(s) }
                    else { out += Array(repeating: "\u{FFFD}", count: pending.count) }
                    pending.removeAll()
                }
                for t in tokens {
                    if let b = ByteLevel.fallbackByte(t) { pending.append(b) } else { flush(); out.append(t) }
                }
                flush()
                tokens = out
            case .fuse:
                tokens = [tokens.joined()]
            case .strip(let content, let start, let stop):
                tokens = tokens.map { t in
                    let u = Array(t.unicodeScalars)
                    var lo = 0, hi = u.count
                    while lo < min(start, u.count) && u[lo] == content { lo += 1 }
                    while u.count - hi < stop && hi > lo && u[hi - 1] == content { hi -= 1 }
                    return String(String.UnicodeScalarView(u[lo..<hi]))
                }
            case .bpe(let suffix):
                let n = tokens.count
                tokens = tokens.enumerated().map { i, t in
                    suffix.isEmpty ? t : Self.replaceAll(t, suffix, with: i == n - 1 ? "" : " ")
                }
            }
        }
        return tokens.joined()
    }

    /// Every occurrence of `target` in `s`, compared scalar by scalar, replaced.
    private static func replaceAll(_ s: String, _ target: String, with r: String) -> String {
        let u = Array(s.unicodeScalars), t = Array(target.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < u.count {
            if i + t.count <= u.count && u[i..<(i + t.count)].elementsEqual(t) {
                out.append(contentsOf: r.unicodeScalars)
                i += t.count
            } else {
                out.append(u[i])
                i += 1
            }
        }
        return String(out)
    }
}

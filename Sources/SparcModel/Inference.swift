import Foundation
import SparcTensor

/// Public inference operations: logits, generation, perplexity.
extension Model {
    // MARK: logits

    /// Logits `[tokens, vocab]` for one sequence of token ids.
    public func logits(_ ids: [Int]) throws -> Tensor {
        try logits(batch: [ids])[0]
    }

    /// Logits for several sequences (any lengths; no padding needed: the sequences are
    /// stacked row-wise and attend only to themselves).
    public func logits(batch: [[Int]]) throws -> [Tensor] {
        guard !batch.isEmpty else { throw ModelError.invalidInput("empty batch") }
        for ids in batch { try validate(ids) }
        let caches = batch.map { KVCache(config: config, capacity: $0.count) }
        return forward(batch, caches: caches, logitRows: .all)
    }

    /// The next-token logits `[vocab]` after each sequence (only the last position goes
    /// through the output projection): what task metrics need.
    public func lastLogits(batch: [[Int]]) throws -> [Tensor] {
        guard !batch.isEmpty else { throw ModelError.invalidInput("empty batch") }
        for ids in batch { try validate(ids) }
        let caches = batch.map { KVCache(config: config, capacity: $0.count) }
        return forward(batch, caches: caches, logitRows: .last)
    }

    /// Logits for each sequence (every position, or only the last when `lastOnly`, which
    /// spares the large output projection) plus every activation, for a backward pass.
    /// `forBackwardOnly`: the trace is read by `backward` alone, so a long input may keep
    /// only each block's input (`ActivationTrace.storedActivationLimit`).
    public func tracedLogits(batch: [[Int]], lastOnly: Bool = false,
                             forBackwardOnly: Bool = false) throws -> (logits: [Tensor], trace: ActivationTrace) {
        guard !batch.isEmpty else { throw ModelError.invalidInput("empty batch") }
        for ids in batch { try validate(ids) }
        let caches = batch.map { KVCache(config: config, capacity: $0.count) }
        let trace = ActivationTrace(layers: config.numLayers, mayRecompute: forBackwardOnly)
        let logits = forward(batch, caches: caches, logitRows: lastOnly ? .last : .all, trace: trace)
        return (logits, trace)
    }

    /// The output projection `[vocab, hidden]`: `lm_head.weight`, or the embeddings when tied.
    public var outputProjection: Tensor { weights.head }

    /// Logits of the text as the tokenizer encodes it.
    public func logits(text: String) throws -> Tensor { try logits(tokenizer.encode(text)) }

    /// Checks ids before they index the embedding table, and lengths before they size buffers.
    func validate(_ ids: [Int], extraPositions: Int = 0) throws {
        guard !ids.isEmpty else { throw ModelError.invalidInput("empty input: no tokens to run") }
        guard extraPositions >= 0, ids.count <= config.maxPositions - min(extraPositions, config.maxPositions) else {
            throw ModelError.invalidInput("\(ids.count) tokens\(extraPositions > 0 ? " + \(extraPositions) new" : "") exceed the model's context length (\(config.maxPositions))")
        }
        if let bad = ids.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw ModelError.invalidInput("token id \(bad) is outside the vocabulary (0..<\(config.vocabSize))")
        }
    }

    // MARK: generation

    /// Token ids that end generation: the config's EOS ids and the tokenizer's.
    public var stopTokenIds: Set<Int> {
        Set(config.eosTokenIds + [tokenizer.eosTokenId].compactMap { $0 })
    }

    /// Continues `prompt` with up to `maxTokens` new tokens, using a KV cache. Greedy
    /// unless `sampling` says otherwise. Stops after an EOS token (which is included).
    /// `onToken` gets each new token as it is chosen.
    public func generate(_ prompt: [Int], maxTokens: Int, sampling: Sampling = .greedy, stopAtEOS: Bool = true,
                         onToken: (Int) -> Void = { _ in }) throws -> [Int] {
        try generate(batch: [prompt], maxTokens: maxTokens, samplings: [sampling], stopAtEOS: stopAtEOS) { step in
            for (_, id) in step { onToken(id) }
        }[0]
    }

    /// Continues several prompts at once, each as `generate` would alone: one KV cache per
    /// sequence and one forward pass per step over every sequence still running, stacked
    /// row-wise without padding, so each step streams the weights once for the whole batch
    /// instead of once per sequence. `samplings`: one per prompt (seeded sampling stays
    /// reproducible per prompt), or one for all. `stopTokens` replaces the model's EOS ids.
    /// `onStep` gets the tokens chosen at each step, as (sequence, token) pairs.
    public func generate(batch prompts: [[Int]], maxTokens: Int, samplings: [Sampling] = [.greedy], stopAtEOS: Bool = true,
                         stopTokens: Set<Int>? = nil, onStep: ([(sequence: Int, token: Int)]) -> Void = { _ in }) throws -> [[Int]] {
        guard !prompts.isEmpty else { return [] }
        guard samplings.count == 1 || samplings.count == prompts.count else {
            throw ModelError.invalidInput("give one sampling setting, or one per prompt (\(prompts.count))")
        }
        guard maxTokens >= 0 else { throw ModelError.invalidInput("max_tokens must be ≥ 0") }
        for s in samplings { try Self.check(s) }
        for p in prompts { try validate(p, extraPositions: maxTokens) }
        if maxTokens == 0 { return prompts.map { _ in [] } }
        var samplers = prompts.indices.map { Sampler(samplings[samplings.count == 1 ? 0 : $0]) }
        let caches = prompts.map { KVCache(config: config, capacity: $0.count + maxTokens) }
        let stops = stopTokens ?? stopTokenIds
        var out = [[Int]](repeating: [], count: prompts.count)
        var running = Array(prompts.indices)
        var logits = forward(prompts, caches: caches, logitRows: .last)
        while true {
            try Interrupt.check()
            var still: [Int] = [], step: [(sequence: Int, token: Int)] = []
            for (row, i) in running.enumerated() {
                let id = logits[row].withUnsafeBufferPointer { samplers[i].pick($0) }
                out[i].append(id)
                step.append((i, id))
                if out[i].count < maxTokens && !(stopAtEOS && stops.contains(id)) { still.append(i) }
            }
            running = still
            onStep(step)
            if running.isEmpty { return out }
            logits = forward(running.map { [out[$0].last!] }, caches: running.map { caches[$0] }, logitRows: .last)
        }
    }

    static func check(_ sampling: Sampling) throws {
        if case .sample(let temperature, let topK, let topP, _) = sampling {
            guard temperature.isFinite && temperature >= 0 else { throw ModelError.invalidInput("temperature must be a finite number ≥ 0, got \(temperature)") }
            if let k = topK, k < 0 { throw ModelError.invalidInput("top_k must be ≥ 0, got \(k)") }
            if let p = topP, !(p > 0 && p <= 1) { throw ModelError.invalidInput("top_p must be in (0, 1], got \(p)") }
        }
    }

    /// Generates from a text prompt and returns the continuation's text.
    public func generate(text: String, maxTokens: Int, sampling: Sampling = .greedy) throws -> String {
        let ids = try generate(tokenizer.encode(text), maxTokens: maxTokens, sampling: sampling)
        return tokenizer.decode(ids, skipSpecialTokens: true)
    }

    // MARK: perplexity

    public struct PerplexityResult: Sendable {
        public let perplexity: Double
        /// Mean negative log-likelihood per predicted token (nats).
        public let meanNLL: Double
        public let predictedTokens: Int
        public let windows: Int
    }

    /// Perplexity with a sliding window: windows of `window` tokens start every `stride`
    /// tokens; each token after the first is predicted exactly once, in the first window
    /// that reaches it, from the context inside that window (transformers' "perplexity of
    /// fixed-length models" recipe, counting every predicted token).
    public func perplexity(_ ids: [Int], window: Int = 256, stride: Int? = nil,
                           progress: (Int, Int) -> Void = { _, _ in }) throws -> PerplexityResult {
        let stride = stride ?? max(1, window / 2)
        guard window >= 2 else { throw ModelError.invalidInput("window must be at least 2 tokens") }
        guard stride >= 1 && stride <= window else { throw ModelError.invalidInput("stride must be in 1...window") }
        guard ids.count >= 2 else { throw ModelError.invalidInput("perplexity needs at least 2 tokens") }
        // Each window runs alone, so the text may be longer than the context; a window may not.
        guard min(window, ids.count) <= config.maxPositions else {
            throw ModelError.invalidInput("window \(window) exceeds the model's context length (\(config.maxPositions))")
        }
        if let bad = ids.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw ModelError.invalidInput("token id \(bad) is outside the vocabulary (0..<\(config.vocabSize))")
        }
        var nll = 0.0, count = 0, windows = 0, scoredUpTo = 1, begin = 0
        while true {
            try Interrupt.check()
            let end = min(begin + window, ids.count)
            let logits = try self.logits(Array(ids[begin..<end]))
            logits.withUnsafeBufferPointer { l in
                for t in max(scoredUpTo, begin + 1)..<end {
                    let row = l.baseAddress! + (t - begin - 1) * config.vocabSize
                    nll += Kernels.logSumExp(row, count: config.vocabSize) - Double(row[ids[t]])
                    count += 1
                }
            }
            scoredUpTo = end
            windows += 1
            progress(end, ids.count)
            if end == ids.count { break }
            begin += stride
        }
        let mean = nll / Double(count)
        return PerplexityResult(perplexity: Foundation.exp(mean), meanNLL: mean, predictedTokens: count, windows: windows)
    }

    public func perplexity(text: String, window: Int = 256, stride: Int? = nil) throws -> PerplexityResult {
        try perplexity(tokenizer.encode(text), window: window, stride: stride)
    }
}

/// How the next token is chosen.
public enum Sampling: Sendable, Equatable {
    case greedy
    /// Softmax sampling at `temperature`, optionally restricted to the `topK` most likely
    /// tokens and the smallest set with probability ≥ `topP`; reproducible from `seed`.
    case sample(temperature: Double, topK: Int? = nil, topP: Double? = nil, seed: UInt64)
}

/// Picks tokens from logits; a seeded generator makes sampling reproducible.
struct Sampler {
    let mode: Sampling
    var random: Xoshiro256

    init(_ mode: Sampling) {
        self.mode = mode
        var seed: UInt64 = 0
        if case .sample(_, _, _, let s) = mode { seed = s }
        random = Xoshiro256(seed: seed)
    }

    mutating func pick(_ logits: UnsafeBufferPointer<Float>) -> Int {
        switch mode {
        case .greedy:
            return Sampler.argmax(logits)
        case .sample(let temperature, let topK, let topP, _):
            if temperature <= 0 { return Sampler.argmax(logits) }
            var order = Array(0..<logits.count)
            order.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
            if let k = topK, k > 0 { order = Array(order.prefix(k)) }
            let m = Double(logits[order[0]])
            var probs = order.map { Foundation.exp((Double(logits[$0]) - m) / temperature) }
            let total = probs.reduce(0, +)
            probs = probs.map { $0 / total }
            if let p = topP, p < 1 {
                var acc = 0.0, keep = 0
                while keep < probs.count { acc += probs[keep]; keep += 1; if acc >= p { break } }
                probs = Array(probs.prefix(keep))
                let s = probs.reduce(0, +)
                probs = probs.map { $0 / s }
            }
            var u = random.nextDouble()
            for (i, p) in probs.enumerated() {
                u -= p
                if u < 0 { return order[i] }
            }
            return order[probs.count - 1]
        }
    }

    /// The first index of the largest logit (ties go to the lower id, as torch.argmax).
    static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        return best
    }
}

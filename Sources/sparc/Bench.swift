import ArgumentParser
import Foundation
import SparcAttribution
import SparcModel
import SparcTensor

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the forward pass and generation.",
        discussion: """
            Each pass is also given as a fraction of the machine's limit measured in the same run: the GFLOP/s of \
            sgemm alone on the model's own matrix shapes, through the same calls and thread split (the forward's \
            products for the forward; with --attribution, those and the backward's input- and weight-gradient \
            products), once with the operands in cache and once over the model's own weights, layer after layer, \
            as a pass reads them from memory. PyTorch and LXT side by side: scripts/bench.py and \
            scripts/bench_attribution.py.
            """)
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Input lengths in tokens, comma-separated.") var tokens = "64,256"
    @Option(help: "Timed repetitions per length (the best is reported).") var repeats = 5
    @Option(help: "New tokens for the generation benchmark.") var generate = 64
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(help: "Time forward + AttnLRP with every weight relevance instead of generation.") var attribution = false
    @Flag(help: "Time the tokenizer on FILE (default: 1 MB of generated English-like text) and report MB/s.") var tokenizer = false
    @Option(help: "With --tokenizer: time this tokenizer.json instead of the model's tokenizer.") var tokenizerJSON: String?
    @Argument(help: "With --tokenizer: a UTF-8 text file to encode.") var file: String?

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
        if file != nil && !tokenizer { throw ValidationError("a FILE argument is only taken with --tokenizer") }
    }

    func run() throws {
        if tokenizer { return try runTokenizer() }
        let m = try modelOptions.load()
        if attribution { return try runAttribution(m) }
        let lengths = tokens.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let c = m.config
        var rows: [[String: Any]] = []
        for n in lengths {
            let ids = (0..<n).map { ($0 * 7919 + 13) % c.vocabSize }
            let best = try bestSeconds(of: repeats) { _ = try m.logits(ids) }
            let flops = Bench.forwardFLOPs(c, tokens: n)
            let limit = SgemmLimit.measure(c, tokens: n, repeats: repeats)
            let streamed = SgemmLimit.measureStreamed(m, tokens: n, repeats: repeats)
            rows.append(["tokens": n, "seconds": best, "tokens_per_s": Double(n) / best, "gflops": flops / best / 1e9,
                         "sgemm_gflops": limit.forward, "fraction_of_sgemm": flops / best / 1e9 / limit.forward,
                         "sgemm_streamed_gflops": streamed.forward, "fraction_of_streamed_sgemm": flops / best / 1e9 / streamed.forward])
        }
        let prompt = Array(m.tokenizer.encode("The history of the Roman Empire").prefix(16))
        let t0 = DispatchTime.now().uptimeNanoseconds
        let out = try m.generate(prompt, maxTokens: generate, stopAtEOS: false)
        let genSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let genRate = Double(out.count) / genSeconds
        if json {
            let obj: [String: Any] = ["threads": Parallel.threads, "blas_core": BLAS.coreName, "blas_backend": BLAS.backendName, "kernels": Kernels.instructionSet, "forward": rows,
                                      "generate_tokens_per_s": genRate, "generate_tokens": out.count]
            print(String(data: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), encoding: .utf8)!)
        } else {
            print("sparc forward, \(Parallel.threads) threads, \(BLAS.backendName), \(Kernels.instructionSet) element-wise kernels")
            for r in rows {
                print(String(format: "  %4d tokens: %8.1f ms  %8.1f tokens/s  %6.1f GFLOP/s  (%.0f %% of sgemm's %.1f GFLOP/s on these shapes; %.0f %% of its %.1f with the model's weights streamed)",
                             r["tokens"] as! Int, (r["seconds"] as! Double) * 1000, r["tokens_per_s"] as! Double, r["gflops"] as! Double,
                             100 * (r["fraction_of_sgemm"] as! Double), r["sgemm_gflops"] as! Double,
                             100 * (r["fraction_of_streamed_sgemm"] as! Double), r["sgemm_streamed_gflops"] as! Double))
            }
            print(String(format: "  generation: %.1f tokens/s (%d tokens after a %d-token prompt)", genRate, out.count, prompt.count))
        }
    }

    /// Forward vs forward + AttnLRP (predicted-token target, all weight relevances).
    func runAttribution(_ m: Model) throws {
        let lengths = tokens.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let c = m.config
        var rows: [[String: Any]] = []
        for n in lengths {
            let ids = (0..<n).map { ($0 * 7919 + 13) % c.vocabSize }
            let forward = try bestSeconds(of: repeats) { _ = try m.logits(ids) }
            let lrp = try bestSeconds(of: repeats) {
                _ = try Attribution.attribute(m, samples: [AttributionSample(ids: ids)], method: .lrp, level: .weight)
            }
            // Backward ≈ 2× the forward's products (input and weight gradients); the output
            // projection runs for the last position only.
            let forwardNoHead = Bench.forwardFLOPs(c, tokens: n) - 2 * Double(n) * Double(c.hiddenSize) * Double(c.vocabSize)
            let lrpFlops = 3 * forwardNoHead + 2 * Double(c.hiddenSize) * Double(c.vocabSize)
            let limit = SgemmLimit.measure(c, tokens: n, repeats: repeats)
            let streamed = SgemmLimit.measureStreamed(m, tokens: n, repeats: repeats)
            rows.append(["tokens": n, "forward_s": forward, "lrp_s": lrp, "ratio": lrp / forward, "lrp_gflops": lrpFlops / lrp / 1e9,
                         "sgemm_gflops": limit.pass, "fraction_of_sgemm": lrpFlops / lrp / 1e9 / limit.pass,
                         "sgemm_streamed_gflops": streamed.pass, "fraction_of_streamed_sgemm": lrpFlops / lrp / 1e9 / streamed.pass])
        }
        let peakMiB = Bench.peakResidentMiB()
        let weightsMiB = Double(m.parameterCount * 4) / 1048576
        if json {
            let obj: [String: Any] = ["threads": Parallel.threads, "blas_core": BLAS.coreName, "blas_backend": BLAS.backendName, "kernels": Kernels.instructionSet, "attribution": rows,
                                      "peak_rss_mib": peakMiB, "f32_weights_mib": weightsMiB]
            print(String(data: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), encoding: .utf8)!)
        } else {
            print("sparc forward vs forward + AttnLRP (all weight relevances), \(Parallel.threads) threads, \(BLAS.backendName), \(Kernels.instructionSet) element-wise kernels")
            for r in rows {
                print(String(format: "  %4d tokens: forward %7.1f ms, forward+LRP %7.1f ms (%.2f×), %.1f GFLOP/s (%.0f %% of sgemm's %.1f GFLOP/s on these shapes; %.0f %% of its %.1f with the model's weights streamed)",
                             r["tokens"] as! Int, (r["forward_s"] as! Double) * 1000, (r["lrp_s"] as! Double) * 1000,
                             r["ratio"] as! Double, r["lrp_gflops"] as! Double,
                             100 * (r["fraction_of_sgemm"] as! Double), r["sgemm_gflops"] as! Double,
                             100 * (r["fraction_of_streamed_sgemm"] as! Double), r["sgemm_streamed_gflops"] as! Double))
            }
            print(String(format: "  peak memory %.0f MiB (f32 weights %.0f MiB: %.2f×)", peakMiB, weightsMiB, peakMiB / weightsMiB))
        }
    }

    /// Encoding throughput: the whole text in one `encode` call, first on an empty
    /// pre-token cache (cold), then the best of `repeats` runs (warm). MB = 10⁶ bytes of UTF-8.
    func runTokenizer() throws {
        let tok = try tokenizerJSON.map { try Tokenizer.load(tokenizerJSON: $0) } ?? modelOptions.load().tokenizer
        let text: String
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            guard let s = String(data: data, encoding: .utf8) else { throw ValidationError("\(file) is not UTF-8 text") }
            text = s
        } else {
            text = Bench.englishLikeText(bytes: 1_000_000)
        }
        let bytes = Double(text.utf8.count)
        func timed(_ body: () -> Int) -> (seconds: Double, count: Int) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let n = body()
            return (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, n)
        }
        let cold = timed { tok.encode(text, addSpecialTokens: false).count }
        var warm = Double.infinity
        for _ in 0..<repeats { warm = min(warm, timed { tok.encode(text, addSpecialTokens: false).count }.seconds) }
        // Line by line, as prompts and data sets are usually encoded (warm cache).
        let lines = text.unicodeScalars.split(separator: "\n").map { String(String.UnicodeScalarView($0)) }
        var perLine = Double.infinity
        for _ in 0..<repeats {
            perLine = min(perLine, timed { lines.reduce(0) { $0 + tok.encode($1, addSpecialTokens: false).count } }.seconds)
        }
        let lineBytes = Double(lines.reduce(0) { $0 + $1.utf8.count })
        let source = file ?? "generated English-like text"
        if json {
            let obj: [String: Any] = ["bytes": Int(bytes), "tokens": cold.count, "cold_s": cold.seconds, "warm_s": warm,
                                      "cold_mb_per_s": bytes / cold.seconds / 1e6, "warm_mb_per_s": bytes / warm / 1e6,
                                      "lines": lines.count, "lines_s": perLine, "lines_mb_per_s": lineBytes / perLine / 1e6, "text": source]
            print(String(data: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), encoding: .utf8) ?? "{}")
        } else {
            print(String(format: "sparc tokenizer on %@ (%.2f MB, %d tokens), one thread:", source, bytes / 1e6, cold.count))
            print(String(format: "  cold cache: %7.3f s  %6.2f MB/s", cold.seconds, bytes / cold.seconds / 1e6))
            print(String(format: "  warm cache: %7.3f s  %6.2f MB/s (best of %d)", warm, bytes / warm / 1e6, repeats))
            print(String(format: "  line by line (%d lines, warm): %7.3f s  %6.2f MB/s", lines.count, perLine, lineBytes / perLine / 1e6))
        }
    }

    /// Deterministic prose-like text: common English words in sentences with capitals,
    /// punctuation, numbers and paragraph breaks (a stand-in when no FILE is given).
    static func englishLikeText(bytes: Int) -> String {
        let words = ("the of and to in a is that for it as was with be by on not he this are or his from at which but have an they "
            + "you were her all she there would their we him been has when who will more no if out so said what up its about into than "
            + "them can only other new some could time these two may then do first any my now such like our over man me even most made "
            + "after also did many before must through back years where much your way well down should because each just those people "
            + "model token layer attention weight relevance pruning circuit neuron gradient language history government university "
            + "information development experience international organization particularly understanding responsibility").split(separator: " ")
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        var out = ""
        out.reserveCapacity(bytes + 100)
        while out.utf8.count < bytes {
            let length = 6 + next(18)
            for w in 0..<length {
                var word = String(words[min(next(words.count), next(words.count))])  // skewed towards common words
                if w == 0 { word = word.prefix(1).uppercased() + word.dropFirst() }
                if next(40) == 0 { word = String(next(10_000)) }
                out += word
                out += w == length - 1 ? "" : (next(12) == 0 ? ", " : " ")
            }
            out += [". ", ". ", ". ", "? ", "! ", ".\n\n"][next(6)]
        }
        return out
    }

    /// This process's peak resident memory: the kernel's high-water mark of this program's
    /// memory (VmHWM). Not getrusage's ru_maxrss, which keeps the parent's peak across exec:
    /// started by a Python that holds PyTorch's model, sparc would report PyTorch's peak.
    static func peakResidentMiB() -> Double {
        if let field = statusField("VmHWM", in: processStatus()), let kB = Double(field.split(whereSeparator: \.isWhitespace).first ?? "") {
            return kB / 1024
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    /// Multiply-adds ×2 of the forward pass: linear layers, attention scores and
    /// mixing (causal half), and the output projection for every position.
    static func forwardFLOPs(_ c: ModelConfig, tokens n: Int) -> Double {
        let d = Double(c.hiddenSize), qd = Double(c.numHeads * c.headDim), kvd = Double(c.numKVHeads * c.headDim)
        let i = Double(c.intermediateSize), t = Double(n)
        let perLayer = 2 * t * (d * qd + 2 * d * kvd + qd * d + 3 * d * i) + 2 * 2 * Double(c.numHeads) * Double(c.headDim) * t * (t + 1) / 2
        return Double(c.numLayers) * perLayer + 2 * t * d * Double(c.vocabSize)
    }
}

/// The machine's sgemm throughput on one model's products at `tokens` rows, timed through
/// the runtime's own BLAS calls and thread split (`BLAS.linear`, `linearInputGradient`,
/// `linearWeightGradient`) on every linear layer shape of a block: the speed a pass would
/// have if it did nothing but its matrix products. Best of at least 20 tries after a warm-up.
enum SgemmLimit {
    /// GFLOP/s of the forward's products, of the backward's, and of both (a forward + LRP pass).
    struct Throughput { let forward: Double, backward: Double, pass: Double }

    static func measure(_ c: ModelConfig, tokens n: Int, repeats: Int) -> Throughput {
        let d = c.hiddenSize, q = c.numHeads * c.headDim, kv = c.numKVHeads * c.headDim, i = c.intermediateSize
        // (in, out) of q, k, v, o, the MLP's input projections (gate and up when gated) and down.
        var shapes = [(d, q), (d, kv), (d, kv), (q, d), (d, i), (i, d)]
        if c.gatedMLP { shapes.append((d, i)) }
        // Single products are short: many tries for a stable best.
        let tries = max(repeats, 20)
        var forward = (flops: 0.0, seconds: 0.0), backward = (flops: 0.0, seconds: 0.0)
        for (k, m) in shapes {
            let x = zeros(n * k), w = zeros(m * k), dy = zeros(n * m), y = zeros(n * m), dx = zeros(n * k), dw = zeros(m * k)
            defer { for p in [x, w, dy, y, dx, dw] { p.deallocate() } }
            forward.seconds += bestSeconds(of: tries) { BLAS.linear(x, rows: n, inFeatures: k, weight: w, outFeatures: m, into: y) }
            backward.seconds += bestSeconds(of: tries) {
                BLAS.linearInputGradient(dy, rows: n, outFeatures: m, weight: w, inFeatures: k, into: dx)
            }
            backward.seconds += bestSeconds(of: tries) {
                BLAS.linearWeightGradient(dy, x, rows: n, outFeatures: m, inFeatures: k, into: dw, accumulate: false)
            }
            let flops = 2 * Double(n) * Double(k) * Double(m)
            forward.flops += flops
            backward.flops += 2 * flops
        }
        return Throughput(forward: forward.flops / forward.seconds / 1e9, backward: backward.flops / backward.seconds / 1e9,
                          pass: (forward.flops + backward.flops) / (forward.seconds + backward.seconds) / 1e9)
    }

    /// The same products over the model's own weights, every layer in order as a pass meets
    /// them, timed as whole sweeps: weights that come from memory rather than cache. A product
    /// of n rows does 2n FLOPs per 4-byte weight (128 at 64 tokens), so streaming 400+ MB of
    /// weights per sweep can bound a short input's pass below the cache-hot limit above.
    static func measureStreamed(_ m: Model, tokens n: Int, repeats: Int) -> Throughput {
        let layers = m.runtimeParameters.compactMap { key, w in key.layer.map { (layer: $0, role: key.role, weight: w) } }
            .filter { $0.role.isLinearWeight }
            .sorted { ($0.layer, $0.role) < ($1.layer, $1.role) }
            .map(\.weight)
        let widest = layers.map { max($0.shape[0], $0.shape[1]) }.max() ?? 0
        let largest = layers.map(\.count).max() ?? 0
        let x = zeros(n * widest), dy = zeros(n * widest), y = zeros(n * widest), dx = zeros(n * widest), dw = zeros(largest)
        defer { for p in [x, dy, y, dx, dw] { p.deallocate() } }
        let flops = layers.map { 2 * Double(n) * Double($0.count) }.reduce(0, +)
        let tries = max(repeats, 3)
        let forward = bestSeconds(of: tries) {
            for w in layers {
                w.withFloat32 { BLAS.linear(x, rows: n, inFeatures: w.shape[1], weight: $0, outFeatures: w.shape[0], into: y) }
            }
        }
        let backward = bestSeconds(of: tries) {
            for w in layers {
                let (out, inn) = (w.shape[0], w.shape[1])
                w.withFloat32 { BLAS.linearInputGradient(dy, rows: n, outFeatures: out, weight: $0, inFeatures: inn, into: dx) }
                BLAS.linearWeightGradient(dy, x, rows: n, outFeatures: out, inFeatures: inn, into: dw, accumulate: false)
            }
        }
        return Throughput(forward: flops / forward / 1e9, backward: 2 * flops / backward / 1e9,
                          pass: 3 * flops / (forward + backward) / 1e9)
    }

    /// A zeroed Float buffer (deallocated by the caller).
    private static func zeros(_ count: Int) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        p.initialize(repeating: 0, count: max(count, 1))
        return p
    }
}

/// The shortest of `tries` timed runs of `body`, in seconds, after one untimed warm-up run.
func bestSeconds(of tries: Int, _ body: () throws -> Void) rethrows -> Double {
    try body()
    var best = Double.infinity
    for _ in 0..<tries {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    return best
}

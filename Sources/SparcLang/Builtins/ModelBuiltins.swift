import Foundation
import SparcModel
import SparcTensor

/// Bindings to the model runtime.
enum ModelBuiltins {
    static let all: [Builtin] = [
        Builtin("load_model", [Parameter("name_or_path", default: .string("smollm2"))],
                summary: "Load a model: a .gguf file, a Hugging Face folder, or an installed name (default smollm2).") { a in
            .model(try Model.load(try a.string("name_or_path")))
        },
        Builtin("tokenize", [Parameter("m"), Parameter("text"), Parameter("special", default: .bool(true))],
                summary: "Token ids of a text (with the BOS/EOS tokens the tokenizer adds unless special: false).") { a in
            let m = try a.model("m")
            return .list(m.tokenizer.encode(try a.string("text"), addSpecialTokens: try a.bool("special")).map { .number(Double($0)) })
        },
        Builtin("detokenize", [Parameter("m"), Parameter("ids"), Parameter("skip_special", default: .bool(false))],
                summary: "The text of a list of token ids.") { a in
            let m = try a.model("m")
            return .string(m.tokenizer.decode(try a.tokens("ids", model: m), skipSpecialTokens: try a.bool("skip_special")))
        },
        Builtin("logits", [Parameter("m"), Parameter("input")],
                summary: "Next-token logits [tokens, vocab] for a text or a list of token ids.") { a in
            let m = try a.model("m")
            return .tensor(try m.logits(try a.tokens("input", model: m)))
        },
        Builtin("generate", [Parameter("m"), Parameter("prompt"), Parameter("max_tokens", default: .number(64)),
                             Parameter("temperature", default: .number(0)), Parameter("top_k", default: .null),
                             Parameter("top_p", default: .null), Parameter("seed", default: .number(0)),
                             Parameter("chat", default: .bool(false))],
                summary: "Continue a prompt (or each of a list of prompts, batched); greedy unless temperature > 0. Returns the new text(s).",
                help: """
                    chat: true wraps the prompt in the model's chat template (user turn). Stops at the end-of-sequence token.
                    A list of texts is generated together (one KV cache each, one forward pass per step for all), each
                    exactly as alone; with temperature > 0, prompt i samples with seed + i.
                    """) { a in
            let m = try a.model("m")
            let temperature = try a.temperature()
            let topP = try a.optionalNumber("top_p")
            if let p = topP, !(p > 0 && p <= 1) { throw SparcError(.value, "generate: top_p must be in (0, 1], got \(formatNumber(p))") }
            let topK = try a.optionalInt("top_k", in: 1...wholeNumberRange.upperBound), seed = try a.int("seed")
            func sampling(_ offset: Int) -> Sampling {
                temperature > 0 ? .sample(temperature: temperature, topK: topK, topP: topP, seed: UInt64(bitPattern: Int64(seed &+ offset))) : .greedy
            }
            let maxTokens = try a.int("max_tokens")
            let chat = try a.bool("chat")
            if case .list(let items) = a["prompt"], items.first.map({ if case .string = $0 { return true }; return false }) ?? false {
                let prompts = try items.map { v -> [Int] in
                    guard case .string(let p) = v else { throw SparcError(.type, "generate: a list of prompts holds texts, found a \(v.typeName)") }
                    return m.tokenizer.encode(chat ? m.architecture.chatPrompt(user: p) : p)
                }
                let bar = ProgressBar("generate", total: maxTokens)
                defer { bar.finish() }
                var steps = 0
                let outs = try m.generate(batch: prompts, maxTokens: maxTokens, samplings: prompts.indices.map(sampling)) { _ in steps += 1; bar.update(steps) }
                return .list(outs.map { .string(m.tokenizer.decode($0, skipSpecialTokens: true)) })
            }
            var ids: [Int]
            if chat {
                ids = m.tokenizer.encode(m.architecture.chatPrompt(user: try a.string("prompt")))
            } else {
                ids = try a.tokens("prompt", model: m)
            }
            let sampling = sampling(0)
            let bar = ProgressBar("generate", total: maxTokens)
            defer { bar.finish() }
            var count = 0
            let out = try m.generate(ids, maxTokens: maxTokens, sampling: sampling) { _ in count += 1; bar.update(count) }
            return .string(m.tokenizer.decode(out, skipSpecialTokens: true))
        },
        Builtin("perplexity", [Parameter("m"), Parameter("text"), Parameter("window", default: .number(256)),
                               Parameter("stride", default: .null)],
                summary: "Perplexity of a text with a sliding window (stride defaults to window / 2).") { a in
            let m = try a.model("m")
            let ids = try a.tokens("text", model: m)
            let bar = ProgressBar("perplexity", total: ids.count)
            defer { bar.finish() }
            let r = try m.perplexity(ids, window: try a.int("window"), stride: try a.optionalInt("stride")) { done, _ in bar.update(done) }
            return .number(r.perplexity)
        },
        Builtin("params", [Parameter("m")], summary: "Parameter names and shapes (Hugging Face names): a record name → shape.") { a in
            let m = try a.model("m")
            return .record(Record(m.parameterNames.map { ($0, .list(m.parameters[$0]!.shape.map { .number(Double($0)) })) }))
        },
        Builtin("param", [Parameter("m"), Parameter("name")], summary: "One parameter tensor by its Hugging Face name.") { a in
            let m = try a.model("m"), name = try a.string("name")
            guard let t = m.parameters[name] else {
                let hint = suggestion(for: name, among: m.parameterNames).map { "; did you mean \($0)?" } ?? ""
                throw SparcError(.name, "param: the model has no parameter \(name)\(hint)")
            }
            return .tensor(t)
        },
        Builtin("config", [Parameter("m")], summary: "A model's configuration as a record (also m.config).") { a in
            let c = try a.model("m").config
            var r = Record([
                ("architecture", .string(c.architecture)), ("vocab_size", .number(Double(c.vocabSize))),
                ("hidden_size", .number(Double(c.hiddenSize))), ("intermediate_size", .number(Double(c.intermediateSize))),
                ("num_layers", .number(Double(c.numLayers))), ("num_heads", .number(Double(c.numHeads))),
                ("num_kv_heads", .number(Double(c.numKVHeads))), ("head_dim", .number(Double(c.headDim))),
                ("norm", .string(c.norm.rawValue)), ("norm_eps", .number(c.normEps)),
                ("activation", .string(c.activation.rawValue)),
                ("positions", .string(c.positions == .rotary ? "rope" : "learned")), ("rope_theta", .number(c.ropeTheta)),
                ("max_positions", .number(Double(c.maxPositions))), ("tie_word_embeddings", .bool(c.tieWordEmbeddings)),
            ])
            r["source"] = .string(try a.model("m").source)
            return .record(r)
        },
    ]
}

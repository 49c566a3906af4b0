import Foundation
import SparcAttribution
import SparcFormats
import SparcModel
import SparcPruning
import SparcTensor

/// Relevance maps: computing, saving, loading, drawing and checking them.
enum AttributionBuiltins {
    static let all: [Builtin] = [
        Builtin("attribute", [Parameter("m"), Parameter("inputs"), Parameter("method", default: .string("lrp")),
                              Parameter("level", default: .string("weight")), Parameter("target", default: .null),
                              Parameter("batch", default: .number(8)), Parameter("absolute", default: .bool(false)),
                              Parameter("parameters", default: .string("linear")), Parameter("aggregate", default: .string("mean"))],
                summary: "Relevance of weights, neurons, heads, hidden states or tokens, averaged over the inputs.",
                help: """
                    inputs: a text, a list of token ids, a list of texts / id lists, or a task (ioi(…), task(…)).
                    method: "lrp" (AttnLRP), "gradient", "gradxinput", "activation", "magnitude", "wanda".
                    level: "weight", "row" (each linear layer's output units: weight relevance summed per row), "neuron",
                    "head", "hidden", "token".
                    target: nil (the predicted next token), a token id or one-token text, "lm" (every
                    next token), {answer: …, foil: …} (logit difference), or one of these per input;
                    a task's default target is each prompt's answer − foil.
                    aggregate: "mean" (Hatefi et al. 2025, Eq. 1: the signed mean over the inputs; rank by abs(r)), or
                    "mean_abs" (each input's |relevance| averaged, weight and row levels, so alternating signs do not cancel;
                    absolute: true is the same).
                    parameters: what a weight-level map covers (the prunable set): "linear" (the block linear weights,
                    default), "all", or a list of "linear", "norms", "embeddings", "head".
                    Returns a relevance map keyed like params(m) (weight level) or by component.
                    """) { a in
            let m = try a.model("m")
            guard let method = AttributionMethod(rawValue: try a.string("method")) else {
                throw SparcError(.value, "attribute: unknown method \(try a.string("method")) (one of \(AttributionMethod.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard let level = AttributionLevel(rawValue: try a.string("level")) else {
                throw SparcError(.value, "attribute: unknown level \(try a.string("level")) (one of \(AttributionLevel.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let aggregate = try a.string("aggregate")
            guard aggregate == "mean" || aggregate == "mean_abs" else {
                throw SparcError(.value, "attribute: aggregate must be \"mean\" (Eq. 1, signed) or \"mean_abs\" (per-input |relevance|)")
            }
            let samples = try samplesFrom(a["inputs"], target: a["target"], model: m)
            let bar = ProgressBar("attribute", total: samples.count)
            defer { bar.finish() }
            let map = try Attribution.attribute(m, samples: samples, method: method, level: level, batchSize: try a.int("batch", in: 1...100_000),
                                                absolute: try a.bool("absolute") || aggregate == "mean_abs",
                                                parameters: try parameterGroups(a)) { done, _ in bar.update(done) }
            return .relevance(map)
        },
        Builtin("rows", [Parameter("r"), Parameter("m")],
                summary: "A weight-level map summed over each row of every linear layer: the relevance of its output units (level \"row\").",
                help: "Masks of a row map prune whole units of the layers it covers: bottomk(rows(only(r, \"fc1\"), m), 100).") { a in
            .relevance(try Attribution.rows(of: try PruningBuiltins.map(a, "r"), model: try a.model("m")))
        },
        Builtin("save", [Parameter("value"), Parameter("path")],
                summary: "Save a tensor, record, relevance map or mask as safetensors, or a model as .gguf or an HF folder (atomic writes).") { a in
            let path = try a.outputPath("path")
            guard a.interpreter.speaks else { return .string(path) }
            switch a["value"] {
            case .tensor(let t): try SafetensorsWriter.write([("tensor", t)], to: path)
            case .relevance(let r): try r.save(to: path)
            case .mask(let m): try m.save(to: path, metadata: ["sparc_version": RelevanceMap.sparcVersion])
            case .model(let m):
                // A .gguf file, or a Hugging Face folder (config.json, model.safetensors, tokenizer.json).
                if path.hasSuffix(".gguf") { try m.save(gguf: path) } else { try m.save(huggingFaceFolder: path) }
            case .record(let r):
                let pairs = try r.keys.map { k -> (String, Tensor) in
                    guard case .tensor(let t) = r[k]! else { throw SparcError(.type, "save: field \(k) is a \(r[k]!.typeName), not a tensor") }
                    return (k, t)
                }
                try SafetensorsWriter.write(pairs, to: path)
            default:
                throw a.fail("value", "a tensor, record of tensors, relevance map, mask or model", a["value"])
            }
            return .string(path)
        },
        Builtin("load", [Parameter("path")],
                summary: "Load a .safetensors file (relevance map, tensor or record of tensors) or a model.") { a in
            let path = try a.string("path")
            guard path.hasSuffix(".safetensors") else { return .model(try Model.load(path)) }
            let file = try SafetensorsFile(path: path)
            if let map = try RelevanceMap.load(from: file) { return .relevance(map) }
            if let mask = try Mask.load(from: file) { return .mask(mask) }
            if file.names == ["tensor"] { return .tensor(try file.tensor("tensor")) }
            return .record(Record(try file.names.map { ($0, .tensor(try file.tensor($0))) }))
        },
        Builtin("heatmap", [Parameter("m"), Parameter("input"), Parameter("relevance"), Parameter("path", default: .string("heatmap.html"))],
                summary: "Draw token relevances over the prompt as an HTML page (red positive, blue negative).") { a in
            let m = try a.model("m")
            let ids = try a.tokens("input", model: m)
            let values = try tokenRelevance(a["relevance"], count: ids.count)
            let path = try a.outputPath("path")
            if a.interpreter.speaks { try AtomicWrite.write(Data(heatmapHTML(m, ids, values).utf8), to: path) }
            return .string(path)
        },
        Builtin("perturbation", [Parameter("m"), Parameter("input"), Parameter("relevance"), Parameter("order", default: .string("most")),
                                 Parameter("target", default: .null), Parameter("replacement", default: .number(0))],
                summary: "Remove tokens by relevance and follow the explained logit: {curve, area}.",
                help: "order: \"most\" (most relevant first: a faithful map makes the logit fall fast) or \"least\".") { a in
            let m = try a.model("m")
            let ids = try a.tokens("input", model: m)
            let values = try tokenRelevance(a["relevance"], count: ids.count)
            guard let order = Faithfulness.Order(rawValue: try a.string("order")) else {
                throw SparcError(.value, "perturbation: order must be \"most\" or \"least\"")
            }
            let target = try targetFrom(a["target"], model: m)
            let curve = try Faithfulness.tokenPerturbation(m, ids: ids, target: target, relevance: values, order: order,
                                                           replacement: try a.int("replacement", in: 0...(m.config.vocabSize - 1)))
            return .record(Record([("curve", .list(curve.map { .number($0) })), ("area", .number(Faithfulness.area(curve)))]))
        },
    ]

    // MARK: inputs and targets

    static func parameterGroups(_ a: Arguments) throws -> ParameterGroups {
        let known = ParameterGroups.names.map(\.0).joined(separator: ", ")
        func group(_ v: Value) throws -> ParameterGroups {
            guard case .string(let s) = v else { throw SparcError(.type, "attribute: parameters are named groups (\(known), all)") }
            if s == "all" { return .all }
            guard let g = ParameterGroups.names.first(where: { $0.0 == s })?.1 else {
                throw SparcError(.value, "attribute: unknown parameter group \(s) (one of \(known), or all)")
            }
            return g
        }
        switch a["parameters"] {
        case .list(let items): return try items.reduce(into: ParameterGroups()) { $0.formUnion(try group($1)) }
        default: return try group(a["parameters"])
        }
    }

    static func samplesFrom(_ inputs: Value, target: Value, model: Model) throws -> [AttributionSample] {
        // A task explains its own contrast (answer − foil) unless another target is given.
        if WorkflowBuiltins.isTask(inputs) {
            let task = try WorkflowBuiltins.contrastTask(inputs, model: model)
            if case .null = target { return task.samples }
            return zip(task.prompts, try targets(target, count: task.prompts.count, model: model)).map { AttributionSample(ids: $0, target: $1) }
        }
        func ids(_ v: Value) throws -> [Int] {
            switch v {
            case .string(let s): return model.tokenizer.encode(s)
            case .list:
                guard let ids = v.tokenIDs(vocabulary: model.config.vocabSize) else {
                    throw SparcError(.value, "attribute: token ids must be whole numbers in 0..<\(model.config.vocabSize)")
                }
                return ids
            default: throw SparcError(.type, "attribute: an input is a text or a list of token ids, got \(v.typeName)")
            }
        }
        let items: [Value]
        switch inputs {
        case .string: items = [inputs]
        case .list(let l) where l.first.map({ if case .number = $0 { return true }; return false }) ?? false: items = [inputs]
        case .list(let l): items = l
        default: throw SparcError(.type, "attribute: inputs must be a text or a list, got \(inputs.typeName)")
        }
        guard !items.isEmpty else { throw SparcError(.value, "attribute: no inputs") }
        return try zip(items, try targets(target, count: items.count, model: model)).map { AttributionSample(ids: try ids($0), target: $1) }
    }

    /// One target for every input, or a list with one per input.
    static func targets(_ target: Value, count: Int, model: Model) throws -> [AttributionTarget] {
        if case .list(let per) = target {
            guard per.count == count else {
                throw SparcError(.value, "attribute: \(per.count) targets for \(count) inputs")
            }
            return try per.map { try targetFrom($0, model: model) }
        }
        return [AttributionTarget](repeating: try targetFrom(target, model: model), count: count)
    }

    static func targetFrom(_ v: Value, model: Model) throws -> AttributionTarget {
        func token(_ v: Value) throws -> Int {
            switch v {
            case .number(let n) where n == n.rounded() && n >= 0 && n < Double(model.config.vocabSize): return Int(n)
            case .string(let s):
                let ids = model.tokenizer.encode(s, addSpecialTokens: false)
                guard ids.count == 1 else {
                    throw SparcError(.value, "target \(quote(s)) is \(ids.count) tokens for this model; give one token or its id")
                }
                return ids[0]
            default: throw SparcError(.value, "a target token is an id in 0..<\(model.config.vocabSize) or a one-token text")
            }
        }
        switch v {
        case .null: return .predicted
        case .string("predicted"): return .predicted
        case .string("lm"), .string("language_modeling"), .string("next_token"): return .languageModeling
        case .record(let r):
            guard let answer = r["answer"], let foil = r["foil"] else {
                throw SparcError(.value, "a contrast target is {answer: …, foil: …}")
            }
            return .contrast(answer: try token(answer), foil: try token(foil))
        default: return .token(try token(v))
        }
    }

    static func tokenRelevance(_ v: Value, count: Int) throws -> [Float] {
        let t: Tensor
        switch v {
        case .tensor(let x): t = x
        case .relevance(let r):
            guard r.level == .token, let x = r["tokens"] else {
                throw SparcError(.value, "expected a token-level relevance map of one input (attribute(…, level: \"token\"))")
            }
            t = x
        case .list(let l): t = try tensorFromList(l, context: "relevance")
        default: throw SparcError(.type, "relevance must be a token-level map, a tensor or a list, got \(v.typeName)")
        }
        guard t.count == count else { throw SparcError(.value, "relevance has \(t.count) values for \(count) tokens") }
        return t.scalars
    }

    // MARK: drawing

    static func heatmapHTML(_ m: Model, _ ids: [Int], _ r: [Float]) -> String {
        let peak = max(r.map { abs($0) }.max() ?? 1, 1e-12)
        func escape(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\n", with: "↵<br>")
        }
        var spans = ""
        for (id, v) in zip(ids, r) {
            let alpha = String(format: "%.3f", abs(v) / peak)
            let colour = v >= 0 ? "255,40,40" : "40,90,255"
            spans += "<span title=\"token \(id): \(String(format: "%.4g", v))\" style=\"background:rgba(\(colour),\(alpha))\">\(escape(m.tokenizer.decode([id])))</span>"
        }
        return """
            <!doctype html><html><head><meta charset="utf-8"><title>sparc token relevance</title>
            <style>body{font:16px/1.9 monospace;margin:2em;max-width:60em}span{padding:1px 0;border-radius:3px;white-space:pre-wrap}
            .key{font-size:12px;color:#555;margin-top:1.5em}</style></head><body>
            <div>\(spans)</div>
            <div class="key">red: positive relevance, blue: negative; opacity ∝ |relevance| (max \(String(format: "%.4g", peak))). Hover a token for its value.</div>
            </body></html>
            """
    }
}

import Foundation
import SparcAttribution
import SparcModel
import SparcPruning
import SparcTensor
import SparcWorkflows

/// Masks from relevance maps, and pruning with them.
enum PruningBuiltins {
    static let all: [Builtin] = [
        Builtin("bottomk", [Parameter("r"), Parameter("k"), Parameter("per", default: .string("global"))],
                summary: "Mask of the k least relevant elements (k < 1: a fraction), ranked globally, per layer or per row.") { a in
            .mask(try select(a, largest: false))
        },
        Builtin("threshold", [Parameter("r"), Parameter("value")], summary: "Mask of the elements whose relevance is above value (also r > value).") { a in
            .mask(try Selection.above(try map(a, "r"), Float(try a.number("value"))))
        },
        Builtin("count", [Parameter("mask")], summary: "Number of selected elements in a mask.") { a in
            .number(Double(try mask(a, "mask").count))
        },
        Builtin("sparsity", [Parameter("x")],
                summary: "Fraction selected by a mask, or fraction of zero block weights in a model.") { a in
            switch a["x"] {
            case .mask(let m): return .number(m.fraction)
            case .model(let m): return .number(Pruning.sparsity(m))
            default: throw a.fail("x", "a mask or a model", a["x"])
            }
        },
        Builtin("normalize", [Parameter("r"), Parameter("per", default: .string("layer"))],
                summary: "Divide each tensor of a map by its largest |value| (per: \"global\": by the map's).") { a in
            .relevance(Selection.normalize(try map(a, "r"), per: try scope(a)))
        },
        Builtin("prune", [Parameter("m"), Parameter("mask"), Parameter("ablation", default: .string("zero")), Parameter("reference", default: .null)],
                summary: "A new model with the masked weights, rows, neurons or heads removed (untouched tensors shared).",
                help: """
                    ablation: "zero" (default), or "mean": each removed part contributes its mean over reference (a task, a
                    text or a list of texts) — exact, through the layers' biases (added where a layer has none).
                    """) { a in
            let m = try a.model("m")
            return .model(try Pruning.prune(m, try mask(a, "mask"), ablation: try ablation(a, model: m, task: nil)))
        },
        Builtin("only", [Parameter("x"), Parameter("part")],
                summary: "A relevance map or mask restricted to part of the model: a part name or a regular expression on its keys.",
                help: """
                    part: "mlp", "attention", "fc1" (MLP input projections: gate/up, fc1, c_fc), "fc2" (down, fc2, mlp.c_proj),
                    "q", "k", "v", "o", "gate", "up", "down", "linear", "biases", "norms", "embeddings", "head" — the same
                    part in every family — or else a regular expression searched in each key, e.g. "layers\\.(3|4)\\.".
                    Rankings, masks, their complements and pruning then cover only that part: topk(only(r, "mlp"), 7000)
                    ranks globally over the MLP weights and prune(m, ~circuit) leaves attention intact.
                    """) { a in
            let spec = try a.string("part")
            let keep = try ModelParts.filter(spec)
            switch a["x"] {
            case .relevance(let r): return .relevance(try r.restricted(to: keep, description: quote(spec)))
            case .mask(let m): return .mask(try m.restricted(to: keep, description: quote(spec)))
            default: throw a.fail("x", "a relevance map or a mask", a["x"])
            }
        },
        Builtin("contrast", [Parameter("general"), Parameter("undesired"), Parameter("normalized", default: .bool(false))],
                summary: "Contrastive relevance R̄_general − R̄_undesired (Hatefi et al. 2025, Eq. 7): the most negative parts drive the undesired behaviour only.",
                help: """
                    bottomk(contrast(g, u), 100) are the parts to prune for targeted correction. normalized: true divides each
                    map by its largest |value| per tensor first (normalize()), so sample sets of different sizes compare.
                    """) { a in
            var g = try map(a, "general"), u = try map(a, "undesired")
            if try a.bool("normalized") { g = Selection.normalize(g); u = Selection.normalize(u) }
            guard case .relevance(var out) = try Operators.binary("-", .relevance(g), .relevance(u)).get() else {
                throw SparcError(.type, "contrast: the difference of two maps is a map")
            }
            out.provenance["contrast"] = try a.bool("normalized") ? "normalized general − normalized undesired" : "general − undesired (Eq. 7)"
            return .relevance(out)
        },
        Builtin("summary", [Parameter("mask")], summary: "Per tensor: selected, total and fraction, as a list of records.") { a in
            .list(try mask(a, "mask").summary.map { s in
                .record(Record([("name", .string(s.name)), ("selected", .number(Double(s.selected))),
                                ("total", .number(Double(s.total))), ("fraction", .number(s.total == 0 ? 0 : Double(s.selected) / Double(s.total)))]))
            })
        },
    ]

    /// `topk` on a relevance map (the tensor builtin forwards here).
    static func topk(_ a: Arguments) throws -> Value { .mask(try select(a, largest: true)) }

    static func select(_ a: Arguments, largest: Bool) throws -> Mask {
        let k = try a.number("k")
        // A fraction in [0, 1) or a whole count: checked here, as Selection turns counts into Ints.
        if !(k >= 0 && k < 1) { _ = try wholeNumber(k, "\(a.builtin.name): k (a fraction in [0, 1) or a count)", in: 1...wholeNumberRange.upperBound) }
        return try Selection.extreme(try map(a, "r"), k: k, largest: largest, per: try scope(a))
    }

    /// `ablation:` and `reference:` of prune, curve and circuit. Mean ablation needs the mean
    /// input of every linear layer over reference prompts: `reference`, else the task's.
    static func ablation(_ a: Arguments, model: Model, task: ContrastTask?) throws -> Pruning.Ablation {
        switch try a.string("ablation") {
        case "zero": return .zero
        case "mean":
            let prompts: [[Int]]
            if a.isGiven("reference") {
                prompts = try AttributionBuiltins.samplesFrom(a["reference"], target: .null, model: model).map(\.ids)
            } else if let task {
                prompts = task.prompts
            } else {
                throw SparcError(.value, "\(a.builtin.name): ablation: \"mean\" needs reference: prompts (a task, a text or a list of texts) to take the means over")
            }
            return .mean(try Attribution.inputMeans(model, prompts: prompts))
        default: throw SparcError(.value, "\(a.builtin.name): ablation must be \"zero\" or \"mean\"")
        }
    }

    static func scope(_ a: Arguments) throws -> Selection.Scope {
        guard let s = Selection.Scope(rawValue: try a.string("per")) else {
            throw SparcError(.value, "\(a.builtin.name): per must be \"global\", \"layer\" or \"row\"")
        }
        return s
    }

    static func map(_ a: Arguments, _ name: String) throws -> RelevanceMap {
        guard case .relevance(let r) = a[name] else { throw a.fail(name, "a relevance map", a[name]) }
        return r
    }

    static func mask(_ a: Arguments, _ name: String) throws -> Mask {
        guard case .mask(let m) = a[name] else { throw a.fail(name, "a mask", a[name]) }
        return m
    }
}

import Foundation
import SparcAttribution
import SparcModel
import SparcPruning
import SparcTensor

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
        Builtin("prune", [Parameter("m"), Parameter("mask")],
                summary: "A new model with the masked weights, neurons or heads zeroed (untouched tensors shared).") { a in
            .model(try Pruning.prune(try a.model("m"), try mask(a, "mask")))
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

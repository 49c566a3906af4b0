import Foundation
import SparcCluster
import SparcAttribution
import SparcFormats
import SparcModel
import SparcPruning
import SparcTensor
import SparcWorkflows

/// The SparC³ workflows in the language: tasks and circuits, behaviour metrics for
/// targeted correction, sparsity sweeps, and charts of the results.
enum WorkflowBuiltins {
    static let all: [Builtin] = [
        // MARK: tasks and circuits
        Builtin("ioi", [Parameter("n", default: .number(64)), Parameter("seed", default: .number(0))],
                summary: "An indirect-object-identification task of n prompts (stdlib/ioi.sparc), reproducible from seed.",
                help: "A task is a record {name, prompts, answers, foils}; the answer is the indirect object, the foil the subject.") { a in
            let n = try a.int("n", in: 1...1_000_000)
            return try a.call(try a.interpreter.stdlibMember("ioi", "ioi_task"), [.number(Double(n)), .number(Double(try a.int("seed")))])
        },
        Builtin("task", [Parameter("prompts"), Parameter("answers"), Parameter("foils"), Parameter("name", default: .string("task"))],
                summary: "A contrast task from prompts with their answer and foil next tokens (as attribute, score and circuit take).") { a in
            let r = Record([("name", a["name"]), ("prompts", a["prompts"]), ("answers", a["answers"]), ("foils", a["foils"])])
            _ = try texts(.record(r), field: "prompts", context: "task")
            return .record(r)
        },
        Builtin("score", [Parameter("m"), Parameter("task"), Parameter("metric", default: .string("logit_diff"))],
                summary: "A model's metric on a task: mean logit difference answer − foil, or \"accuracy\".") { a in
            let m = try a.model("m")
            return .number(try contrastTask(a["task"], model: m).score(m, metric: try metric(a)))
        },
        Builtin("curve", [Parameter("m"), Parameter("task"), Parameter("r"),
                          Parameter("fractions", default: defaultGrid),
                          Parameter("per", default: .string("row")), Parameter("metric", default: .string("logit_diff")),
                          Parameter("ablation", default: .string("zero")), Parameter("reference", default: .null)],
                summary: "Task metrics with only the top fraction of a ranking kept: a list of {kept, count, fraction, score, ratio, logit_diff, accuracy, kl}.",
                help: """
                    r: a relevance map, or a list of maps (one per reference set): then each point is the mean over the maps
                    with a standard deviation beside each measure (ratio_std, …), which plot() draws as a band.
                    Only r's keys are searched (restrict with only(r, "mlp")); the rest of the model is left intact.
                    ablation: "zero", or "mean" (pruned parts contribute their mean over reference — a task or prompts,
                    by default the task's own prompts). kl: KL(full model ‖ circuit) of the next-token distribution.
                    """) { a in
            let m = try a.model("m")
            let task = try contrastTask(a["task"], model: m)
            let fractions = try a.fractions("fractions")
            let rankings = try maps(a, "r")
            let ablation = try PruningBuiltins.ablation(a, model: m, task: task)
            let bar = ProgressBar("curve", total: fractions.count * rankings.count)
            defer { bar.finish() }
            var curves: [[CircuitSearch.Point]] = []
            for (k, ranking) in rankings.enumerated() {
                curves.append(try CircuitSearch.curve(m, task: task, ranking: ranking, fractions: fractions, per: try PruningBuiltins.scope(a),
                                                      metric: try metric(a), ablation: ablation) { bar.update(k * fractions.count + $0) })
            }
            if case .relevance = a["r"] { return .list(curves[0].map(record)) }
            return .list(try CircuitSearch.bands(curves).map { b in
                .record(Record([("kept", .number(b.kept)), ("curves", .number(Double(b.curves)))]
                               + b.measures.flatMap { [($0.name, Value.number($0.mean)), ($0.name + "_std", .number($0.std))] }))
            })
        },
        Builtin("band", [Parameter("curves")],
                summary: "Curves (lists of point records on the same fractions, e.g. one curve() per reference set) as one curve of mean ± std.",
                help: "Every numeric field f of the points becomes its mean, with the sample standard deviation beside it as f_std; plot() draws the band.") { a in
            let curves = try a.list("curves").map { c -> [Record] in
                guard case .list(let points) = c, !points.isEmpty else { throw SparcError(.type, "band: curves must be non-empty lists of point records") }
                return try points.map { p in
                    guard case .record(let r) = p else { throw SparcError(.type, "band: a point is a \(p.typeName), not a record") }
                    return r
                }
            }
            guard let first = curves.first else { throw SparcError(.value, "band: no curves") }
            guard curves.allSatisfy({ $0.count == first.count }) else { throw SparcError(.value, "band: the curves have different numbers of points") }
            return .list(try first.indices.map { i in
                var fields: [(String, Value)] = [("curves", .number(Double(curves.count)))]
                for key in first[i].keys where key != "curves" && !key.hasSuffix("_std") {
                    guard case .number = first[i][key]! else { continue }
                    let xs = try curves.map { c -> Double in
                        guard case .number(let x)? = c[i][key] else { throw SparcError(.value, "band: point \(i) of a curve has no number \(key)") }
                        return x
                    }
                    if key == "kept" {
                        // The same fraction in every curve, compared as given (a mean of six
                        // equal doubles need not equal them).
                        guard xs.allSatisfy({ $0 == xs[0] }) else { throw SparcError(.value, "band: the curves are not on the same fractions (point \(i))") }
                        fields.append((key, .number(xs[0])))
                        continue
                    }
                    let (mean, std) = CircuitSearch.meanAndStandardDeviation(xs)
                    fields.append((key, .number(mean)))
                    fields.append((key + "_std", .number(std)))
                }
                return .record(Record(fields))
            })
        },
        Builtin("circuit", [Parameter("m"), Parameter("task"), Parameter("r"), Parameter("keep", default: .number(0.8)),
                            Parameter("per", default: .string("row")), Parameter("grid", default: defaultGrid), Parameter("refine", default: .number(5)),
                            Parameter("metric", default: .string("logit_diff")), Parameter("ablation", default: .string("zero")),
                            Parameter("reference", default: .null)],
                summary: "The smallest top-ranked circuit keeping ≥ keep of the full model's task metric.",
                help: """
                    Returns {mask, kept, count, model_fraction, score, ratio, full, logit_diff, accuracy, kl, curve, components}
                    (kept: the fraction of the searched set the circuit holds, after rounding to whole elements):
                    prune(m, ~result.mask) runs the circuit alone. Only r's keys are searched (only(r, "mlp"): the MLP
                    weights, attention intact); kept is the circuit's fraction of that set, model_fraction its fraction of
                    the whole model at its granularity; components lists the heads kept, or the units kept (nil above 64 units).
                    per: the ranking scope, "row" by default ("global" for a global ranking over the searched set).
                    ablation: "zero" or "mean" (as in curve).
                    """) { a in
            let m = try a.model("m")
            let task = try contrastTask(a["task"], model: m)
            let grid = try a.fractions("grid")
            // Each refinement step is a full evaluation of the task.
            let refine = try a.int("refine", in: 0...100)
            // The fraction of the full metric to keep: a ratio, so (0, 100] is generous.
            let keep = try a.number("keep")
            guard keep > 0, keep <= 100 else { throw SparcError(.value, "circuit: keep must be a fraction of the metric in (0, 100], got \(formatNumber(keep))") }
            let ablation = try PruningBuiltins.ablation(a, model: m, task: task)
            let bar = ProgressBar("circuit", total: grid.count + refine)
            defer { bar.finish() }
            let r = try CircuitSearch.smallest(m, task: task, ranking: try PruningBuiltins.map(a, "r"), target: keep, grid: grid,
                                               refine: refine, per: try PruningBuiltins.scope(a), metric: try metric(a), ablation: ablation) { bar.update($0) }
            var fields: [(String, Value)] = [("mask", .mask(r.circuit)), ("kept", .number(r.point.fraction)), ("count", .number(Double(r.point.count))),
                                             ("model_fraction", .number(r.modelFraction)), ("score", .number(r.point.score)),
                                             ("ratio", .number(r.point.ratio)), ("full", .number(r.fullScore)),
                                             ("logit_diff", .number(r.point.evaluation.logitDifference)),
                                             ("accuracy", .number(r.point.evaluation.accuracy)), ("kl", .number(r.point.evaluation.kl)),
                                             ("curve", .list(r.curve.map(record)))]
            // nil for weight and row circuits, or when too many heads/units to read.
            fields.append(("components", CircuitSearch.components(of: r.circuit, model: m).map { .list($0.map { .string($0) }) } ?? .null))
            return .record(Record(fields))
        },
        Builtin("random_map", [Parameter("r"), Parameter("seed", default: .number(0))],
                summary: "A map of uniform noise shaped like r: topk of it is a random mask, the baseline for rankings.") { a in
            .relevance(CircuitSearch.randomRanking(like: try PruningBuiltins.map(a, "r"), seed: UInt64(bitPattern: Int64(try a.int("seed")))))
        },

        // MARK: data
        Builtin("jsonl", [Parameter("path")],
                summary: "The records of a JSON-lines file (one JSON object a line), e.g. the RealToxicityPrompts slice of `sparc install rtp-toxic`.") { a in
            let path = try a.string("path")
            let text = try readSourceFile(path).get()
            var out: [Value] = []
            for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                guard !line.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { continue }
                // Nesting is bounded by the decoder (it refuses very deep input), not by our stack.
                guard let object = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)), case .object = object else {
                    throw SparcError(.value, "jsonl: \(path):\(i + 1): not a JSON object")
                }
                out.append(object.value)
            }
            return .list(out)
        },

        // MARK: behaviours
        Builtin("repetition", [Parameter("texts"), Parameter("n", default: .number(3))],
                summary: "Rate of repeated word n-grams (1 − distinct / all), averaged over the texts.") { a in
            let xs = try texts(a["texts"], context: "repetition")
            let n = try a.int("n")
            guard n >= 1 else { throw SparcError(.value, "repetition: n must be at least 1") }
            return .number(xs.map { Repetition.rate($0, n: n) }.reduce(0, +) / Double(xs.count))
        },
        Builtin("rur", [Parameter("texts"), Parameter("m", default: .null)],
                summary: "Response Uniqueness Ratio (Hatefi et al. 2025, Eq. 11): |unique tokens| / |tokens|, averaged over the texts.",
                help: "Tokens are the model's when m is given (the paper's definition), else lower-cased words. Lists of token ids count as given.") { a in
            let items: [Value]
            if case .list(let l) = a["texts"], l.first.map({ if case .number = $0 { return false }; return true }) ?? true { items = l } else { items = [a["texts"]] }
            guard !items.isEmpty else { throw SparcError(.value, "rur: no texts") }
            let model: Model? = a.isGiven("m") ? try a.model("m") : nil
            let ratios = try items.map { v -> Double in
                switch v {
                case .string(let s):
                    if let model { return Repetition.uniquenessRatio(model.tokenizer.encode(s, addSpecialTokens: false)) }
                    return Repetition.uniquenessRatio(Repetition.words(s))
                case .list:
                    guard let ids = v.tokenIDs(vocabulary: Int.max) else { throw SparcError(.value, "rur: token ids must be whole numbers ≥ 0") }
                    return Repetition.uniquenessRatio(ids)
                default: throw SparcError(.type, "rur: expected texts or token-id lists, found a \(v.typeName)")
                }
            }
            return .number(ratios.reduce(0, +) / Double(ratios.count))
        },
        Builtin("toxicity", [Parameter("texts"), Parameter("words", default: .null), Parameter("command", default: .null),
                             Parameter("timeout", default: .number(600))],
                summary: "Mean toxicity score of the texts: flagged by a word list (default), or scored by an external command.",
                help: """
                    words: a word-list file (one word or phrase per line); default: better-profanity's list, installed by
                    `sparc install profanity`. command: a program that reads JSON lines {"text": …} and writes one score per line;
                    it is stopped after timeout seconds.
                    """) { a in
            let xs = try texts(a["texts"], context: "toxicity")
            let s = try scorer(a).scores(xs)
            return .number(s.reduce(0, +) / Double(s.count))
        },
        Builtin("harvest", [Parameter("m"), Parameter("prompts"), Parameter("flag"), Parameter("max_tokens", default: .number(32)),
                            Parameter("samples", default: .number(1)), Parameter("temperature", default: .number(0)),
                            Parameter("seed", default: .number(0)), Parameter("chat", default: .bool(false))],
                summary: "Generate from each prompt and keep prompt + continuation where flag(continuation) is true (or > 0).",
                help: """
                    flag: a function of the continuation's text, e.g. fn(t) => repetition(t) > 0.5. The kept texts are reference
                    samples of the behaviour. Greedy by default; samples: n continuations per prompt at temperature > 0 (seeded).
                    """) { a in
            let m = try a.model("m")
            let prompts = try texts(a["prompts"], context: "harvest")
            // Each sample is a generation: more than 10,000 per prompt is a mistake, not a plan.
            let maxTokens = try a.int("max_tokens", in: 0...wholeNumberRange.upperBound), samples = try a.int("samples", in: 1...10_000)
            let temperature = try a.temperature()
            guard samples == 1 || temperature > 0 else { throw SparcError(.value, "harvest: several samples per prompt need temperature > 0 (greedy gives one continuation)") }
            let seed = try a.int("seed")
            let bar = ProgressBar("harvest", total: prompts.count * samples)
            defer { bar.finish() }
            // Every (prompt, sample) pair, generated in batches of 32 sequences.
            let pairs = prompts.indices.flatMap { i in (0..<samples).map { (i, $0) } }
            let chat = try a.bool("chat")
            // Each rank generates its shard of the pairs (whole batches of 32 sequences); the
            // continuations are gathered, and every rank applies the flag to all of them.
            let world = World.current
            let mine = world.shard(batches: pairs.count, of: 32)
            var continuations: [String] = []
            for start in stride(from: mine.lowerBound, to: mine.upperBound, by: 32) {
                let chunk = pairs[start..<min(start + 32, mine.upperBound)]
                let ids = chunk.map { m.tokenizer.encode(chat ? m.architecture.chatPrompt(user: prompts[$0.0]) : prompts[$0.0]) }
                let samplings: [Sampling] = chunk.map { i, k in
                    temperature > 0 ? .sample(temperature: temperature, topK: nil, topP: nil, seed: UInt64(bitPattern: Int64(seed &+ i &* 7919 &+ k))) : .greedy
                }
                let outs = try m.generate(batch: ids, maxTokens: maxTokens, samplings: samplings)
                continuations += outs.map { m.tokenizer.decode($0, skipSpecialTokens: true) }
                bar.update(world.progress(continuations.count, of: pairs.count))
            }
            continuations = try world.gather(continuations)
            var kept: [Value] = []
            for ((i, _), continuation) in zip(pairs, continuations) {
                if try a.call(a["flag"], [.string(continuation)]).isTruthyFlag { kept.append(.string(prompts[i] + continuation)) }
            }
            return .list(kept)
        },

        // MARK: sweeps and charts
        Builtin("sweep", [Parameter("m"), Parameter("maps"), Parameter("sparsities"), Parameter("text"),
                          Parameter("per", default: .string("row")), Parameter("window", default: .number(256))],
                summary: "Perplexity after pruning the least relevant fraction by each map: {dense, curves: {name: [[sparsity, ppl], …]}}.") { a in
            let m = try a.model("m")
            guard case .record(let maps) = a["maps"] else { throw a.fail("maps", "a record name → relevance map", a["maps"]) }
            let levels = try a.list("sparsities").map { v -> Double in
                guard case .number(let s) = v, s >= 0, s < 1 else { throw SparcError(.value, "sweep: sparsities are fractions in [0, 1)") }
                return s
            }
            let ids = try a.tokens("text", model: m)
            let window = try a.int("window"), scope = try PruningBuiltins.scope(a)
            let bar = ProgressBar("sweep", total: maps.keys.count * levels.count + 1)
            defer { bar.finish() }
            let dense = try m.perplexity(ids, window: window).perplexity
            let rankings = try maps.keys.map { name -> RelevanceMap in
                guard case .relevance(let r) = maps[name]! else { throw SparcError(.type, "sweep: maps.\(name) is a \(maps[name]!.typeName), not a relevance map") }
                return r
            }
            // Every (map, sparsity) point is independent: split over the ranks.
            let perplexities = try World.current.map(rankings.count * levels.count, done: { bar.update(1 + $0) }) { i in
                let pruned = try Pruning.prune(m, try Selection.extreme(rankings[i / levels.count], k: levels[i % levels.count], largest: false, per: scope))
                return try pruned.perplexity(ids, window: window).perplexity
            }
            let curves = maps.keys.enumerated().map { j, name -> (String, Value) in
                (name, .list(levels.enumerated().map { k, s in .list([.number(s), .number(perplexities[j * levels.count + k])]) }))
            }
            return .record(Record([("dense", .number(dense)), ("curves", .record(Record(curves)))]))
        },
        Builtin("plot", [Parameter("series"), Parameter("path"), Parameter("title", default: .string("")),
                         Parameter("x", default: .string("x")), Parameter("y", default: .string("y")),
                         Parameter("log_x", default: .bool(false)), Parameter("log_y", default: .bool(false))],
                summary: "Draw curves as an SVG line chart: series is a record name → list of [x, y] pairs (or of records with fields x and y).",
                help: "Records that also carry a field named y + \"_std\" (curve() over several maps) are drawn with a ±std band.") { a in
            guard case .record(let r) = a["series"] else { throw a.fail("series", "a record name → list of points", a["series"]) }
            let xField = try a.string("x"), yField = try a.string("y")
            let series = try r.keys.map { name -> Charts.Series in
                guard case .list(let items) = r[name]! else { throw SparcError(.type, "plot: series \(name) must be a list of points") }
                // Records carrying "<y>_std" (curves over several reference sets) get a band.
                let spread = items.map { v -> Double? in if case .record(let p) = v, case .number(let s)? = p[yField + "_std"] { return s }; return nil }
                return Charts.Series(name: name, points: try items.map { try point($0, xField, yField, series: name) },
                                     spread: spread.allSatisfy { $0 != nil } ? spread.map { $0! } : nil)
            }
            let svg = Charts.lines(series, title: try a.string("title"), xLabel: xField, yLabel: yField,
                                   logX: try a.bool("log_x"), logY: try a.bool("log_y"))
            return .string(try writeSVG(svg, try a.outputPath("path"), speaks: a.interpreter.speaks))
        },
        Builtin("draw", [Parameter("mask"), Parameter("path"), Parameter("m", default: .null), Parameter("by", default: .string("component")),
                         Parameter("title", default: .string(""))],
                summary: "Draw where a mask's elements sit, per layer and component (or head: by: \"head\"), as an SVG heatmap.") { a in
            let mask = try PruningBuiltins.mask(a, "mask")
            let m = try a.model("m")
            let table = switch try a.string("by") {
            case "component": try Composition.byComponent(mask, model: m)
            case "head": try Composition.byHead(mask, model: m)
            default: throw SparcError(.value, "draw: by must be \"component\" or \"head\"")
            }
            let title = try a.string("title")
            let svg = Charts.heatmap(table.values, rowLabels: table.rowLabels, columnLabels: table.columnLabels,
                                     title: title.isEmpty ? "\(mask.granularity.rawValue) mask: \(mask.count) selected" : title)
            return .string(try writeSVG(svg, try a.outputPath("path"), speaks: a.interpreter.speaks))
        },
        Builtin("composition", [Parameter("mask"), Parameter("m"), Parameter("by", default: .string("component"))],
                summary: "The fractions draw() shows, as a record {rows, columns, values}.") { a in
            let mask = try PruningBuiltins.mask(a, "mask"), m = try a.model("m")
            let by = try a.string("by")
            guard by == "component" || by == "head" else { throw SparcError(.value, "composition: by must be \"component\" or \"head\"") }
            let t = by == "head" ? try Composition.byHead(mask, model: m) : try Composition.byComponent(mask, model: m)
            return .record(Record([("rows", .list(t.rowLabels.map { .string($0) })), ("columns", .list(t.columnLabels.map { .string($0) })),
                                   ("values", .list(t.values.map { .list($0.map { .number($0) }) }))]))
        },
    ]

    // MARK: helpers

    static let defaultGrid = Value.list([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1].map { .number($0) })

    /// A task value (a record {prompts, answers, foils}) checked and tokenized for a model.
    static func contrastTask(_ v: Value, model: Model) throws -> ContrastTask {
        guard case .record(let r) = v else { throw SparcError(.type, "a task is a record {prompts, answers, foils} (ioi(…) or task(…)), got \(v.typeName)") }
        let name = r["name"]?.stringValue ?? "task"
        return try ContrastTask(name: name, prompts: try texts(v, field: "prompts", context: name), answers: try texts(v, field: "answers", context: name),
                         foils: try texts(v, field: "foils", context: name), tokenizer: model.tokenizer)
    }

    static func isTask(_ v: Value) -> Bool {
        if case .record(let r) = v { return r["prompts"] != nil && r["answers"] != nil && r["foils"] != nil }
        return false
    }

    /// A text or a list of texts (or a record's list field).
    static func texts(_ v: Value, field: String? = nil, context: String) throws -> [String] {
        var value = v
        if let field {
            guard case .record(let r) = v, let f = r[field] else { throw SparcError(.value, "\(context): a task needs a field \(field)") }
            value = f
        }
        switch value {
        case .string(let s): return [s]
        case .list(let items):
            guard !items.isEmpty else { throw SparcError(.value, "\(context): no texts\(field.map { " in \($0)" } ?? "")") }
            return try items.map { x in
                guard case .string(let s) = x else { throw SparcError(.type, "\(context): expected texts\(field.map { " in \($0)" } ?? ""), found a \(x.typeName)") }
                return s
            }
        default: throw SparcError(.type, "\(context): expected a text or a list of texts, got \(value.typeName)")
        }
    }

    static func metric(_ a: Arguments) throws -> ContrastTask.Metric {
        guard let m = ContrastTask.Metric(rawValue: try a.string("metric")) else {
            throw SparcError(.value, "\(a.builtin.name): metric must be \"logit_diff\" or \"accuracy\"")
        }
        return m
    }

    static func scorer(_ a: Arguments) throws -> TextScorer {
        if a.isGiven("command") {
            let timeout = try a.number("timeout")
            guard timeout > 0, timeout <= 1e6 else { throw SparcError(.value, "toxicity: timeout must be in (0, 1000000] seconds, got \(formatNumber(timeout))") }
            return CommandScorer(command: try a.string("command"), timeout: timeout)
        }
        let path: String
        if a.isGiven("words") { path = try a.string("words") } else {
            path = ModelRegistry.path(of: ModelRegistry.installable(named: "profanity")!)
            guard FileManager.default.fileExists(atPath: path) else {
                throw SparcError(.value, "toxicity: no word list installed at \(path); run `sparc install profanity` or pass words: \"FILE\"")
            }
        }
        return try WordListScorer(path: path)
    }

    /// A JSON value, decoded strictly (true is not 1), as a language value; object keys sorted.
    enum JSONValue: Decodable {
        case null, bool(Bool), number(Double), string(String), list([JSONValue]), object([String: JSONValue])

        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null }
            else if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let n = try? c.decode(Double.self) { self = .number(n) }
            else if let s = try? c.decode(String.self) { self = .string(s) }
            else if let l = try? c.decode([JSONValue].self) { self = .list(l) }
            else { self = .object(try c.decode([String: JSONValue].self)) }
        }

        var value: Value {
            switch self {
            case .null: return .null
            case .bool(let b): return .bool(b)
            case .number(let n): return .number(n)
            case .string(let s): return .string(s)
            case .list(let l): return .list(l.map(\.value))
            case .object(let d): return .record(Record(d.keys.sorted().map { ($0, d[$0]!.value) }))
            }
        }
    }

    static func record(_ p: CircuitSearch.Point) -> Value {
        .record(Record([("kept", .number(p.kept)), ("count", .number(Double(p.count))), ("fraction", .number(p.fraction)), ("score", .number(p.score)), ("ratio", .number(p.ratio)),
                        ("logit_diff", .number(p.evaluation.logitDifference)), ("accuracy", .number(p.evaluation.accuracy)),
                        ("kl", .number(p.evaluation.kl))]))
    }

    /// One relevance map, or a non-empty list of them.
    static func maps(_ a: Arguments, _ name: String) throws -> [RelevanceMap] {
        switch a[name] {
        case .relevance(let r): return [r]
        case .list(let items) where !items.isEmpty:
            return try items.map { v in
                guard case .relevance(let r) = v else { throw SparcError(.type, "\(a.builtin.name): \(name) must be a relevance map or a list of maps, found a \(v.typeName)") }
                return r
            }
        default: throw a.fail(name, "a relevance map or a non-empty list of maps", a[name])
        }
    }

    static func point(_ v: Value, _ x: String, _ y: String, series: String) throws -> (x: Double, y: Double) {
        switch v {
        case .list(let l) where l.count == 2:
            if case .number(let a) = l[0], case .number(let b) = l[1] { return (a, b) }
        case .record(let r):
            if case .number(let a)? = r[x], case .number(let b)? = r[y] { return (a, b) }
        default: break
        }
        throw SparcError(.value, "plot: a point of \(series) is \(v.repr.prefix(60)); expected [x, y] or a record with numeric \(x) and \(y)")
    }

    static func writeSVG(_ svg: String, _ path: String, speaks: Bool) throws -> String {
        guard path.hasSuffix(".svg") else { throw SparcError(.value, "charts are written as SVG: give a path ending in .svg") }
        if speaks { try AtomicWrite.write(Data(svg.utf8), to: path) }
        return path
    }
}

extension Arguments {
    /// A non-empty list of fractions in [0, 1].
    func fractions(_ name: String) throws -> [Double] {
        let xs = try list(name).map { v -> Double in
            guard case .number(let f) = v, f >= 0, f <= 1 else { throw SparcError(.value, "\(builtin.name): \(name) are fractions in [0, 1]") }
            return f
        }
        guard !xs.isEmpty else { throw SparcError(.value, "\(builtin.name): \(name) is empty") }
        return xs
    }
}

extension Value {
    var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    /// A flag callback's answer: true, or a number above 0.
    var isTruthyFlag: Bool {
        switch self {
        case .bool(let b): return b
        case .number(let n): return n > 0
        default: return false
        }
    }
}

import Foundation
import Testing
@testable import SparcLang
import SparcModel

@Suite struct WorkflowBuiltinTests {
    func session() throws -> Session {
        let s = Session()
        s.interpreter.modulePath = [Paths.repo.appendingPathComponent("stdlib").path]
        try s.run("let m = load_model(\"\(Paths.tinyModel)\")")
        return s
    }

    @Test func ioiPromptsAreSeededAndWellFormed() throws {
        let s = try session()
        #expect(try s.eval("ioi(n: 12, seed: 3) == ioi(n: 12, seed: 3)") == "true")
        #expect(try s.eval("ioi(n: 12, seed: 3).prompts != ioi(n: 12, seed: 4).prompts") == "true")
        try s.run("let t = ioi(n: 40, seed: 5)")
        #expect(try s.eval("len(t.prompts) == 40 and len(t.answers) == 40 and len(t.foils) == 40") == "true")
        // The subject (foil) is named twice, the indirect object (answer) once, and the
        // prompt stops where the indirect object is due.
        for i in 0..<40 {
            guard case .string(let p) = try s.run("t.prompts[\(i)]"), case .string(let a) = try s.run("t.answers[\(i)]"),
                  case .string(let f) = try s.run("t.foils[\(i)]") else { Issue.record("not texts"); continue }
            let words = p.split { !$0.isLetter }.map(String.init)
            #expect(a != f && a.hasPrefix(" ") && f.hasPrefix(" "))
            #expect(words.filter { $0 == f.dropFirst() }.count == 2, "\(p)")
            #expect(words.filter { $0 == a.dropFirst() }.count == 1, "\(p)")
            #expect(p.hasSuffix(" to"), "\(p)")
        }
        // Both orders occur (ABBA and BABA).
        let firsts = try (0..<40).map { i -> Bool in
            guard case .string(let p) = try s.run("t.prompts[\(i)]"), case .string(let a) = try s.run("t.answers[\(i)]") else { return false }
            return p.range(of: String(a.dropFirst()))!.lowerBound < p.range(of: String((try s.run("t.foils[\(i)]")).displayString.dropFirst()))!.lowerBound
        }
        #expect(firsts.contains(true) && firsts.contains(false))
        #expect(s.error("ioi(n: 0)").contains("ioi: n must be in 1...1000000, got 0"))
    }

    @Test func tasksScoresAndCircuits() throws {
        let s = try session()
        try s.run("let t = task([\"ab\", \"cd\", \"ef\"], [\"a\", \"b\", \"c\"], [\"d\", \"e\", \"f\"], name: \"letters\")")
        #expect(try s.eval("type(score(m, t))") == "\"number\"")
        #expect(try s.eval("score(m, t, metric: \"accuracy\") * 3 == round(score(m, t, metric: \"accuracy\") * 3)") == "true")
        #expect(s.error("score(m, task([\"ab\"], [\"hello\"], [\"d\"]))").contains("task: the answer of prompt 0, \"hello\", is 3 tokens for this model; answers and foils must be single tokens"))
        #expect(s.error("score(m, {prompts: [\"ab\"], answers: [\"a\"]})").contains("a task needs a field foils"))
        #expect(s.error("score(m, t, metric: \"f1\")").contains("metric must be \"logit_diff\" or \"accuracy\""))
        // A task's default attribution target is its contrast.
        try s.run("let r = attribute(m, t, method: \"lrp\")")
        #expect(try s.eval("r == attribute(m, t.prompts, target: [{answer: \"a\", foil: \"d\"}, {answer: \"b\", foil: \"e\"}, {answer: \"c\", foil: \"f\"}])") == "true")
        try s.run("let c = curve(m, t, r, fractions: [0.5, 1])")
        #expect(try s.eval("c[1].ratio") == "1")
        #expect(try s.eval("keys(c[0])") == "[\"kept\", \"count\", \"fraction\", \"score\", \"ratio\", \"logit_diff\", \"accuracy\", \"kl\"]")
        #expect(try s.eval("count(topk(random_map(r, seed: 1), 0.1)) == count(topk(r, 0.1))") == "true")
        #expect(try s.eval("random_map(r, seed: 1) == random_map(r, seed: 1)") == "true")
        #expect(s.error("curve(m, t, r, fractions: [2])").contains("fractions are fractions in [0, 1]"))
    }

    /// The paper's protocols in the language: parts, rows, mean ablation, bands, RUR, Eq. 7.
    @Test func paperProtocolBuiltins() throws {
        let s = try session()
        try s.run("let t = task([\"ab\", \"cd\", \"ef\"], [\"a\", \"b\", \"c\"], [\"d\", \"e\", \"f\"])")
        try s.run("let r = attribute(m, t)")
        // only(): the MLP weights of every layer, nothing else; masks of them stay inside.
        #expect(try s.eval("len(keys(only(r, \"mlp\"))) == len(keys(only(r, \"fc1\"))) + len(keys(only(r, \"fc2\")))") == "true")
        #expect(try s.eval("len(keys(only(r, \"mlp\"))) + len(keys(only(r, \"attention\"))) == len(keys(r))") == "true")
        #expect(try s.eval("len(summary(~topk(only(r, \"mlp\"), 100, per: \"global\"))) == len(keys(only(r, \"mlp\")))") == "true")
        #expect(try s.eval("count(topk(only(r, \"mlp\"), 100, per: \"global\"))") == "100")
        #expect(s.error("only(r, \"zzz\")").contains("no key of this weight map matches"))
        #expect(s.error("only(1, \"mlp\")").contains("only: x must be a relevance map or a mask"))
        // Rows: a weight map summed per output unit; attribute(level: "row") is the same.
        #expect(try s.eval("rows(r, m) == attribute(m, t, level: \"row\")") == "true")
        #expect(try s.eval("abs(sum(rows(r, m)[keys(r)[0]]) - sum(r[keys(r)[0]])) < 1e-4") == "true")
        // Aggregation: Eq. 1's signed mean, or each input's |R| averaged.
        #expect(try s.eval("attribute(m, t, aggregate: \"mean_abs\") == attribute(m, t, absolute: true)") == "true")
        #expect(s.error("attribute(m, t, aggregate: \"median\")").contains("aggregate must be"))
        // Mean ablation needs reference prompts outside a task; curves over several maps give bands.
        #expect(s.error("prune(m, topk(r, 0.5), ablation: \"mean\")").contains("needs reference"))
        #expect(try s.eval("type(prune(m, topk(r, 0.5), ablation: \"mean\", reference: t))") == "\"model\"")
        try s.run("let b = curve(m, t, [r, random_map(r, seed: 1)], fractions: [0.5, 1], ablation: \"mean\")")
        #expect(try s.eval("b[1].ratio == 1 and b[1].ratio_std == 0 and b[0].curves == 2") == "true")
        // band() combines curves computed one at a time (one reference set each) the same way.
        try s.run("let c1 = curve(m, t, r, fractions: [0.5, 1], ablation: \"mean\")")
        try s.run("let c2 = curve(m, t, random_map(r, seed: 1), fractions: [0.5, 1], ablation: \"mean\")")
        #expect(try s.eval("abs(band([c1, c2])[0].ratio - b[0].ratio) < 1e-12 and abs(band([c1, c2])[0].kl_std - b[0].kl_std) < 1e-12") == "true")
        #expect(s.error("band([c1, c2[0:1]])").contains("different numbers of points"))
        // Six curves at 0.05: the mean of six 0.05s is not 0.05 in doubles; the fraction stays as given.
        try s.run("let p = {kept: 0.05, ratio: 1}\nlet six = band([[p], [p], [p], [p], [p], [{kept: 0.05, ratio: 0.4}]])")
        #expect(try s.eval("six[0].kept == 0.05 and abs(six[0].ratio - 0.9) < 1e-12 and six[0].curves == 6") == "true")
        #expect(s.error("band([[p], [{kept: 0.1, ratio: 1}]])").contains("not on the same fractions (point 0)"))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sparc-band-\(getpid()).svg").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try s.run("plot({lrp: b}, \"\(path)\", x: \"kept\", y: \"ratio\")")
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains("<polygon"))
        // A head circuit lists its heads.
        try s.run("let t2 = task(t.prompts, t.foils, t.answers)")
        try s.run("let c = circuit(m, t2, attribute(m, t2, level: \"head\"), keep: 0.5, per: \"global\", grid: [0.5, 1], refine: 0)")
        #expect(try s.eval("len(c.components) == count(c.mask) and c.model_fraction == count(c.mask) / 8") == "true")
        // RUR (Eq. 11) on words or on the model's tokens; Eq. 7 raw or normalised.
        #expect(try s.eval("rur([\"the the the cat\", \"a b c\"])") == "0.75")
        #expect(try s.eval("rur([1, 1, 2, 2])") == "0.5")
        #expect(try s.eval("contrast(r, r * 2) == r - r * 2") == "true")
        #expect(try s.eval("contrast(r, r * 2, normalized: true) == normalize(r) - normalize(r * 2)") == "true")
    }

    /// A list of prompts is generated as a batch, each exactly as alone (seed + i when sampling).
    @Test func generateTakesAListOfPrompts() throws {
        let s = try session()
        #expect(try s.eval("generate(m, [\"ab\", \"cde\"], max_tokens: 6) == [generate(m, \"ab\", max_tokens: 6), generate(m, \"cde\", max_tokens: 6)]") == "true")
        #expect(try s.eval("generate(m, [\"ab\", \"cde\"], max_tokens: 6, temperature: 0.8, seed: 4) == [generate(m, \"ab\", max_tokens: 6, temperature: 0.8, seed: 4), generate(m, \"cde\", max_tokens: 6, temperature: 0.8, seed: 5)]") == "true")
        #expect(try s.eval("harvest(m, [\"ab\", \"cde\"], fn(t) => true, max_tokens: 4) == [\"ab\" + generate(m, \"ab\", max_tokens: 4), \"cde\" + generate(m, \"cde\", max_tokens: 4)]") == "true")
    }

    /// JSON lines (the RealToxicityPrompts slice's format) as records; a bad line is named.
    @Test func jsonLinesAreRecords() throws {
        let s = try session()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sparc-\(getpid()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "{\"text\": \"a\", \"toxicity\": 0.95, \"ok\": true, \"tags\": [1, null]}\n\n{\"text\": \"b\", \"toxicity\": 1}\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try s.eval("jsonl(\"\(path)\")") == "[{ok: true, tags: [1, nil], text: \"a\", toxicity: 0.95}, {text: \"b\", toxicity: 1}]")
        try "{\"text\": 1}\n[1, 2]\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(s.error("jsonl(\"\(path)\")").contains(":2: not a JSON object"))
    }

    @Test func behaviourMetricsAndHarvest() throws {
        let s = try session()
        #expect(try s.eval("repetition(\"a b c a b c a b c\")") == Value.number(1 - 3.0 / 7).repr)
        #expect(try s.eval("repetition([\"a b c d\", \"x x x x x\"], n: 1)") == Value.number(0.4).repr)
        let list = NSTemporaryDirectory() + "sparc-words-\(UUID().uuidString).txt"
        defer { try? FileManager.default.removeItem(atPath: list) }
        try "rude\n".write(toFile: list, atomically: true, encoding: .utf8)
        #expect(try s.eval("toxicity([\"so rude\", \"kind\"], words: \"\(list)\")") == "0.5")
        #expect(try s.eval("toxicity([\"a\", \"b\"], command: \"awk '\\{ print NR \\}'\")") == "1.5")
        #expect(s.error("toxicity(\"x\", words: \"/no/such/list\")").contains("cannot read the word list /no/such/list"))
        try s.run("let ps = [\"ab\", \"cd\", \"ef\"]")
        #expect(try s.eval("len(harvest(m, ps, fn(t) => true, max_tokens: 3))") == "3")
        #expect(try s.eval("harvest(m, ps, fn(t) => false, max_tokens: 3)") == "[]")
        #expect(try s.eval("harvest(m, ps, fn(t) => true, max_tokens: 3)[0][0:2]") == "\"ab\"")
        #expect(try s.eval("len(harvest(m, ps, fn(t) => 1, max_tokens: 2, samples: 2, temperature: 1))") == "6")
        #expect(s.error("harvest(m, ps, fn(t) => true, samples: 2)").contains("need temperature > 0"))
    }

    @Test func sweepsAndCharts() throws {
        let s = try session()
        let dir = NSTemporaryDirectory() + "sparc-charts-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try s.run("let r = attribute(m, \"hello world\", method: \"magnitude\")\nlet sw = sweep(m, {magnitude: r}, [0, 0.5], range(40), window: 16)")
        #expect(try s.eval("sw.curves.magnitude[0][1] == sw.dense") == "true")
        #expect(try s.eval("sw.curves.magnitude[1][1] != sw.dense") == "true")
        try s.run("plot(sw.curves, \"\(dir)/sweep.svg\", x: \"sparsity\", y: \"perplexity\", log_y: true)")
        let svg = try String(contentsOfFile: dir + "/sweep.svg", encoding: .utf8)
        #expect(svg.contains("<polyline") && svg.contains("perplexity"))
        try s.run("draw(topk(r, 0.1), \"\(dir)/mask.svg\", m: m)\ndraw(topk(r, 0.1), \"\(dir)/heads.svg\", m: m, by: \"head\")")
        #expect(FileManager.default.fileExists(atPath: dir + "/mask.svg") && FileManager.default.fileExists(atPath: dir + "/heads.svg"))
        #expect(try s.eval("composition(topk(r, 1, per: \"row\"), m).columns") == "[\"q\", \"k\", \"v\", \"o\", \"gate\", \"up\", \"down\"]")
        #expect(s.error("plot({a: [[1, 2]]}, \"\(dir)/x.png\")").contains("give a path ending in .svg"))
        #expect(s.error("plot({a: [1, 2]}, \"\(dir)/x.svg\")").contains("expected [x, y] or a record with numeric x and y"))
    }

    @Test(.enabled(if: ExampleTests.modelAvailable)) func ioiNamesAreSingleTokensAndSmolLM2SolvesIt() throws {
        let s = Session()
        s.interpreter.modulePath = [Paths.repo.appendingPathComponent("stdlib").path]
        try s.run("import \"ioi\"\nimport \"lists\"\nlet m = load_model(\"smollm2\")")
        #expect(try s.eval("filter(ioi_names, fn(n) => len(tokenize(m, \" \" + n, special: false)) != 1)") == "[]")
        let accuracy = try s.run("score(m, ioi(n: 64, seed: 1), metric: \"accuracy\")")
        guard case .number(let a) = accuracy else { Issue.record("no number"); return }
        #expect(a > 0.75, "SmolLM2-135M-Instruct solves most IOI prompts (measured: 0.89)")
    }
}

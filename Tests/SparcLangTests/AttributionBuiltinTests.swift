import Foundation
import Testing
@testable import SparcLang
import SparcAttribution
import SparcModel
import SparcTensor

@Suite struct AttributionBuiltinTests {
    func session() throws -> Session {
        let s = Session()
        try s.run("let m = load_model(\"\(Paths.tinyModel)\")")
        return s
    }

    @Test func attributeIsTheEngine() throws {
        let s = try session()
        let m = try Model.load(Paths.tinyModel)
        guard case .relevance(let map) = try s.run("attribute(m, [\"hello world\", [5, 9, 13]], level: \"weight\", batch: 1)") else {
            Issue.record("not a relevance map"); return
        }
        let direct = try Attribution.attribute(m, samples: [AttributionSample(ids: m.tokenizer.encode("hello world")), AttributionSample(ids: [5, 9, 13])])
        #expect(map.names == direct.names)
        for n in map.names {
            let diff = zip(map[n]!.scalars, direct[n]!.scalars).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +)
            let norm = direct[n]!.scalars.map { Double($0) * Double($0) }.reduce(0, +)
            #expect(diff <= 1e-12 * max(norm, 1e-12), "\(n)")  // batching changes only the summation order
        }
        #expect(try s.eval("attribute(m, \"hi\", level: \"head\").len()") == "2")
        #expect(try s.eval("keys(attribute(m, \"hi\", level: \"neuron\"))[0]") == "\"model.layers.0.mlp\"")
        let contrast = try s.run("attribute(m, [1, 5, 9], target: {answer: 5, foil: 9}, level: \"token\")")
        guard case .relevance(let c) = contrast else { Issue.record("not a map"); return }
        let direct2 = try Attribution.attribute(m, samples: [AttributionSample(ids: [1, 5, 9], target: .contrast(answer: 5, foil: 9))], level: .token)
        #expect(c["tokens"]!.scalars == direct2["tokens"]!.scalars)
    }

    @Test func saveLoadAndArithmetic() throws {
        let s = try session()
        let path = NSTemporaryDirectory() + "sparc-map-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try s.run("let r = attribute(m, \"the model prunes\", method: \"gradxinput\", level: \"neuron\")\nsave(r, \"\(path)\")\nlet back = load(\"\(path)\")")
        #expect(try s.eval("back") == "<relevance gradxinput neuron: 4 tensors, 384 values, 1 sample>")
        #expect(try s.eval("keys(back) == keys(r)") == "true")
        #expect(try s.eval("norm((back - r)[\"model.layers.1.mlp\"])") == "0")
        #expect(try s.eval("sum((r * 2 - r)[\"model.layers.0.mlp\"]) == sum(r[\"model.layers.0.mlp\"])") == "true")
        #expect(s.error("r - attribute(m, \"x\", level: \"head\")").contains("relevance maps differ in their keys or level (neuron vs head)"))
        #expect(s.error("r[\"model.layers.0.mpl\"]").contains("did you mean model.layers.0.mlp?"))
        try s.run("save(tensor([[1, 2]]), \"\(path)\")")
        #expect(try s.eval("load(\"\(path)\")") == "tensor([[1., 2.]], shape: [1, 2], dtype: float32)")
    }

    @Test func heatmapAndPerturbation() throws {
        let s = try session()
        let path = NSTemporaryDirectory() + "sparc-heat-\(UUID().uuidString).html"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try s.run("let prompt = \"prune <the> weights\"\nlet t = attribute(m, prompt, level: \"token\")\nheatmap(m, prompt, t, path: \"\(path)\")")
        let html = try String(contentsOfFile: path, encoding: .utf8)
        let tokens = try Model.load(Paths.tinyModel).tokenizer.encode("prune <the> weights")
        #expect(html.components(separatedBy: "<span title=").count - 1 == tokens.count)
        #expect(html.contains("&lt;"))
        guard case .record(let r) = try s.run("perturbation(m, prompt, t)"), case .list(let curve)? = r["curve"] else {
            Issue.record("no curve"); return
        }
        #expect(curve.count == tokens.count + 1)
        guard case .relevance(let map) = try s.run("t") else { return }
        // The unperturbed point is the explained logit.
        if case .number(let first) = curve[0] { #expect(abs(first - map.explained[0]) < 1e-4) }
        #expect(s.error("perturbation(m, prompt, t, order: \"middle\")").contains("order must be"))
        #expect(s.error("heatmap(m, \"other text\", t)").contains("relevance has"))
    }

    @Test func badArgumentsAreExplained() throws {
        let s = try session()
        #expect(s.error("attribute(m, \"x\", method: \"lpr\")").contains("unknown method lpr (one of lrp, gradient"))
        #expect(s.error("attribute(m, \"x\", level: \"layer\")").contains("unknown level layer"))
        #expect(s.error("attribute(m, \"x\", target: \"the model\")").contains("is 7 tokens for this model"))
        #expect(s.error("attribute(m, \"x\", method: \"wanda\", level: \"token\")").contains("weight-level relevance only"))
        #expect(s.error("attribute(m, [\"a\", \"b\"], target: [1])").contains("1 targets for 2 inputs"))
        #expect(s.error("attribute(m, [])").contains("no inputs"))
    }
}

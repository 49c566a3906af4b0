import Foundation
import Testing
@testable import SparcLang

/// The language's attribution, mask, pruning, circuit and chart builtins on the other
/// families' tiny fixtures (the fixtures share a toy byte-level vocabulary).
@Suite struct FamilyBuiltinTests {
    static let families = Paths.repo.appendingPathComponent("Tests/SparcModelTests/Fixtures/families").path

    @Test(arguments: ["gpt2", "opt-post", "qwen2-gqa", "gemma3-window"])
    func everyLevelMaskAndCircuitWorks(family name: String) throws {
        let s = Session()
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("sparc-family-lang-\(name)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: out) }
        try s.run("""
            let m = load_model("\(FamilyBuiltinTests.families)/\(name)")
            let prompts = ["the cat sat on the mat and", "a dog ran to the park so"]
            # Answer and foil: the likeliest and least likely letter after each prompt.
            let letters = ["a", "e", "i", "o", "u", "s", "t", "n", "r", "l"]
            var answers = []
            var foils = []
            for p in prompts {
                let l = logits(m, p)[-1]
                fn logit(c) => l[tokenize(m, c)[-1]]
                var best = letters[0]
                var worst = letters[0]
                for c in letters {
                    if logit(c) > logit(best) { best = c }
                    if logit(c) < logit(worst) { worst = c }
                }
                answers = answers + [best]
                foils = foils + [worst]
            }
            let t = task(prompts, answers, foils, name: "toy")
            let w = attribute(m, t, level: "weight")
            let n = attribute(m, t, level: "neuron")
            let h = attribute(m, t, level: "head")
            let k = attribute(m, [5, 9, 13, 200, 7], level: "token")
            let hid = attribute(m, [5, 9, 13, 200, 7], level: "hidden")
            let wa = attribute(m, [[5, 9, 13, 200, 7]], method: "wanda")
            let ac = attribute(m, [[5, 9, 13, 200, 7]], method: "activation", level: "head")
            let heads = topk(h, 2)
            let pruned = prune(m, heads)
            let units = prune(m, bottomk(n, 0.5))
            save(heads, "\(out)/heads.safetensors")
            let back = load("\(out)/heads.safetensors")
            let c = circuit(m, t, w, keep: 0.5, grid: [0.25, 0.5, 1.0], refine: 0)
            draw(c.mask, "\(out)/circuit.svg", m: m, by: "head")
            draw(heads, "\(out)/heads.svg", m: m, by: "head")
            save(prune(m, bottomk(w, 0.3, per: "row")), "\(out)/pruned")
            """)
        #expect(try s.eval("count(heads)") == "2")
        #expect(try s.eval("count(back) == count(heads)") == "true")
        #expect(try s.eval("len(composition(c.mask, m, by: \"head\").values) == m.config.num_layers") == "true")
        #expect(try s.eval("sparsity(load_model(\"\(out)/pruned\")) > 0.29") == "true")
        #expect(try s.eval("score(units, t) != score(m, t)") == "true")
        #expect(FileManager.default.fileExists(atPath: out + "/circuit.svg"))
    }
}

import Foundation
import Testing
@testable import SparcLang
import SparcFormats
import SparcModel

@Suite struct PruningBuiltinTests {
    func session() throws -> Session {
        let s = Session()
        try s.run("let m = load_model(\"\(Paths.tinyModel)\")\nlet r = attribute(m, [\"hello world\", \"the model\"])")
        return s
    }

    @Test func masksFromMapsAndTheirAlgebra() throws {
        let s = try session()
        #expect(try s.eval("topk(r, 0.25)") == "<mask weight: 18432 of 73728 selected (25.00%), 14 tensors>")
        #expect(try s.eval("count(bottomk(r, 100))") == "100")
        #expect(try s.eval("count(topk(r, 3, per: \"layer\"))") == "42")
        // Rows per layer: q 64, k 32, v 32, o 64, gate 128, up 128, down 64 = 512; two layers.
        #expect(try s.eval("count(topk(r, 2, per: \"row\"))") == "2048")
        #expect(try s.eval("let a = topk(r, 0.3)\nlet b = r > 0\n(a - b) == (a & ~b)") == "true")
        #expect(try s.eval("~(a | b) == (~a & ~b)") == "true")
        #expect(try s.eval("count(r > 0) + count(r <= 0)") == "73728")
        #expect(try s.eval("count(threshold(r, 0)) == count(r > 0)") == "true")
        #expect(try s.eval("count(topk(r, 0.1))") == "7373")  // round(0.1 · 73728)
        #expect(try s.eval("summary(topk(r, 0.5, per: \"layer\"))[0].fraction") == "0.5")
        #expect(s.error("topk(r, 3) | topk(attribute(m, \"x\", level: \"head\"), 1)").contains("cannot combine a weight mask with a head mask"))
        #expect(s.error("topk(r, 0.1, per: \"column\")").contains("per must be"))
        #expect(try s.eval("sum(normalize(r)[\"model.layers.0.mlp.up_proj.weight\"].abs()) > 0") == "true")
    }

    @Test func pruneAndPersist() throws {
        let s = try session()
        let path = NSTemporaryDirectory() + "sparc-mask-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try s.run("let keep = topk(abs(r), 0.4)\nlet p = prune(m, ~keep)\nsave(keep, \"\(path)\")")
        #expect(try s.eval("sparsity(p)") == Value.number(Double(73728 - Int((0.4 * 73728).rounded())) / 73728).repr)
        #expect(try s.eval("sparsity(m)") == "0")
        #expect(try s.eval("load(\"\(path)\") == keep") == "true")
        #expect(try s.eval("perplexity(p, range(40), window: 16) != perplexity(m, range(40), window: 16)") == "true")
        #expect(try s.eval("prune(m, topk(attribute(m, \"hi\", level: \"head\"), 2)).sparsity() > 0") == "true")
    }
}

@Suite struct PrunableSetTests {
    @Test func normsEmbeddingsAndHeadOnlyWhenAsked() throws {
        let s = Session()
        try s.run("let m = load_model(\"\(Paths.tinyModel)\")\nlet r = attribute(m, \"hello world\", parameters: \"all\")")
        #expect(try s.eval("len(attribute(m, \"hello world\"))") == "14")
        #expect(try s.eval("len(r)") == "21")  // + embeddings, 2 × 2 block norms, final norm, lm_head
        #expect(try s.eval("keys(r)[0]") == "\"model.embed_tokens.weight\"")
        #expect(try s.eval("len(attribute(m, \"hello world\", parameters: [\"norms\"]))") == "5")
        // Pruning with such a mask zeroes those parameters too.
        try s.run("let p = prune(m, topk(abs(attribute(m, \"hello\", parameters: [\"embeddings\"])), 10))")
        #expect(try s.eval("sum(param(p, \"model.embed_tokens.weight\") == 0) - sum(param(m, \"model.embed_tokens.weight\") == 0)") == "10")
        #expect(s.error("attribute(m, \"x\", parameters: \"bias\")").contains("unknown parameter group bias (one of linear, norms, embeddings, head, biases, or all)"))
        #expect(s.error("attribute(m, \"x\", method: \"wanda\", parameters: \"all\")").contains("scores the block linear weights only"))
    }
}

@Suite struct ProvenanceTests {
    @Test func mapsAndMasksSayWhereTheyComeFrom() throws {
        let s = Session()
        try s.run("let m = load_model(\"\(Paths.tinyModel)\")\nlet r = attribute(m, [\"hello world\", \"the model\"], target: \"lm\", absolute: true)")
        let dir = NSTemporaryDirectory() + "sparc-provenance-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try s.run("save(topk(r, 0.1, per: \"row\"), \"\(dir)/mask.safetensors\")\nsave(r, \"\(dir)/map.safetensors\")")
        try s.run("save(~topk(random_map(r, seed: 4), 5), \"\(dir)/random.safetensors\")")
        let hash = try SparcFormats.SHA256.hex(ofFiles: [Paths.tinyModel + "/model.safetensors"])
        let mask = try SafetensorsFile(path: dir + "/mask.safetensors").metadata
        #expect(mask["model"] == Paths.tinyModel && mask["model_sha256"] == hash && mask["model_modified"] == "false")
        #expect(mask["method"] == "lrp" && mask["level"] == "weight" && mask["samples"] == "2")
        #expect(mask["target"] == "lm" && mask["aggregation"] == "mean |R|" && mask["selection"] == "top 0.1 per row")
        #expect(mask["sparc_version"] != nil)
        let map = try SafetensorsFile(path: dir + "/map.safetensors").metadata
        #expect(map["model_sha256"] == hash && map["target"] == "lm")
        let random = try SafetensorsFile(path: dir + "/random.safetensors").metadata
        #expect(random["method"] == "random" && random["random_seed"] == "4" && random["selection"] == "complement of (top 5 per global)")
        // Loading keeps the provenance; a pruned model no longer claims the file's hash.
        #expect(try s.eval("load(\"\(dir)/mask.safetensors\") == topk(r, 0.1, per: \"row\")") == "true")
        try s.run("let p = prune(m, topk(r, 0.1))\nsave(attribute(p, \"hi\"), \"\(dir)/pruned.safetensors\")")
        let pruned = try SafetensorsFile(path: dir + "/pruned.safetensors").metadata
        #expect(pruned["model_modified"] == "true" && pruned["model_sha256"] == nil)
    }
}

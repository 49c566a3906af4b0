import Foundation
import Testing
@testable import SparcLang
import SparcModel
import SparcTensor

@Suite struct TensorBuiltinTests {
    @Test func creationAndShapes() throws {
        let s = Session()
        #expect(try s.eval("shape(zeros(2, 3))") == "[2, 3]")
        #expect(try s.eval("shape(ones([4]))") == "[4]")
        #expect(try s.eval("arange(2, 8, 2)") == "tensor([2., 4., 6.], shape: [3], dtype: float32)")
        #expect(try s.eval("arange(6).reshape(2, -1).shape") == "[2, 3]")
        #expect(try s.eval("transpose(tensor([[1, 2, 3], [4, 5, 6]]))[2, 1]") == "6")
        #expect(try s.eval("rand(3, seed: 7) == rand(3, seed: 7)") == "tensor([1., 1., 1.], shape: [3], dtype: float32)")
        #expect(try s.eval("norm(rand(2, 2, seed: 1) - rand(2, 2, seed: 2)) > 0") == "true")
        #expect(s.error("tensor([[1, 2], [3]])").contains("ragged nested list"))
        #expect(s.error("reshape(arange(6), 4, 2)").contains("holds 8 elements, the tensor has 6"))
    }

    @Test func reductions() throws {
        let s = Session()
        try s.run("let t = tensor([[1, 5, 3], [4, 2, 6]])")
        #expect(try s.eval("sum(t)") == "21")
        #expect(try s.eval("sum(t, axis: 0)") == "tensor([5., 7., 9.], shape: [3], dtype: float32)")
        #expect(try s.eval("mean(t, axis: 1)") == "tensor([3., 4.], shape: [2], dtype: float32)")
        #expect(try s.eval("argmax(t)") == "5")
        #expect(try s.eval("argmax(t, axis: 1)") == "tensor([1., 2.], shape: [2], dtype: float32)")
        #expect(try s.eval("max(t)") == "6")
        #expect(try s.eval("max(3, 9, 4)") == "9")
        #expect(try s.eval("min([3, 9, 4])") == "3")
        #expect(try s.eval("norm(tensor([3, 4]))") == "5")
        #expect(try s.eval("abs(tensor([-1.5, 2]))") == "tensor([1.5000, 2.0000], shape: [2], dtype: float32)")
        #expect(try s.eval("topk(tensor([3, 1, 4, 1, 5]), 2)") == "{values: tensor([5., 4.], shape: [2], dtype: float32), indices: tensor([4., 2.], shape: [2], dtype: float32)}")
    }

    @Test func operatorsAndIndexing() throws {
        let s = Session()
        try s.run("var t = tensor([[1, 2], [3, 4]])")
        #expect(try s.eval("t @ t") == "tensor([[ 7., 10.],\n        [15., 22.]], shape: [2, 2], dtype: float32)")
        #expect(try s.eval("t @ tensor([1, 1])") == "tensor([3., 7.], shape: [2], dtype: float32)")
        #expect(try s.eval("tensor([1, 2]) @ tensor([3, 4])") == "11")
        #expect(try s.eval("2 * t - 1") == "tensor([[1., 3.],\n        [5., 7.]], shape: [2, 2], dtype: float32)")
        #expect(try s.eval("t > 2") == "tensor([[0., 0.],\n        [1., 1.]], shape: [2, 2], dtype: float32)")
        #expect(try s.eval("~(t > 2) | (t == 4)") == "tensor([[1., 1.],\n        [0., 1.]], shape: [2, 2], dtype: float32)")
        #expect(try s.eval("t[1]") == "tensor([3., 4.], shape: [2], dtype: float32)")
        #expect(try s.eval("t[-1, 0]") == "3")
        #expect(try s.eval("t[:, 1]") == "tensor([2., 4.], shape: [2], dtype: float32)")
        try s.run("t[0, 1] = 9\nt[1] = tensor([7, 8])")
        #expect(try s.eval("t") == "tensor([[1., 9.],\n        [7., 8.]], shape: [2, 2], dtype: float32)")
        #expect(s.error("t + tensor([1, 2, 3])").contains("shapes [2, 2] and [3] differ"))
        #expect(s.error("t @ tensor([1, 2, 3])").contains("inner dimensions differ"))
        #expect(s.error("t[2]").contains("index 2 out of range"))
        #expect(s.error("t[0, 0, 0]").contains("too many indices"))
    }

    @Test func printingIsNumpyStyle() throws {
        let s = Session()
        #expect(try s.eval("tensor([0.5, -1.25, 3])") == "tensor([ 0.5000, -1.2500,  3.0000], shape: [3], dtype: float32)")
        #expect(try s.eval("tensor([1e-6, 1])") == "tensor([1.0000e-06, 1.0000e+00], shape: [2], dtype: float32)")
        #expect(try s.eval("zeros(2, 2, 2)") == """
            tensor([[[0., 0.],
                     [0., 0.]],

                    [[0., 0.],
                     [0., 0.]]], shape: [2, 2, 2], dtype: float32)
            """)
        let big = try s.eval("arange(2000)")
        #expect(big == "tensor([   0.,    1.,    2., ..., 1997., 1998., 1999.], shape: [2000], dtype: float32)")
        #expect(try s.eval("tensor(3)").hasPrefix("tensor(3., dtype"))
    }
}

@Suite struct ModelBuiltinTests {
    @Test func bindingsMatchTheRuntime() throws {
        let s = Session()
        try s.run("let m = load_model(\"\(Paths.tinyModel)\")")
        let m = try Model.load(Paths.tinyModel)
        // logits through the language are the runtime's logits.
        guard case .tensor(let t) = try s.run("logits(m, [3, 17, 99])") else { Issue.record("not a tensor"); return }
        #expect(t.scalars == (try m.logits([3, 17, 99])).scalars)
        #expect(try s.eval("tokenize(m, \"hello world\")") == Value.list(m.tokenizer.encode("hello world").map { .number(Double($0)) }).repr)
        #expect(try s.eval("detokenize(m, tokenize(m, \"hello world\", special: false))") == "\"hello world\"")
        #expect(try s.eval("m.config.num_layers") == "2")
        #expect(try s.eval("params(m)[\"model.layers.0.self_attn.q_proj.weight\"]") == "[64, 64]")
        #expect(try s.eval("shape(param(m, \"model.norm.weight\"))") == "[64]")
        let greedy = m.tokenizer.decode(try m.generate(m.tokenizer.encode("hello"), maxTokens: 5), skipSpecialTokens: true)
        #expect(try s.run("generate(m, \"hello\", max_tokens: 5)").displayString == greedy)
        let ppl = try m.perplexity(Array(0..<60), window: 16, stride: 8).perplexity
        #expect(try s.eval("perplexity(m, range(60), window: 16, stride: 8)") == Value.number(ppl).repr)
        #expect(s.error("param(m, \"model.norm.weigth\")").contains("did you mean model.norm.weight?"))
        #expect(s.error("logits(m, [100000])").contains("list of token ids in 0..<384"))
        #expect(s.error("load_model(\"/nonexistent\")").contains("no model at \"/nonexistent\""))
        #expect(try s.run("m").repr.hasPrefix("<model tiny-gqa: llama, 2 layers, hidden 64"))
    }
}

import Foundation
import Testing
import SparcFormats
@testable import SparcAttribution
import SparcModel
import SparcTensor

/// AttnLRP on the real default model against LXT on transformers' dequantised copy of the
/// same GGUF: token relevances and slices of several layers' weight relevances (≤ 1e-3).
/// Runs when the model is installed; must run under SPARC_REQUIRE_MODEL=1 (CI).
@Suite(.serialized) struct SmolLM2AttributionTests {
    static let available: Bool = {
        FileManager.default.fileExists(atPath: ModelRegistry.path(of: ModelRegistry.entry(named: "smollm2")!))
            || ProcessInfo.processInfo.environment["SPARC_REQUIRE_MODEL"] == "1"
    }()

    @Test(.enabled(if: available)) func relevancesMatchLXT() throws {
        let model = try Model.load("smollm2")
        let refs = try SafetensorsFile(path: RelevanceFixtures.dir + "/smollm2-relevance.safetensors")
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: RelevanceFixtures.dir + "/smollm2-relevance.json"))) as! [[String: Any]]
        for (i, entry) in meta.enumerated() {
            let ids = (entry["ids"] as! [NSNumber]).map(\.intValue)
            let sample = [AttributionSample(ids: ids)]
            let tokens = try Attribution.attribute(model, samples: sample, level: .token)
            #expect(abs(tokens.explained[0] - (entry["explained"] as! NSNumber).doubleValue) < 1e-3)
            let tokenError = relativeL2(tokens["tokens"]!, try refs.tensor("smollm2/\(i)/tokens"))
            #expect(tokenError <= 1e-3, "prompt \(i) tokens: \(tokenError)")
            let weights = try Attribution.attribute(model, samples: sample, level: .weight)
            for key in ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight",
                        "model.layers.15.self_attn.v_proj.weight", "model.layers.29.mlp.gate_proj.weight"] {
                let ref = try refs.tensor("smollm2/\(i)/\(key)")
                let ours = weights[key]!
                let slice = Tensor(shape: ref.shape, values: Array(ours.scalars.prefix(ref.count)))
                let err = relativeL2(slice, ref)
                #expect(err <= 1e-3, "prompt \(i) \(key): \(err)")
            }
            let neurons = try Attribution.attribute(model, samples: sample, level: .neuron)
            let err = relativeL2(neurons["model.layers.10.mlp"]!, try refs.tensor("smollm2/\(i)/model.layers.10.mlp"))
            #expect(err <= 1e-3, "prompt \(i) layer 10 neurons: \(err)")
        }
    }
}

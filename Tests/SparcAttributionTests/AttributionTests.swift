import Foundation
import Testing
import SparcFormats
@testable import SparcAttribution
import SparcModel
import SparcTensor

enum RelevanceFixtures {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../SparcModelTests/Fixtures").standardized.path
    static let tensors = try! SafetensorsFile(path: dir + "/tiny-relevance.safetensors")
    nonisolated(unsafe) static let meta = (try! JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/tiny-relevance.json")))) as! [String: Any]

    /// (ids, target, explained) of prompt i for a model and mode ("lrp" or "gradient").
    static func prompt(_ mode: String, _ model: String, _ i: Int) -> (ids: [Int], target: AttributionTarget, explained: Double) {
        prompt(in: meta, mode, model, i)
    }

    /// The same from another reference file's metadata.
    static func prompt(in meta: [String: Any], _ mode: String, _ model: String, _ i: Int) -> (ids: [Int], target: AttributionTarget, explained: Double) {
        let e = ((meta[mode] as! [String: Any])[model] as! [[String: Any]])[i]
        let ids = (e["ids"] as! [NSNumber]).map(\.intValue)
        let t = e["target"] as! [Any]
        let target: AttributionTarget
        switch t[0] as! String {
        case "contrast": target = .contrast(answer: (t[1] as! NSNumber).intValue, foil: (t[2] as! NSNumber).intValue)
        case "lm": target = .languageModeling
        default: target = .predicted
        }
        return (ids, target, (e["explained"] as! NSNumber).doubleValue)
    }
}

/// ‖a − b‖₂ / ‖b‖₂.
func relativeL2(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.count == b.count, "sizes \(a.shape) vs \(b.shape)")
    var num = 0.0, den = 0.0
    for (x, y) in zip(a.scalars, b.scalars) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
    return den == 0 ? num.squareRoot() : (num / den).squareRoot()
}

@Suite struct AttnLRPMatchesLXT {
    static let cases: [(model: String, mode: String, prompt: Int)] =
        ["tiny-gqa", "tiny-tied"].flatMap { m in ["lrp", "gradient"].flatMap { mode in (0..<4).map { (m, mode, $0) } } }

    @Test(arguments: cases)
    func relevancesMatchTheReference(model name: String, mode: String, prompt i: Int) throws {
        let model = try Model.load(RelevanceFixtures.models + "/" + name)
        let (ids, target, explained) = RelevanceFixtures.prompt(mode, name, i)
        let method: AttributionMethod = mode == "lrp" ? .lrp : .gradxinput
        let sample = AttributionSample(ids: ids, target: target)
        let prefix = "\(name)/\(mode == "lrp" ? "lrp" : "grad")/\(i)/"

        let tokens = try Attribution.attribute(model, samples: [sample], method: method, level: .token)
        #expect(abs(tokens.explained[0] - explained) <= 1e-4 * max(1, abs(explained)))
        let tokenError = relativeL2(tokens["tokens"]!, try RelevanceFixtures.tensors.tensor(prefix + "tokens"))
        #expect(tokenError <= 1e-4, "token relevance rel. L2 \(tokenError)")

        let weights = try Attribution.attribute(model, samples: [sample], method: method, level: .weight)
        #expect(weights.names == Attribution.linearWeightNames(model))
        for key in weights.names {
            let err = relativeL2(weights[key]!, try RelevanceFixtures.tensors.tensor(prefix + key))
            #expect(err <= 1e-4, "\(key): rel. L2 \(err)")
        }

        let neurons = try Attribution.attribute(model, samples: [sample], method: method, level: .neuron)
        for key in neurons.names {
            let err = relativeL2(neurons[key]!, try RelevanceFixtures.tensors.tensor(prefix + key))
            #expect(err <= 1e-4, "\(key): rel. L2 \(err)")
        }
    }
}

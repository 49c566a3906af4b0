import Foundation
import SparcTensor

/// Rotary position embeddings: cos/sin of position · θ_i for each row, and the rotation
/// transformers applies — pairs (i, i + d/2) of each head (`rotate_half`), not llama.cpp's
/// interleaved pairs. Linear in its input, so its backward is the inverse rotation.
public struct RopeTable: Sendable {
    public let half: Int
    public let cos: [Float]
    public let sin: [Float]

    init(positions: [Int], inverseFrequencies inv: [Float]) {
        half = inv.count
        var c = [Float](repeating: 0, count: positions.count * half)
        var s = c
        for (r, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Float(p) * inv[i]   // float32 product, as in transformers
                c[r * half + i] = Float(Foundation.cos(Double(angle)))
                s[r * half + i] = Float(Foundation.sin(Double(angle)))
            }
        }
        cos = c
        sin = s
    }

    /// Rotates each head's pairs by +angle (forward) or −angle (`inverse`, the transpose,
    /// which carries gradients back).
    public func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, headDim: Int, inverse: Bool = false) {
        let sign: Float = inverse ? -1 : 1
        let stride = heads * headDim
        let half = half
        cos.withUnsafeBufferPointer { cb in
            sin.withUnsafeBufferPointer { sb in
                // Rows split over the cores from ~16 K values (a profile of a 64-token pass
                // had the rotations on one core at 0.7 % of its time while the other waited).
                Parallel.forRanges(rows, minChunk: max(1, (1 << 14) / max(stride, 1))) { range in
                    for r in range {
                        let cr = cb.baseAddress! + r * half, sr = sb.baseAddress! + r * half
                        for h in 0..<heads {
                            let v = x + r * stride + h * headDim
                            for i in 0..<half {
                                let a = v[i], b = v[i + half], sn = sign * sr[i]
                                v[i] = a * cr[i] - b * sn
                                v[i + half] = b * cr[i] + a * sn
                            }
                        }
                    }
                }
            }
        }
    }

    /// θ_i = 1 / base^(2i/d), after any frequency scaling, as transformers computes them in
    /// float32 (`_compute_default_rope_parameters`, `_compute_linear_scaling_rope_parameters`,
    /// `_compute_llama3_parameters`).
    static func inverseFrequencies(_ c: ModelConfig) -> [Float] {
        let dim = c.headDim
        var inv: [Float] = (0..<(dim / 2)).map { i in
            let exponent = Float(2 * i) / Float(dim)
            return 1 / Float(pow(Double(Float(c.ropeTheta)), Double(exponent)))
        }
        switch c.ropeScaling {
        case .none: break
        case .frequencyFactors(let factors):
            inv = zip(inv, factors).map { $0 / $1 }
        case .linear(let factor):
            inv = inv.map { $0 / Float(factor) }
        case .llama3(let factor, let lowFreqFactor, let highFreqFactor, let original):
            let lowWavelen = Float(original) / Float(lowFreqFactor)
            let highWavelen = Float(original) / Float(highFreqFactor)
            inv = inv.map { f in
                let wavelen = 2 * Float.pi / f
                if wavelen < highWavelen { return f }                    // high frequencies kept
                if wavelen > lowWavelen { return f / Float(factor) }     // low frequencies scaled
                let smooth = (Float(original) / wavelen - Float(lowFreqFactor)) / Float(highFreqFactor - lowFreqFactor)
                return (1 - smooth) * f / Float(factor) + smooth * f
            }
        }
        return inv
    }
}

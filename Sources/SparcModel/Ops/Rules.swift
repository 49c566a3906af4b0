import Foundation

/// Which backward pass an op runs.
///
/// `.gradient` is the true derivative everywhere (finite-difference tested).
/// `.attnLRP` is AttnLRP (Achtibat et al., ICML 2024) in LXT's efficient form: the input
/// times a modified gradient, so that relevance R = x ⊙ ∂̃f/∂x is conserved layer by layer.
/// The modifications are the small rules below; every op's backward asks them.
public enum BackwardRules: Sendable {
    case gradient, attnLRP

    /// Uniform rule at a product of two inputs, y = a ⊙ b (Eq. 7): the relevance of y is
    /// split evenly between a and b, so each factor's gradient is halved.
    @inline(__always) public var productShare: Float { self == .attnLRP ? 0.5 : 1 }

    /// Attention out = softmax(q·kᵀ/√d)·v is two products: the value path gets one half
    /// (P·V), and q and k share half of the other half (q·kᵀ): ¼ each. The softmax keeps
    /// its Jacobian (LXT applies Gradient×Input at its input).
    @inline(__always) public var valueShare: Float { productShare }
    @inline(__always) public var queryKeyShare: Float { productShare * productShare }

    /// Norms: the normaliser (1/rms, 1/σ) is held constant, so the norm is linear in x
    /// (identity rule on the normalisation; the learned scale stays an ordinary product).
    @inline(__always) public var normalizerIsConstant: Bool { self == .attnLRP }

    /// Identity rule at element-wise non-linearities (Eq. 9): f passes the gradient times
    /// f(x)/x instead of f'(x), so its output relevance goes unchanged to its input.
    @inline(__always) public var identityAtActivations: Bool { self == .attnLRP }

    /// The ε of the identity rule's f(x)/(x + ε), as in LXT.
    public static let identityEpsilon: Float = 1e-10
}

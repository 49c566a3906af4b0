import Testing
@testable import SparcTensor

/// Half-precision tensor storage: exact widening, and reads and writes that behave as
/// they do on the Float32 tensor holding the same values.
@Suite struct HalfPrecisionTests {
    @Test func halfWideningMatchesFloat16ForEveryCode() {
        for code in 0...UInt16.max {
            let ours = HalfPrecision.half(code), reference = Float(Float16(bitPattern: code))
            if reference.isNaN {
                #expect(ours.isNaN, "code \(code)")
            } else {
                #expect(ours.bitPattern == reference.bitPattern, "code \(code): \(ours) vs \(reference)")
            }
        }
    }

    @Test func bfloatWideningIsTheTopHalf() {
        for code in stride(from: 0, through: Int(UInt16.max), by: 7).map(UInt16.init) {
            #expect(HalfPrecision.bfloat(code).bitPattern == UInt32(code) << 16)
        }
    }

    /// A 3×5 tensor of `type` holding `codes`, and its values as Float32.
    func sample(_ type: ElementType) -> (Tensor, [Float]) {
        let values: [Float] = [0, -1, 0.5, 3.25, -1e-3, 1024, 7, -0.125, 2, 65504, -2.5, 1e-5, 0.1, 42, -8]
        let codes = values.map { type == .f16 ? Float16($0).bitPattern : UInt16(($0.bitPattern + 0x7FFF + (($0.bitPattern >> 16) & 1)) >> 16) }
        let t = codes.withUnsafeBytes { Tensor(shape: [3, 5], elementType: type, bits: $0.baseAddress!) }
        return (t, codes.map { HalfPrecision.widen($0, type) })
    }

    @Test(arguments: [ElementType.f16, .bf16])
    func readsWidenExactly(_ type: ElementType) {
        let (t, wide) = sample(type)
        #expect(t.elementType == type && t.count == 15 && t.shape == [3, 5])
        #expect(t.scalars == wide)
        #expect(t[flat: 7] == wide[7])
        #expect(t.row(2) == Array(wide[10..<15]))
        t.withFloat32 { p in #expect(Array(UnsafeBufferPointer(start: p, count: 15)) == wide) }
        var out = [Float](repeating: .nan, count: 5)
        out.withUnsafeMutableBufferPointer { t.copyElements(5..<10, into: $0.baseAddress!) }
        #expect(out == Array(wide[5..<10]))
        let f = t.float32()
        #expect(f.elementType == .f32 && f.scalars == wide && t.elementType == type)
        #expect(t.reshaped([15]).elementType == type)
    }

    @Test(arguments: [ElementType.f16, .bf16])
    func writingWidensAndLeavesTheOriginal(_ type: ElementType) {
        let (t, wide) = sample(type)
        var u = t
        u[flat: 3] = 0.333
        #expect(u.elementType == .f32 && u[flat: 3] == 0.333 && u[flat: 4] == wide[4])
        #expect(t.elementType == type && t.scalars == wide)
        var v = t
        v.withUnsafeMutableBufferPointer { for i in 0..<$0.count { $0[i] *= 2 } }
        #expect(v.scalars == wide.map { $0 * 2 } && t.scalars == wide)
    }
}

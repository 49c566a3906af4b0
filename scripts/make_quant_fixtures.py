#!/usr/bin/env python3
"""Writes Tests/SparcFormatsTests/Fixtures/quants.gguf: random blocks of every quantised
ggml type sparc decodes, next to gguf-py's dequantisation of them.

For each type T the file holds
  T.blocks      8 (32-element types) or 4 (256-element k-quants) random blocks, one per row
  T.tensor      a tensor several blocks long: 3 rows of 4 blocks, or 2 rows of 2 super-blocks
and for each of them `NAME.ref`, the F32 result of `gguf.quants.dequantize`.

Blocks are random bytes with their scale fields overwritten by finite values: half of the
blocks get f16 scales drawn from every finite f16 bit pattern, the first of them edge
values (subnormals, ±65504, ±0), the other half realistic scales (|d| around 1e-3, as a
quantiser writes). Q8_K's scale is an f32: f16 draws widened, or random finite f32 bit
patterns of moderate exponent (and a subnormal, -0, 2^112). gguf-py (0.19) has no Q8_K dequantiser; for it the reference is
ggml's dequantize_row_q8_K written out in numpy (x = d · q in float32), used only when
gguf-py raises NotImplementedError.

    /tmp/lxt/bin/python scripts/make_quant_fixtures.py
"""
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "SparcFormatsTests", "Fixtures", "quants.gguf")

# Byte offsets of each block's f16 scale fields (ggml-common.h block structs).
F16_FIELDS = {
    Q.Q8_0: [0], Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2],
    Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
    Q.Q8_K: [],  # f32 d at byte 0, handled apart
}

rng = np.random.default_rng(20261129)


def finite_f16(n):
    """n f16 values drawn from all finite bit patterns."""
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    bad = (bits & 0x7C00) == 0x7C00
    while bad.any():
        bits[bad] = rng.integers(0, 1 << 16, size=int(bad.sum()), dtype=np.uint16)
        bad = (bits & 0x7C00) == 0x7C00
    return bits.view(np.float16)


def realistic_f16(n):
    return (rng.standard_normal(n) * 1e-3).astype(np.float16)


# Edge scales written over the first "wild" draws: smallest and largest f16 subnormal,
# ±65504 (largest finite), -0 and 0; for Q8_K's f32 d the smallest subnormal, -0, 2^112.
F16_EDGES = [0x0001, 0x7BFF, 0xFBFF, 0x03FF, 0x8000, 0x0000]
F32_EDGES = [0x00000001, 0x80000000, 0x77800000]


def random_blocks(qtype, n, edge_offset):
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n, type_size), dtype=np.uint8)
    wild = np.arange(n) % 2 == 0
    for at in F16_FIELDS[qtype]:
        vals = np.where(wild, finite_f16(n), realistic_f16(n)).astype(np.float16)
        blocks[:, at:at + 2] = vals.view(np.uint8).reshape(n, 2)
    slots = [(b, at) for b in np.flatnonzero(wild) for at in F16_FIELDS[qtype]]
    for i, (b, at) in enumerate(slots[:len(F16_EDGES)]):
        blocks[b, at:at + 2] = np.array([F16_EDGES[(i + edge_offset) % len(F16_EDGES)]], dtype="<u2").view(np.uint8)
    if qtype == Q.Q8_K:
        # f32 d: finite bit patterns with exponent field below 0xF0 (|d| < 2^113, so d · q
        # stays finite), or f16 draws widened.
        bits = rng.integers(0, 1 << 32, size=n, dtype=np.uint64).astype(np.uint32)
        bits = np.where(((bits >> 23) & 0xFF) >= 0xF0, bits & ~np.uint32(0x40000000), bits).astype(np.uint32)
        d = np.where(wild, bits.view(np.float32), realistic_f16(n).astype(np.float32)).astype(np.float32)
        blocks[:, 0:4] = d.view(np.uint8).reshape(n, 4)
        for i, b in enumerate(np.flatnonzero(wild)[:len(F32_EDGES)]):
            blocks[b, 0:4] = np.array([F32_EDGES[(i + edge_offset) % len(F32_EDGES)]], dtype="<u4").view(np.uint8)
    return blocks


def reference(raw, qtype):
    try:
        return gguf.quants.dequantize(raw, qtype)
    except NotImplementedError:
        assert qtype == Q.Q8_K, qtype
        # ggml dequantize_row_q8_K: y = d * qs, the int16 block sums unused.
        rows, _ = raw.shape
        blocks = raw.reshape(-1, 292)
        d = blocks[:, 0:4].copy().view(np.float32)
        qs = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
        return (d * qs).astype(np.float32).reshape(rows, -1)


def main():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    w = gguf.GGUFWriter(OUT, "sparc-quant-fixtures")
    w.add_string("sparc.fixture.generator", f"scripts/make_quant_fixtures.py, gguf-py {getattr(gguf, '__version__', 'unknown')}")
    for qtype in [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_K]:
        block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
        k = block_size == gguf.QK_K
        n, (rows, per_row) = (4, (2, 2)) if k else (8, (3, 4))
        raw_blocks = random_blocks(qtype, n, 0)                              # one block per row
        raw_tensor = random_blocks(qtype, rows * per_row, 2).reshape(rows, per_row * type_size)
        for name, raw in [(f"{qtype.name}.blocks", raw_blocks), (f"{qtype.name}.tensor", raw_tensor)]:
            ref = reference(raw, qtype)
            assert ref.dtype == np.float32 and np.isfinite(ref).all(), name
            w.add_tensor(name, raw, raw_dtype=qtype)
            w.add_tensor(name + ".ref", ref)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()

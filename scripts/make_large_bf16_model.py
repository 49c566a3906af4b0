#!/usr/bin/env python3
"""Writes a random TinyLlama-shaped (1.1B-parameter) Llama folder in BF16, for measuring
the memory and time of attributing a model of that size (BENCHMARKS.md, "Half-precision
weights"). Numpy only. The weights are random (normal, std 0.02; norms 1): the point is
the shapes and the dtype, not the outputs.

    python3 scripts/make_large_bf16_model.py /tmp/tinyllama-bf16-random

Writes config.json, model.safetensors (~2.2 GB) and tokenizer.json (the tiny-gqa test
fixture's 384-token byte-level BPE, so token ids 0..<384 are valid; the model's vocabulary
of 32000 is larger, which sparc accepts). Options shrink the shape for quick checks.
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "Tests", "SparcModelTests", "Fixtures", "tiny-gqa", "tokenizer.json")


def bf16_bytes(rng, shape, std):
    """Random normal values rounded (to nearest even) to BF16, as little-endian uint16 bytes."""
    x = (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).view(np.uint32)
    rounded = (x + 0x7FFF + ((x >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--intermediate", type=int, default=5632)
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    head_dim = a.hidden // a.heads
    kv = a.kv_heads * head_dim

    shapes = [("model.embed_tokens.weight", [a.vocab, a.hidden], 0.02)]
    for l in range(a.layers):
        p = f"model.layers.{l}."
        shapes += [
            (p + "input_layernorm.weight", [a.hidden], None),
            (p + "self_attn.q_proj.weight", [a.hidden, a.hidden], 0.02),
            (p + "self_attn.k_proj.weight", [kv, a.hidden], 0.02),
            (p + "self_attn.v_proj.weight", [kv, a.hidden], 0.02),
            (p + "self_attn.o_proj.weight", [a.hidden, a.hidden], 0.02),
            (p + "post_attention_layernorm.weight", [a.hidden], None),
            (p + "mlp.gate_proj.weight", [a.intermediate, a.hidden], 0.02),
            (p + "mlp.up_proj.weight", [a.intermediate, a.hidden], 0.02),
            (p + "mlp.down_proj.weight", [a.hidden, a.intermediate], 0.02),
        ]
    shapes += [("model.norm.weight", [a.hidden], None), ("lm_head.weight", [a.vocab, a.hidden], 0.02)]

    header, offset = {}, 0
    for name, shape, _ in shapes:
        n = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    hbytes += b" " * (-len(hbytes) % 8)

    rng = np.random.default_rng(a.seed)
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for name, shape, std in shapes:
            if std is None:  # RMSNorm weights: ones (0x3F80 in BF16)
                f.write(np.full(shape, 0x3F80, dtype="<u2").tobytes())
            else:
                f.write(bf16_bytes(rng, shape, std))

    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "bfloat16",
        "hidden_size": a.hidden, "intermediate_size": a.intermediate, "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads, "head_dim": head_dim,
        "hidden_act": "silu", "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": False, "vocab_size": a.vocab,
        "bos_token_id": 1, "eos_token_id": 2, "attention_bias": False, "mlp_bias": False,
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    shutil.copyfile(TOKENIZER, os.path.join(a.out, "tokenizer.json"))
    params = sum(int(np.prod(s)) for _, s, _ in shapes)
    print(f"{a.out}: {params} parameters, {offset / 2**30:.2f} GiB BF16 ({2 * offset / 2**30:.2f} GiB as F32)")


if __name__ == "__main__":
    main()

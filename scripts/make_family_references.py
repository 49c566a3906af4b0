#!/usr/bin/env python3
"""Reference fixtures for sparc's model families (llama, qwen2, gpt2, opt), from PyPI's
PyTorch + transformers 4.x + lxt 2.x, run by hand; small outputs committed under
Tests/SparcModelTests/Fixtures/families/ and Tests/SparcAttributionTests/Fixtures/.

    python3 scripts/make_family_references.py
    python3 scripts/make_family_references.py --check-export DIR --family NAME
    python3 scripts/make_family_references.py --gemma3   # Gemma 3 only, into its own files

LXT 2.1 does not import under transformers 5, so this runs in its own environment:
pip install torch "transformers>=4.50,<5" lxt safetensors numpy.

Without --gemma3, makes eight tiny random models (float32, eager attention, vocab 384 so that
tiny-gqa/tokenizer.json fits, hidden 64, 2 layers, 128 positions; biases and norm
weights/biases drawn at random so that bias and norm handling is exercised):

  llama-linear   LlamaForCausalLM, GQA 4/2 heads, untied, linear RoPE scaling (factor 2)
  llama-llama3   Llama, MHA, tied embeddings, llama3 RoPE scaling (8, 1, 4, original 32)
  qwen2-gqa      Qwen2ForCausalLM (q/k/v biases), GQA 4/2, untied
  qwen2-tied     Qwen2, MHA, tied embeddings
  gpt2           GPT2LMHeadModel, gelu_new, inner 4*64, tied (as always)
  gpt2-inner     GPT-2 with n_inner 96, exact "gelu", layer_norm_epsilon 1e-3
  opt            OPTForCausalLM pre-norm, ReLU, ffn 128, biases, tied
  opt-post       OPT post-norm (do_layer_norm_before=False, as OPT-350m: no decoder
                 final_layer_norm) with word_embed_proj_dim 32 (project_in/project_out)

Writes:
  Tests/SparcModelTests/Fixtures/families/<name>/   config.json, model.safetensors
        (save_pretrained: state_dict names, tied weights stored once), tokenizer.json
        (a copy of tiny-gqa's)
  Tests/SparcModelTests/Fixtures/families/references.{json,safetensors}
        per model: logits [T, 384] for three seeded id sequences (T = 1, 7, 40) under
        `<name>/logits/<i>`; json: the ids and a 12-token greedy continuation of the
        7-token sequence (argmax of a full forward each step, no end-of-sequence stop)
  Tests/SparcAttributionTests/Fixtures/families-relevance.{json,safetensors}
        per model, the four targets of make_attribution_references.py (same seeding),
        plain gradient (`grad`, no patches) and AttnLRP (`lrp`), keys
        `<name>/<grad|lrp>/<i>/<key>`:
          tokens     input embeddings ⊙ gradient, summed over the embedding (for gpt2/opt
                     the word embedding only: position embeddings are added after; for
                     opt-post the 32-wide embedding before project_in)
          positions  (gpt2, opt) position-embedding output ⊙ its gradient, summed
          <param>    P ⊙ P.grad for every parameter of every block under its state_dict
                     name and stored shape (linear weights, GPT-2 Conv1D weights [in, out],
                     biases, LayerNorm/RMSNorm weights and biases), the final norm, and
                     OPT's project_in/project_out
          <layer>.mlp        input of the MLP output projection ⊙ gradient, summed over tokens
                             (down_proj / mlp.c_proj / fc2)
          <layer>.self_attn  (gpt2: <layer>.attn) input of the attention output projection
                             ⊙ gradient, summed over tokens (o_proj / attn.c_proj / out_proj)
        json: {"gradient": {model: [{ids, target, explained}]}, "lrp": {...}}
        Seeds follow LXT: value.backward(value); for "lm" picked.backward(picked.detach()).
        Note: for gpt2/opt the key bias (c_attn.bias[64:128], self_attn.k_proj.bias) has a
        zero exact gradient (it shifts a softmax row by a constant); its stored values are
        float rounding (~1e-8): compare them with an absolute tolerance. With RoPE
        (qwen2) the key bias is rotated per position and its relevance is real.

With --gemma3, makes the two Gemma 3 models of GEMMA_SPECS below and writes the same
kinds of output to references-gemma3.{json,safetensors}, families-relevance-gemma3.{json,
safetensors} and families/gemma3-six.gguf (write_gemma3_gguf), leaving the files above as
they are.

The folders carry tokenizer.json only (like tiny-gqa): AutoTokenizer then picks the class
from model_type, and LlamaTokenizerFast adds its default "<s>" as a new id 384 as BOS.

AttnLRP: LXT's efficient monkey_patch for modeling_llama, modeling_qwen2 and
modeling_gpt2. LXT has no OPT patch; `OPT_ATTNLRP` below applies the rules LXT applies to
GPT-2 (see the comment there). Patches replace class methods process-wide (GPT-2's map
patches torch.nn.LayerNorm and torch.nn.Dropout themselves), so all plain gradients are
computed before any patch.

--check-export DIR --family NAME loads an exported Hugging Face folder with
AutoModelForCausalLM (and AutoTokenizer) and prints max |Δlogits| against the stored
logits of fixture model NAME on its three sequences; exits 1 above 1e-4.
"""
import argparse, json, os, shutil, sys, time, warnings
from functools import partial
import numpy as np
import torch
from torch import nn
from safetensors.numpy import save_file
from safetensors.torch import load_file
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, OPTConfig,
                          OPTForCausalLM, Qwen2Config, Qwen2ForCausalLM)
from transformers.models.gpt2 import modeling_gpt2
from transformers.models.llama import modeling_llama
from transformers.models.opt import modeling_opt
from transformers.models.qwen2 import modeling_qwen2
from transformers import Gemma3ForCausalLM, Gemma3TextConfig
from transformers.models.gemma3 import modeling_gemma3

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_FIX = os.path.join(HERE, "..", "Tests", "SparcModelTests", "Fixtures")
FAMILIES = os.path.join(MODEL_FIX, "families")
REL_OUT = os.path.join(HERE, "..", "Tests", "SparcAttributionTests", "Fixtures")
TOKENIZER = os.path.join(MODEL_FIX, "tiny-gqa", "tokenizer.json")
VOCAB = 384
TOLERANCE = 1e-4


# ---------------------------------------------------------------- tiny models
def llama_like(cls, cfg_cls, **kw):
    def make():
        cfg = cfg_cls(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, max_position_embeddings=128, rms_norm_eps=1e-5,
                      initializer_range=0.2, bos_token_id=1, eos_token_id=2, rope_theta=10000.0,
                      attn_implementation="eager", **kw)
        return cls(cfg)
    return make


SPECS = {
    "llama-linear": (11, llama_like(LlamaForCausalLM, LlamaConfig, num_key_value_heads=2, tie_word_embeddings=False,
                                    rope_scaling={"rope_type": "linear", "factor": 2.0})),
    "llama-llama3": (12, llama_like(LlamaForCausalLM, LlamaConfig, num_key_value_heads=4, tie_word_embeddings=True,
                                    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 32})),
    "qwen2-gqa": (13, llama_like(Qwen2ForCausalLM, Qwen2Config, num_key_value_heads=2, tie_word_embeddings=False)),
    "qwen2-tied": (14, llama_like(Qwen2ForCausalLM, Qwen2Config, num_key_value_heads=4, tie_word_embeddings=True)),
    "gpt2": (15, lambda: GPT2LMHeadModel(GPT2Config(
        vocab_size=VOCAB, n_embd=64, n_head=4, n_layer=2, n_positions=128, activation_function="gelu_new",
        initializer_range=0.2, bos_token_id=1, eos_token_id=2, attn_implementation="eager"))),
    "gpt2-inner": (16, lambda: GPT2LMHeadModel(GPT2Config(
        vocab_size=VOCAB, n_embd=64, n_head=4, n_layer=2, n_positions=128, n_inner=96, activation_function="gelu",
        layer_norm_epsilon=1e-3, initializer_range=0.2, bos_token_id=1, eos_token_id=2,
        attn_implementation="eager"))),
    "opt": (17, lambda: OPTForCausalLM(OPTConfig(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, ffn_dim=128, num_attention_heads=4,
        max_position_embeddings=128, do_layer_norm_before=True, word_embed_proj_dim=64, activation_function="relu",
        enable_bias=True, init_std=0.2, tie_word_embeddings=True, attn_implementation="eager"))),
    "opt-post": (18, lambda: OPTForCausalLM(OPTConfig(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, ffn_dim=128, num_attention_heads=4,
        max_position_embeddings=128, do_layer_norm_before=False, word_embed_proj_dim=32,
        activation_function="relu", enable_bias=True, init_std=0.2, tie_word_embeddings=True,
        attn_implementation="eager"))),
}

# Gemma 3 (`--gemma3`, written to their own files so the fixtures above stay as they are):
#   gemma3-window  layer types sliding/full/sliding, window 5 (shorter than the 7- and
#                  40-token sequences), GQA 4/2, head_dim 16 (q width 64), query_pre_attn_scalar
#                  24 (not head_dim), local RoPE base 100, global base 10000 with linear
#                  scaling 2, tied
#   gemma3-six     six layers in the default pattern (5 sliding, 1 full; what llama.cpp
#                  assumes), window 3, hidden 32, GQA 2/1, head_dim 16, untied: also written
#                  as gemma3-six.gguf the way llama.cpp's converter writes Gemma 3
GEMMA_SPECS = {
    "gemma3-window": (21, lambda: Gemma3ForCausalLM(Gemma3TextConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=24, sliding_window=5,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"], rope_local_base_freq=100.0,
        rope_theta=10000.0, rope_scaling={"rope_type": "linear", "factor": 2.0}, max_position_embeddings=128,
        rms_norm_eps=1e-6, initializer_range=0.2, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        tie_word_embeddings=True, attn_implementation="eager"))),
    "gemma3-six": (22, lambda: Gemma3ForCausalLM(Gemma3TextConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=6, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16, sliding_window=3,
        rope_theta=1_000_000.0, max_position_embeddings=128, rms_norm_eps=1e-6, initializer_range=0.2,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
        attn_implementation="eager"))),
}
SPECS.update(GEMMA_SPECS)


def family(name):
    return name.split("-")[0]


def make_model(name):
    seed, make = SPECS[name]
    torch.manual_seed(seed)
    model = make().float().eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("bias"):
                # transformers zeroes biases (and LayerNorm biases) at init
                p.copy_(0.1 * torch.randn_like(p))
            elif p.ndim == 1 and family(name) == "gemma3":
                # Gemma3RMSNorm scales by (1 + w): w near zero, not zero
                p.copy_(0.2 * torch.randn_like(p))
            elif p.ndim == 1:
                # RMSNorm / LayerNorm weights: not ones
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif "embed" in pname or "wte" in pname or "wpe" in pname:
                # OPT zeroes its padding row (pad_token_id 1) at init; a trained model has none
                p.copy_(0.2 * torch.randn_like(p))
    return model


def save_folder(name, model):
    folder = os.path.join(FAMILIES, name)
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder, safe_serialization=True)
    gc = os.path.join(folder, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)
    shutil.copyfile(TOKENIZER, os.path.join(folder, "tokenizer.json"))
    # The reference is the saved folder read back (float32, eager).
    cls = type(model)
    back = cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    for (k, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), k
    return back


# ---------------------------------------------------------------- logits
def logit_sequences():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, VOCAB, (n,), generator=g).tolist() for n in (1, 7, 40)]


@torch.no_grad()
def logits_of(model, ids):
    return model(torch.tensor([ids]), use_cache=False).logits[0].float().numpy()


@torch.no_grad()
def greedy(model, ids, n):
    """Greedy tokens and the smallest top-1/top-2 logit gap met on the way."""
    ids = list(ids)
    out, gap = [], float("inf")
    for _ in range(n):
        top = model(torch.tensor([ids]), use_cache=False).logits[0, -1].topk(2)
        gap = min(gap, float(top.values[0] - top.values[1]))
        nxt = int(top.indices[0])
        out.append(nxt)
        ids.append(nxt)
    return out, gap


# ---------------------------------------------------------------- relevances
def parts(model, name):
    """(layers, layer prefix, attention key, output projections, input embedding, position module, extras)."""
    f = family(name)
    if f in ("llama", "qwen2", "gemma3"):
        layers, prefix = model.model.layers, "model.layers"
        outs = lambda l: (l.mlp.down_proj, l.self_attn.o_proj)
        attn_key, pos, extra = "self_attn", None, ["model.norm"]
    elif f == "gpt2":
        layers, prefix = model.transformer.h, "transformer.h"
        outs = lambda l: (l.mlp.c_proj, l.attn.c_proj)
        attn_key, pos, extra = "attn", model.transformer.wpe, ["transformer.ln_f"]
    else:
        d = model.model.decoder
        layers, prefix = d.layers, "model.decoder.layers"
        outs = lambda l: (l.fc2, l.self_attn.out_proj)
        attn_key, pos = "self_attn", d.embed_positions
        extra = [n for n in ("model.decoder.final_layer_norm", "model.decoder.project_in", "model.decoder.project_out")
                 if getattr(d, n.split(".")[-1]) is not None]
    return layers, prefix, outs, attn_key, pos, extra


def explain(model, name, ids, target):
    """One backward pass; returns the explained value and the relevances."""
    model.zero_grad(set_to_none=True)
    layers, prefix, outs, attn_key, pos, extra = parts(model, name)
    captured, hooks = {}, []
    for l, layer in enumerate(layers):
        mlp_out, attn_out = outs(layer)
        for key, module in ((f"{prefix}.{l}.mlp", mlp_out), (f"{prefix}.{l}.{attn_key}", attn_out)):
            def pre(mod, inp, key=key):
                inp[0].retain_grad()
                captured[key] = inp[0]
            hooks.append(module.register_forward_pre_hook(pre))
    if pos is not None:
        def post(mod, inp, out):
            out.retain_grad()
            captured["positions"] = out
        hooks.append(pos.register_forward_hook(post))
    emb = model.get_input_embeddings()(torch.tensor([ids])).detach().requires_grad_(True)
    logits = model(inputs_embeds=emb, use_cache=False).logits[0]
    if target[0] == "predicted":
        value = logits[-1].max()
        value.backward(value)
    elif target[0] == "contrast":
        value = logits[-1, target[1]] - logits[-1, target[2]]
        value.backward(value)
    elif target[0] == "lm":
        nxt = torch.tensor(ids[1:])
        picked = logits[:-1].gather(1, nxt[:, None])[:, 0]
        picked.backward(picked.detach())
        value = picked.sum()
    for h in hooks:
        h.remove()
    out = {"tokens": (emb * emb.grad).sum(-1)[0].detach().numpy()}
    if "positions" in captured:
        p = captured.pop("positions")
        out["positions"] = (p * p.grad).sum(-1).reshape(-1).detach().numpy()
    for pname, p in model.named_parameters():
        if pname.startswith(prefix + ".") or any(pname.startswith(e + ".") for e in extra):
            assert p.grad is not None, pname
            out[pname] = (p * p.grad).detach().numpy()
    for key, act in captured.items():
        # OPT's fc2 sees [B*T, ffn] (the decoder layer flattens tokens before its MLP).
        out[key] = (act * act.grad).reshape(-1, act.shape[-1]).sum(0).detach().numpy()
    return float(value.detach()), out


def targets():
    g = torch.Generator().manual_seed(3)
    p1 = torch.randint(0, VOCAB, (9,), generator=g).tolist()
    p2 = torch.randint(0, VOCAB, (14,), generator=g).tolist()
    p3 = torch.randint(0, VOCAB, (6,), generator=g).tolist()
    return [(p1, ("predicted",)), (p2, ("predicted",)), (p3, ("contrast", 5, 17)), (p2, ("lm",))]


MATRIX_ROWS = 16


def run(models, lrp):
    refs, meta = {}, {}
    for name, model in models.items():
        entries = []
        for i, (ids, target) in enumerate(targets()):
            value, rel = explain(model, name, ids, target)
            prefix = f"{name}/{'lrp' if lrp else 'grad'}/{i}/"
            for k, v in rel.items():
                # The first rows of each matrix keep the fixture small (a few MB); every
                # vector is stored whole.
                if v.ndim == 2:
                    v = v[:MATRIX_ROWS]
                refs[prefix + k] = np.ascontiguousarray(v, dtype=np.float32)
            entries.append({"ids": ids, "target": list(target), "explained": value})
        meta[name] = entries
    return refs, meta


# ---------------------------------------------------------------- AttnLRP for OPT
def opt_attnlrp():
    """LXT (2.1) has no OPT map. OPT's decoder layer is GPT-2's pre-norm block with
    nn.Linear instead of Conv1D, ReLU instead of GELU, q scaled by head_dim^-0.5 right
    after q_proj (scaling=1.0 in the attention call), learned positions with offset 2,
    and for post-norm (350m) LayerNorm after each residual add. So it gets exactly the
    rules LXT's gpt2 map applies (lxt/efficient/models/gpt2.py, attnLRP):
      - nn.LayerNorm -> patches.layer_norm_forward (std detached, mean not, affine
        untouched). torch.nn.LayerNorm is the class GPT-2's map already patched; listed
        again so this map stands alone (a second patch only warns).
      - nn.Dropout -> patches.dropout_forward (identity). OPT's own dropouts are
        functional and inactive in eval mode.
      - the MLP activation (nn.ReLU, OPT's ACT2FN["relu"]) -> identity rule through
        rules.identity_rule_implicit (patches.non_linear_forward keeps the original
        forward), as gpt2.mlp_forward does for GELU. For ReLU f(x)/(x+1e-10) is the ReLU
        derivative up to rounding, so this equals the plain gradient.
      - modeling_opt's eager_attention_forward / ALL_ATTENTION_FUNCTIONS ->
        patches.patch_attention: gradients of q and k divided by 4, v by 2 (uniform rule
        on q·kᵀ and on P·V); softmax, mask and scaling keep their plain gradient.
      - linear layers, biases, residual adds, position embeddings: plain gradient
        (Gradient × Input; nothing patched), as for GPT-2.
    """
    from lxt.efficient.patches import (patch_method, patch_attention, layer_norm_forward, dropout_forward,
                                       non_linear_forward)
    return {
        nn.LayerNorm: partial(patch_method, layer_norm_forward),
        nn.Dropout: partial(patch_method, dropout_forward),
        nn.ReLU: partial(patch_method, non_linear_forward, keep_original=True),
        modeling_opt: patch_attention,
    }


def patch_all():
    from lxt.efficient import monkey_patch
    with warnings.catch_warnings():
        # Dropout / LayerNorm are shared classes: the second map to patch them warns.
        warnings.simplefilter("ignore")
        monkey_patch(modeling_llama, verbose=False)
        monkey_patch(modeling_qwen2, verbose=False)
        monkey_patch(modeling_gpt2, verbose=False)
        monkey_patch(modeling_opt, patch_map=opt_attnlrp(), verbose=False)
        # lxt/efficient/models/gemma3.py: Gemma3RMSNorm._norm with rsqrt detached (q/k
        # norms, pre- and post-norms alike), GeGLU identity + uniform rule, attention q/k
        # gradients / 4 and v / 2; the embedding scale and (1 + w) stay plain products.
        monkey_patch(modeling_gemma3, verbose=False)
    from lxt.efficient.patches import layer_norm_forward
    assert nn.LayerNorm.forward is layer_norm_forward and nn.ReLU.forward.__module__ == "lxt.efficient.patches"
    for m in (modeling_llama, modeling_qwen2, modeling_gpt2, modeling_opt, modeling_gemma3):
        assert m.eager_attention_forward.__module__ == "lxt.efficient.patches", m.__name__


# ---------------------------------------------------------------- main
def generate(names, suffix=""):
    t0 = time.time()
    os.makedirs(FAMILIES, exist_ok=True)
    os.makedirs(REL_OUT, exist_ok=True)
    models = {}
    seqs = logit_sequences()
    refs, meta = {}, {"sequences": seqs, "greedy_prompt": seqs[1], "greedy_tokens": 12, "models": {}}
    for name in names:
        model = save_folder(name, make_model(name))
        models[name] = model
        entry = {}
        for i, ids in enumerate(seqs):
            lg = logits_of(model, ids)
            refs[f"{name}/logits/{i}"] = lg
            entry[f"logit_std/{i}"] = float(lg.std())
        entry["greedy"], entry["greedy_min_gap"] = greedy(model, seqs[1], 12)
        meta["models"][name] = entry
        size = sum(os.path.getsize(os.path.join(FAMILIES, name, f)) for f in os.listdir(os.path.join(FAMILIES, name)))
        print(f"{name}: folder {size} bytes, logit std {entry['logit_std/2']:.3f}, greedy {entry['greedy']} (min gap {entry['greedy_min_gap']:.3g})")
    save_file(refs, os.path.join(FAMILIES, f"references{suffix}.safetensors"))
    json.dump(meta, open(os.path.join(FAMILIES, f"references{suffix}.json"), "w"))
    if "gemma3-six" in models:
        write_gemma3_gguf(models["gemma3-six"], os.path.join(FAMILIES, "gemma3-six.gguf"))

    # Plain gradients first (no patches), then AttnLRP.
    grad_refs, grad_meta = run(models, lrp=False)
    patch_all()
    lrp_refs, lrp_meta = run(models, lrp=True)
    save_file({**grad_refs, **lrp_refs}, os.path.join(REL_OUT, f"families-relevance{suffix}.safetensors"))
    json.dump({"gradient": grad_meta, "lrp": lrp_meta}, open(os.path.join(REL_OUT, f"families-relevance{suffix}.json"), "w"))
    print(f"family references written in {time.time() - t0:.1f} s")


# ---------------------------------------------------------------- Gemma 3 GGUF
def write_gemma3_gguf(model, path):
    """The tiny Gemma 3 as llama.cpp's convert_hf_to_gguf.py (Gemma3Model) writes it: its
    gemma3.* keys (no sliding-window pattern, local RoPE base or query_pre_attn_scalar:
    llama.cpp fixes those at 6, 10000 and head_dim), every *norm.weight stored + 1
    (norm_shift; Gemma3RMSNorm scales by 1 + w), q/k rows in Hugging Face order (no
    permutation outside the llama arch), F32. Its vocabulary is tiny-gqa's GPT-2 BPE (the
    converter's _set_vocab_gpt2 path, taken when there is no tokenizer.model), copied
    from tiny-gqa.gguf."""
    import gguf
    c = model.config
    w = gguf.GGUFWriter(path, "gemma3")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_key_length(c.head_dim)
    w.add_value_length(c.head_dim)
    w.add_rope_freq_base(c.rope_theta)
    w.add_sliding_window(c.sliding_window)
    w.add_head_count_kv(c.num_key_value_heads)
    src = gguf.GGUFReader(os.path.join(MODEL_FIX, "tiny-gqa.gguf"))
    for field in src.fields.values():
        if not field.name.startswith("tokenizer.ggml."):
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            sub = field.types[1]
            vals = [bytes(field.parts[i]).decode() if sub == gguf.GGUFValueType.STRING else field.parts[i].tolist()[0]
                    for i in field.data]
            w.add_array(field.name, vals)
        elif kind == gguf.GGUFValueType.STRING:
            w.add_string(field.name, bytes(field.parts[field.data[0]]).decode())
        else:
            w.add_key_value(field.name, field.parts[field.data[0]].tolist()[0], kind)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
                 "self_attn.k_norm": "attn_k_norm", "post_attention_layernorm": "post_attention_norm",
                 "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm",
                 "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for name, t in model.state_dict().items():
        if name == "lm_head.weight" and c.tie_word_embeddings:
            continue
        if name in names:
            out = names[name]
        else:
            parts_ = name.split(".")
            l, inner = parts_[2], ".".join(parts_[3:-1])
            out = f"blk.{l}.{per_layer[inner]}.weight"
        data = t.detach().float()
        if name.endswith("norm.weight"):
            data = data + 1.0
        w.add_tensor(out, data.numpy().astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def check_export(folder, name):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    suffix = "-gemma3" if name in GEMMA_SPECS else ""
    meta = json.load(open(os.path.join(FAMILIES, f"references{suffix}.json")))
    stored = load_file(os.path.join(FAMILIES, f"references{suffix}.safetensors"))
    # transformers ≥ 4.56 names it dtype, older releases torch_dtype (4.52 is checked too).
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="eager").eval()
    print(f"loaded {type(model).__name__} from {folder}")
    text = "The model prunes the least relevant weights."
    try:
        tok = AutoTokenizer.from_pretrained(folder)
        ids = tok(text)["input_ids"]
        tok_ok = True
    except Exception as e:
        tok_ok = False
        print(f"FAIL: the tokenizer did not load: {e}")
    if tok_ok:
        # Informational: a tokenizer_config.json of the export may legitimately change BOS
        # handling; and the fixture folder itself (tokenizer.json only) may not load at all
        # where transformers builds the family's own class (Gemma's, 5.x: no <unk> in it).
        try:
            ref_tok = AutoTokenizer.from_pretrained(os.path.join(FAMILIES, name))
            ref_ids = ref_tok(text)["input_ids"]
            print(f"tokenizer {type(tok).__name__} loaded; ids {'equal to' if ids == ref_ids else 'differ from'} "
                  f"the fixture folder's ({ids[:6]}... vs {ref_ids[:6]}...)")
        except Exception as e:
            print(f"tokenizer {type(tok).__name__} loaded ({ids[:6]}...); the fixture folder's own did not: {e}")
    worst = 0.0
    for i, ids in enumerate(meta["sequences"]):
        d = float(np.abs(logits_of(model, ids) - stored[f"{name}/logits/{i}"].numpy()).max())
        worst = max(worst, d)
        print(f"sequence {i} (T={len(ids)}): max |Δlogits| = {d:.3g}")
    ok = worst <= TOLERANCE and tok_ok
    print(("OK" if ok else "FAIL") + f": max |Δlogits| {worst:.3g} (tolerance {TOLERANCE})")
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-export", metavar="DIR")
    ap.add_argument("--family", choices=list(SPECS))
    ap.add_argument("--gemma3", action="store_true", help="write only the Gemma 3 fixtures (their own files)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.check_export:
        if not a.family:
            ap.error("--check-export needs --family")
        sys.exit(check_export(a.check_export, a.family))
    if a.gemma3:
        generate(list(GEMMA_SPECS), suffix="-gemma3")
    else:
        generate([n for n in SPECS if n not in GEMMA_SPECS])

#!/usr/bin/env python3
"""Reference relevances for sparc's attribution tests, from LXT's efficient AttnLRP
(PyTorch + transformers 4.x + lxt 2.x), run by hand; small outputs committed under
Tests/SparcAttributionTests/Fixtures/.

    python3 scripts/make_attribution_references.py [--smollm2 PATH_TO_GGUF]

LXT 2.1 targets transformers 4 (it does not import under transformers 5), so this script
runs in its own environment: pip install torch "transformers>=4.50,<5" lxt safetensors gguf.
The tiny models are the runtime fixtures (Tests/SparcModelTests/Fixtures); their config
is translated from transformers 5's `rope_parameters` to transformers 4's fields.

For each model and prompt it records, with LXT's patches (AttnLRP) and without them
(plain gradients):
  token relevance  (input embeddings ⊙ gradient, summed over hidden)
  weight relevance (W ⊙ W.grad for every block linear weight)
  neuron relevance (down_proj and o_proj inputs ⊙ their gradients, summed over tokens)
  the explained quantity; seeds follow LXT: logit.backward(logit).
"""
import argparse, json, os
import numpy as np
import torch
from safetensors.numpy import save_file
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama import modeling_llama

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "Tests", "SparcModelTests", "Fixtures")
OUT = os.path.join(HERE, "..", "Tests", "SparcAttributionTests", "Fixtures")
LINEAR = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def load_tiny(name):
    cfg = json.load(open(os.path.join(MODELS, name, "config.json")))
    rope = cfg.pop("rope_parameters", None) or {}
    cfg["rope_theta"] = rope.get("rope_theta", 10000.0)
    if rope.get("rope_type", "default") != "default":
        cfg["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
    for k in ("dtype", "transformers_version"):
        cfg.pop(k, None)
    config = LlamaConfig(**cfg)
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config).float().eval()
    sd = {k: v.float() for k, v in load_file(os.path.join(MODELS, name, "model.safetensors")).items()}
    if config.tie_word_embeddings:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    model.load_state_dict(sd, strict=True)
    return model


def explain(model, ids, target, lrp_rows=None):
    """One backward pass; returns the explained value and the relevances."""
    model.zero_grad()
    captured = {}
    hooks = []
    for l, layer in enumerate(model.model.layers):
        for key, module in ((f"model.layers.{l}.mlp", layer.mlp.down_proj), (f"model.layers.{l}.self_attn", layer.self_attn.o_proj)):
            def hook(mod, inp, key=key):
                inp[0].retain_grad()
                captured[key] = inp[0]
            hooks.append(module.register_forward_pre_hook(hook))
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
    for l, layer in enumerate(model.model.layers):
        for name in LINEAR:
            mod = layer.get_submodule(name)
            out[f"model.layers.{l}.{name}.weight"] = (mod.weight * mod.weight.grad).detach().numpy()
    for key, act in captured.items():
        out[key] = (act * act.grad).sum(dim=(0, 1)).detach().numpy()
    return float(value), out


def run(models, prompts_for, lrp):
    refs, meta = {}, {}
    for name, model in models.items():
        entries = []
        for i, (ids, target) in enumerate(prompts_for(name, model)):
            value, rel = explain(model, ids, target)
            prefix = f"{name}/{'lrp' if lrp else 'grad'}/{i}/"
            for k, v in rel.items():
                refs[prefix + k] = np.ascontiguousarray(v, dtype=np.float32)
            entries.append({"ids": ids, "target": list(target), "explained": value})
        meta[name] = entries
    return refs, meta


def tiny_prompts(name, model):
    g = torch.Generator().manual_seed(3)
    v = model.config.vocab_size
    p1 = torch.randint(0, v, (9,), generator=g).tolist()
    p2 = torch.randint(0, v, (14,), generator=g).tolist()
    p3 = torch.randint(0, v, (6,), generator=g).tolist()
    return [(p1, ("predicted",)), (p2, ("predicted",)), (p3, ("contrast", 5, 17)), (p2, ("lm",))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smollm2")
    a = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    tiny = {n: load_tiny(n) for n in ("tiny-gqa", "tiny-tied")}
    # Plain gradients first (no patches), then LXT's AttnLRP patches.
    grad_refs, grad_meta = run(tiny, tiny_prompts, lrp=False)
    from lxt.efficient import monkey_patch
    monkey_patch(modeling_llama, verbose=False)
    lrp_refs, lrp_meta = run(tiny, tiny_prompts, lrp=True)
    save_file({**grad_refs, **lrp_refs}, os.path.join(OUT, "tiny-relevance.safetensors"))
    json.dump({"gradient": grad_meta, "lrp": lrp_meta}, open(os.path.join(OUT, "tiny-relevance.json"), "w"))
    print("tiny references written")
    if a.smollm2:
        smollm2(a.smollm2)


def smollm2(path):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                 torch_dtype=torch.float32, attn_implementation="eager").eval()
    prompts = [[504, 3575, 282, 4649, 314], [9841, 2114, 253, 655, 28, 281, 253, 1165, 5271, 28]]
    refs, meta = {}, []
    for i, ids in enumerate(prompts):
        value, rel = explain(model, ids, ("predicted",))
        refs[f"smollm2/{i}/tokens"] = rel["tokens"].astype(np.float32)
        # A slice of a few layers' weight relevances keeps the fixture small.
        for key in ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight",
                    "model.layers.15.self_attn.v_proj.weight", "model.layers.29.mlp.gate_proj.weight"):
            refs[f"smollm2/{i}/{key}"] = np.ascontiguousarray(rel[key][:32], dtype=np.float32)
        refs[f"smollm2/{i}/model.layers.10.mlp"] = rel["model.layers.10.mlp"].astype(np.float32)
        meta.append({"ids": ids, "explained": value})
    save_file(refs, os.path.join(OUT, "smollm2-relevance.safetensors"))
    json.dump(meta, open(os.path.join(OUT, "smollm2-relevance.json"), "w"))
    print("smollm2 references written")


if __name__ == "__main__":
    main()

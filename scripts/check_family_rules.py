#!/usr/bin/env python3
"""The AttnLRP rules of LXT's efficient patches, written out by hand in plain PyTorch (no
LXT, no patched transformers forward) for the four families, run on the fixture weights
and compared with families-relevance.safetensors (made by make_family_references.py with
LXT itself). A readable statement of what sparc has to reproduce:

  RMSNorm     w * (x * rsqrt(mean(x²) + eps).detach())
  LayerNorm   (x - mean(x)) / sqrt(var(x) + eps).detach() * w + b   (mean keeps its gradient)
  activation  identity rule: gradient f(x) / (x + 1e-10)  (SiLU gate, GELU, gelu_new, ReLU)
  SwiGLU      gradient of gate * up divided by 2
  attention   gradients of q and k divided by 4, of v by 2, where the attention function
              receives them (after RoPE / OPT's q scaling, before GQA repetition); scaling,
              mask and softmax keep their plain gradient
  the rest    plain gradient (linear/Conv1D with biases, residual adds, embeddings)

    python3 scripts/check_family_rules.py          # AttnLRP  (fixture `lrp` entries)
    python3 scripts/check_family_rules.py --grad   # plain gradient (fixture `grad` entries)

Prints the largest error relative to each array's largest magnitude (at least 1e-3 × the
explained value, as GPT-2/OPT key-bias relevances are float noise around an exact zero):
0 for AttnLRP, where the operations run in the same order as with LXT, and below 1e-3
for plain gradients (fused LayerNorm against the written-out one; the OPT key biases).
"""
import json, os, sys, math
import numpy as np, torch, torch.nn.functional as F
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

torch.set_num_threads(2)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests")
FAM = f"{ROOT}/SparcModelTests/Fixtures/families"
REL = load_file(f"{ROOT}/SparcAttributionTests/Fixtures/families-relevance.safetensors")
META = json.load(open(f"{ROOT}/SparcAttributionTests/Fixtures/families-relevance.json"))
LRP = "--grad" not in sys.argv


def divgrad(x, k):
    if not LRP: return x
    return x / k + (x - x / k).detach()


def ident(f, x):
    y = f(x)
    if not LRP: return y
    r = (y / (x + 1e-10)).detach()
    return x * r + (y - x * r).detach()


def ln(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    std = (var + eps).sqrt()
    if LRP: std = std.detach()
    return (x - mean) / std * w + b


def rms(x, w, eps):
    s = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    if LRP: s = s.detach()
    return w * (x * s)


def attend(q, k, v, scale):
    # q [H,T,d], k/v [Hkv,T,d]
    q, k, v = divgrad(q, 4), divgrad(k, 4), divgrad(v, 2)
    rep = q.shape[0] // k.shape[0]
    k, v = k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0)
    T = q.shape[1]
    s = q @ k.transpose(-1, -2) * scale
    s = s.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), torch.finfo(s.dtype).min)
    p = torch.softmax(s, -1)
    return (p @ v).transpose(0, 1).reshape(T, -1)


def heads(x, n):
    T = x.shape[0]
    return x.view(T, n, -1).transpose(0, 1)


def forward(name, m, emb):
    c = m.config
    T = emb.shape[0]
    cap = {}
    def keep(key, t):
        t.retain_grad(); cap[key] = t; return t
    if name.startswith(("llama", "qwen2")):
        h = emb
        pos = torch.arange(T)[None]
        cos, sin = m.model.rotary_emb(emb[None], pos)
        H, Hkv = c.num_attention_heads, c.num_key_value_heads
        for l, L in enumerate(m.model.layers):
            a = rms(h, L.input_layernorm.weight, c.rms_norm_eps)
            at = L.self_attn
            q, k, v = heads(at.q_proj(a), H)[None], heads(at.k_proj(a), Hkv)[None], heads(at.v_proj(a), Hkv)[None]
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            o = attend(q[0], k[0], v[0], at.head_dim ** -0.5)
            h = h + F.linear(keep(f"model.layers.{l}.self_attn", o), at.o_proj.weight)
            x = rms(h, L.post_attention_layernorm.weight, c.rms_norm_eps)
            g = ident(F.silu, F.linear(x, L.mlp.gate_proj.weight))
            prod = divgrad(g * F.linear(x, L.mlp.up_proj.weight), 2)
            h = h + F.linear(keep(f"model.layers.{l}.mlp", prod), L.mlp.down_proj.weight)
        h = rms(h, m.model.norm.weight, c.rms_norm_eps)
        return F.linear(h, m.lm_head.weight), cap
    if name.startswith("gpt2"):
        t = m.transformer
        P = keep("positions", t.wpe.weight[:T])
        h = emb + P
        eps, H = c.layer_norm_epsilon, c.n_head
        act = {"gelu_new": lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
               "gelu": F.gelu}[c.activation_function]
        for l, L in enumerate(t.h):
            a = ln(h, L.ln_1.weight, L.ln_1.bias, eps)
            qkv = torch.addmm(L.attn.c_attn.bias, a, L.attn.c_attn.weight)
            q, k, v = (heads(z, H) for z in qkv.split(c.n_embd, -1))
            o = attend(q, k, v, 1 / math.sqrt(c.n_embd // H))
            h = h + torch.addmm(L.attn.c_proj.bias, keep(f"transformer.h.{l}.attn", o), L.attn.c_proj.weight)
            x = ln(h, L.ln_2.weight, L.ln_2.bias, eps)
            f = ident(act, torch.addmm(L.mlp.c_fc.bias, x, L.mlp.c_fc.weight))
            h = h + torch.addmm(L.mlp.c_proj.bias, keep(f"transformer.h.{l}.mlp", f), L.mlp.c_proj.weight)
        h = ln(h, t.ln_f.weight, t.ln_f.bias, eps)
        return h @ t.wte.weight.T, cap
    d = m.model.decoder
    P = keep("positions", d.embed_positions.weight[2:T + 2])     # offset 2
    x0 = emb if d.project_in is None else F.linear(emb, d.project_in.weight)
    h = x0 + P
    H, pre = c.num_attention_heads, c.do_layer_norm_before
    for l, L in enumerate(d.layers):
        A, N = L.self_attn_layer_norm, L.final_layer_norm
        at = L.self_attn
        a = ln(h, A.weight, A.bias, 1e-5) if pre else h
        q = heads(at.q_proj(a) * at.head_dim ** -0.5, H)
        o = attend(q, heads(at.k_proj(a), H), heads(at.v_proj(a), H), 1.0)
        h = h + at.out_proj(keep(f"model.decoder.layers.{l}.self_attn", o))
        if not pre: h = ln(h, A.weight, A.bias, 1e-5)
        x = ln(h, N.weight, N.bias, 1e-5) if pre else h
        f = ident(F.relu, L.fc1(x))
        h = h + L.fc2(keep(f"model.decoder.layers.{l}.mlp", f))
        if not pre: h = ln(h, N.weight, N.bias, 1e-5)
    if d.final_layer_norm is not None:
        h = ln(h, d.final_layer_norm.weight, d.final_layer_norm.bias, 1e-5)
    if d.project_out is not None:
        h = F.linear(h, d.project_out.weight)
    return F.linear(h, m.lm_head.weight), cap


worst_all = 0
for name in ["llama-linear", "llama-llama3", "qwen2-gqa", "qwen2-tied", "gpt2", "gpt2-inner", "opt", "opt-post"]:
    m = AutoModelForCausalLM.from_pretrained(f"{FAM}/{name}", dtype=torch.float32, attn_implementation="eager").eval()
    for i, e in enumerate(META["lrp" if LRP else "gradient"][name]):
        ids, target = e["ids"], e["target"]
        m.zero_grad(set_to_none=True)
        emb = m.get_input_embeddings().weight[ids].detach().requires_grad_(True)
        logits, cap = forward(name, m, emb)
        if target[0] == "predicted":
            v = logits[-1].max(); v.backward(v)
        elif target[0] == "contrast":
            v = logits[-1, target[1]] - logits[-1, target[2]]; v.backward(v)
        else:
            pk = logits[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0]; pk.backward(pk.detach()); v = pk.sum()
        mine = {"tokens": (emb * emb.grad).sum(-1)}
        for k, t in cap.items():
            mine[k] = (t * t.grad).sum(-1) if k == "positions" else (t * t.grad).sum(0)
        for pn, p in m.named_parameters():
            if p.grad is not None and (".layers." in pn or ".h." in pn):
                mine[pn] = p * p.grad
        pre = f"{name}/{'lrp' if LRP else 'grad'}/{i}/"
        worst = abs(float(v.detach()) - e["explained"]) / abs(e["explained"])
        n = 0
        for k, t in mine.items():
            ref = REL[pre + k]
            a = t.detach().numpy()
            scale = max(float(np.abs(ref).max()), 1e-3 * abs(e["explained"]))  # gpt2/opt key bias: ~1e-8 noise
            err = float(np.abs(a - ref).max() / scale); (err > 1e-3 and print("   ", k, err, "max", float(np.abs(ref).max()))); assert err == err, (k, a.shape, ref.shape); worst = max(worst, err); n += 1
        worst_all = max(worst_all, worst)
        print(f"{name} target {i} {target[0]}: {n} arrays, max rel err {worst:.2e}")
print("worst", worst_all)

#!/usr/bin/env python3
"""Reference fixtures for sparc's runtime tests, made with PyTorch + transformers +
tokenizers + gguf-py. Run by hand (see scripts/README.md); its small outputs are committed
under Tests/SparcModelTests/Fixtures/.

    python3 scripts/make_references.py [--smollm2 PATH_TO_GGUF]

Makes:
  tiny-gqa/            random Llama (GQA 4/2 heads, untied), HF folder, F32 safetensors,
                       byte-level BPE tokenizer (GPT-2 regex, BOS added by TemplateProcessing)
  tiny-gqa.gguf        the same weights as GGUF F32, q/k rows permuted as llama.cpp does
  tiny-quant.gguf      the same weights quantised: Q8_0, Q4_0, Q4_1, BF16, F16
  tiny-quant-dequant.safetensors  gguf-py's dequantisation of tiny-quant.gguf, HF names/layout
  tiny-tied/           random Llama (MHA, tied embeddings, llama3 RoPE scaling), BF16
                       safetensors, tokenizer with the Llama-3 split regex
  tiny-tied.gguf       the same as GGUF F16
  references.safetensors / references.json
                       logits of each model file for several prompts, greedy continuations,
                       sliding-window perplexity, tokenizer ids for tokenizer-corpus.json
  smollm2.json         (with --smollm2) top-5 logits, greedy continuations, perplexity of
                       apache-2.0.txt and tokenizer ids, from transformers on the GGUF
"""
import argparse, json, math, os, random, shutil, sys, tempfile
import numpy as np
import torch
from safetensors.numpy import save_file
import gguf
from gguf import GGMLQuantizationType as Q
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, processors, trainers, Regex
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "Tests", "SparcModelTests", "Fixtures")
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


# ---------------------------------------------------------------- tokenizer corpus
def tokenizer_corpus():
    """A few hundred varied lines: prose, Unicode, emoji, code, whitespace runs, digits."""
    rng = random.Random(1234)
    fixed = [
        "Hello world", "Hello  world", "Hello   world  ", " leading space", "trailing space ",
        "The quick brown fox jumps over the lazy dog.", "It's, isn't it? They're we've I'm you'll he'd",
        "DON'T SHOUT. IT'S FINE. I'LL GO", "don't 'quote' \"double\"", "café naïve résumé Ångström",
        "Straße Äpfel Öl Übermut", "日本語のテキスト、句読点。", "中文字符和English混合", "한국어 텍스트",
        "Привет, мир! Как дела?", "Ελληνικά γράμματα", "مرحبا بالعالم", "שלום עולם", "हिन्दी पाठ",
        "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️", "math ∑∫√∞ ≤ ≥ ≠ ± × ÷ π", "arrows → ← ↑ ↓ ⇒",
        "12345", "3.14159265358979", "1,000,000 and 2,500.75", "year 2024, phone 555-0123", "x1 y22 z333 w4444",
        "٣٤٥ ۱۲۳ १२३ ⅓ ½ ² ³ Ⅻ", "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) { sum += a[i]; }",
        "if x == 1:\n\tprint('tab')\n", "let s = \"string\"; // comment", "<html><body class=\"x\">hi</body></html>",
        "SELECT * FROM t WHERE a >= 10 AND b <> 'c';", "path/to/file.txt C:\\Windows\\System32",
        "https://example.com/a?b=c&d=e#frag", "user@example.org", "$100 €200 £300 ¥400 ₹500",
        "   ", "\n", "\n\n\n", "\t\t", " \n ", "a\r\nb\r\nc", "line1\nline2\n\nline4", "tabs\tand\tspaces  \t mixed",
        "nbsp\u00a0here", "ideographic\u3000space", "vertical\u000btab", "form\u000cfeed", "zero\u200bwidth", "nel\u0085line",
        "!!!???...", "----====____", "((()))[[[]]]{{{}}}", "a-b_c.d,e;f:g", "'''", "''s", "'S'T'RE",
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", "text<|endoftext|>more text",
        "<|im_end|><|im_end|>", "<|im_start", "ok<|im_start|>", "CamelCaseIdentifier snake_case_name kebab-case-name",
        "ALLCAPS lowercase MiXeD", "a", "I", "  a  b  c  ", "\u00e9\u0301 combining", "e\u0301", "ﬁ ligature",
    ]
    words = ("the of and to in is was for on that with as by at from his her they this are had not be but "
             "model token layer head weight relevance prune circuit attention neuron gradient sparse "
             "Paris London Tokyo Zürich São Paulo naïve coöperate").split()
    lines = list(fixed)
    pieces = ["  ", "\t", "\n", ", ", ". ", "'s ", "'ll ", " 42 ", " 2024", "😀", "…", " —", "\u00a0", "  \n  "]
    while len(lines) < 320:
        n = rng.randint(1, 14)
        s = ""
        for _ in range(n):
            s += rng.choice(words)
            s += rng.choice(pieces) if rng.random() < 0.3 else " "
        if rng.random() < 0.2:
            s = s.upper()
        if rng.random() < 0.2:
            s += str(rng.randint(0, 10**rng.randint(1, 9)))
        lines.append(s)
    return lines


# ---------------------------------------------------------------- tiny tokenizers
def train_tokenizer(corpus, pre, bos_template, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    if bos_template:
        tok.post_processor = processors.TemplateProcessing(single="<|im_start|> $A", special_tokens=[("<|im_start|>", 1)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def training_text():
    rng = random.Random(7)
    base = tokenizer_corpus()
    return [rng.choice(base) for _ in range(2000)]


# ---------------------------------------------------------------- tiny models
def make_model(seed, tied, heads, kv_heads, rope, vocab):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=128,
                      rms_norm_eps=1e-5, tie_word_embeddings=tied, initializer_range=0.15,
                      bos_token_id=1, eos_token_id=2, rope_parameters=rope)
    model = LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
    return model


def permute_for_gguf(w, n_head):
    # llama.cpp convert_hf_to_gguf: rows of each head reordered for interleaved RoPE.
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


GGUF_NAMES = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
              "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
              "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
              "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
              "mlp.down_proj.weight": "ffn_down.weight"}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight": return "token_embd.weight"
    if hf == "model.norm.weight": return "output_norm.weight"
    if hf == "lm_head.weight": return "output.weight"
    parts = hf.split(".")
    return f"blk.{parts[2]}." + GGUF_NAMES[".".join(parts[3:])]


def llama3_rope_factors(cfg):
    """Per-frequency divisors as llama.cpp's converter stores them (rope_freqs.weight)."""
    r = cfg.rope_parameters
    dim = cfg.hidden_size // cfg.num_attention_heads
    freqs = 1.0 / (r["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    low_wavelen = r["original_max_position_embeddings"] / r["low_freq_factor"]
    high_wavelen = r["original_max_position_embeddings"] / r["high_freq_factor"]
    out = []
    for f in freqs.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen: out.append(1.0)
        elif wavelen > low_wavelen: out.append(r["factor"])
        else:
            smooth = (r["original_max_position_embeddings"] / wavelen - r["low_freq_factor"]) / (r["high_freq_factor"] - r["low_freq_factor"])
            out.append(1 / ((1 - smooth) / r["factor"] + smooth))
    return np.array(out, dtype=np.float32)


def write_gguf(path, model, tok_json, pre_name, add_bos, types):
    cfg = model.config
    w = gguf.GGUFWriter(path, "llama")
    if cfg.rope_parameters.get("rope_type") == "llama3":
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(cfg))
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    vocab = tok_json["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items(): tokens[i] = t
    special = {a["id"] for a in tok_json["added_tokens"] if a["special"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok_json["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre_name)
    w.add_token_list(tokens)
    w.add_token_types([3 if i in special else 1 for i in range(len(tokens))])
    w.add_token_merges(merges)
    w.add_bos_token_id(1); w.add_eos_token_id(2)
    w.add_add_bos_token(add_bos)
    dequant = {}
    for name, p in model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings: continue
        a = p.detach().numpy().astype(np.float32)
        if name.endswith("q_proj.weight"): a = permute_for_gguf(a, cfg.num_attention_heads)
        if name.endswith("k_proj.weight"): a = permute_for_gguf(a, cfg.num_key_value_heads)
        t = types(name, a)
        if t == Q.F32:
            data = a
        elif t == Q.F16:
            data = a.astype(np.float16)
        else:
            data = gguf.quants.quantize(a, t)
        w.add_tensor(gguf_name(name), data, raw_dtype=t if t not in (Q.F32, Q.F16) else None)
        back = a if t == Q.F32 else (data.astype(np.float32) if t == Q.F16 else gguf.quants.dequantize(data, t))
        back = back.reshape(a.shape)
        # Undo the permutation for the HF-layout copy.
        if name.endswith("q_proj.weight"): back = unpermute(back, cfg.num_attention_heads)
        if name.endswith("k_proj.weight"): back = unpermute(back, cfg.num_key_value_heads)
        dequant[name] = np.ascontiguousarray(back, dtype=np.float32)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    return dequant


def unpermute(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def with_weights(model, weights):
    m = LlamaForCausalLM(model.config).float().eval()
    sd = {k: torch.from_numpy(v) for k, v in weights.items()}
    if model.config.tie_word_embeddings: sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    m.load_state_dict(sd, strict=True)
    return m


@torch.no_grad()
def logits_of(model, ids):
    return model(torch.tensor([ids])).logits[0].float().numpy()


@torch.no_grad()
def perplexity(model, ids, window, stride):
    """Every token after the first is predicted once, in the first window reaching it."""
    nll, count, scored, begin = 0.0, 0, 1, 0
    while True:
        end = min(begin + window, len(ids))
        logp = torch.log_softmax(model(torch.tensor([ids[begin:end]])).logits[0].double(), dim=-1)
        for t in range(max(scored, begin + 1), end):
            nll -= logp[t - begin - 1, ids[t]].item(); count += 1
        scored = end
        if end == len(ids): break
        begin += stride
    return math.exp(nll / count), count


@torch.no_grad()
def greedy(model, ids, n, eos=None):
    out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, eos_token_id=eos,
                         pad_token_id=0, attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    return out[0, len(ids):].tolist()


def tiny(args):
    os.makedirs(FIX, exist_ok=True)
    corpus = tokenizer_corpus()
    json.dump(corpus, open(os.path.join(FIX, "tokenizer-corpus.json"), "w"), ensure_ascii=False, indent=0)
    text = training_text()
    refs, meta = {}, {"models": {}, "tokenizers": {}}

    tokenizers_made = {
        "tiny-gqa": train_tokenizer(text, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), True, 384),
        "tiny-tied": train_tokenizer(text, pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), False, 384),
    }
    rope_llama3 = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    specs = {
        "tiny-gqa": dict(seed=1, tied=False, heads=4, kv_heads=2, rope={"rope_type": "default", "rope_theta": 10000.0}),
        "tiny-tied": dict(seed=2, tied=True, heads=4, kv_heads=4, rope=rope_llama3),
    }
    rng = np.random.default_rng(0)
    for name, spec in specs.items():
        tok = tokenizers_made[name]
        model = make_model(vocab=tok.get_vocab_size(), **spec)
        folder = os.path.join(FIX, name)
        shutil.rmtree(folder, ignore_errors=True)
        if name == "tiny-tied":
            # Stored as BF16: round the weights first so the float32 reference sees the same values.
            with torch.no_grad():
                for p in model.parameters(): p.copy_(p.to(torch.bfloat16).float())
            model.to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
            model.float()
        else:
            model.save_pretrained(folder, safe_serialization=True)
        tok.save(os.path.join(folder, "tokenizer.json"))
        for extra in ("generation_config.json",):
            if os.path.exists(os.path.join(folder, extra)): os.remove(os.path.join(folder, extra))
        tok_json = json.loads(tok.to_str())
        # The reference is transformers on the saved files, loaded afresh (a model cast
        # to bf16 and back would also carry a rounded RoPE inv_freq buffer).
        model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        variants = {name: model}
        if name == "tiny-gqa":
            dq = write_gguf(os.path.join(FIX, "tiny-gqa.gguf"), model, tok_json, "gpt2", True, lambda n, a: Q.F32)
            variants["tiny-gqa.gguf"] = with_weights(model, dq)
            def qtypes(n, a):
                if "embed" in n: return Q.Q8_0
                if "q_proj" in n or "k_proj" in n: return Q.Q4_0
                if "v_proj" in n or "o_proj" in n: return Q.Q4_1
                if "gate" in n: return Q.BF16
                if "up_proj" in n: return Q.F16
                if "down" in n: return Q.Q8_0
                if "lm_head" in n: return Q.Q4_1
                return Q.F32
            dq = write_gguf(os.path.join(FIX, "tiny-quant.gguf"), model, tok_json, "gpt2", True, qtypes)
            save_file(dq, os.path.join(FIX, "tiny-quant-dequant.safetensors"))
            variants["tiny-quant.gguf"] = with_weights(model, dq)
        else:
            dq = write_gguf(os.path.join(FIX, "tiny-tied.gguf"), model, tok_json, "llama-bpe", False, lambda n, a: Q.F16 if a.ndim == 2 else Q.F32)
            variants["tiny-tied.gguf"] = with_weights(model, dq)

        vocab = tok.get_vocab_size()
        prompts = [[5], rng.integers(0, vocab, 7).tolist(), rng.integers(0, vocab, 40).tolist(),
                   tok.encode("The model prunes the least relevant weights.").ids]
        long_ids = rng.integers(0, vocab, 70).tolist()
        for file_name, m in variants.items():
            entry = {"prompts": prompts, "greedy_prompt": prompts[3], "long": long_ids}
            for i, ids in enumerate(prompts):
                refs[f"{file_name}/logits/{i}"] = logits_of(m, ids)
            entry["greedy"] = greedy(m, prompts[3], 12, eos=2)
            entry["perplexity"], entry["perplexity_tokens"] = perplexity(m, long_ids, 16, 8)
            meta["models"][file_name] = entry
        meta["tokenizers"][name] = [tok.encode(line).ids for line in corpus]
        meta["tokenizers"][name + "/decoded"] = [tok.decode(tok.encode(line, add_special_tokens=False).ids, skip_special_tokens=False) for line in corpus]
    save_file(refs, os.path.join(FIX, "references.safetensors"))
    json.dump(meta, open(os.path.join(FIX, "references.json"), "w"), ensure_ascii=False)
    print("tiny fixtures written to", os.path.normpath(FIX))


# ---------------------------------------------------------------- SmolLM2
def smollm2(gguf_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, file = os.path.dirname(gguf_path), os.path.basename(gguf_path)
    hf_tok = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    # transformers' GGUF converter forgets SmolLM's digit splitting (llama.cpp pre "smollm"):
    # rebuild the tokenizer exactly as SmolLM2's tokenizer.json has it.
    tj = json.loads(hf_tok.backend_tokenizer.to_str())
    tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    tok = Tokenizer.from_str(json.dumps(tj))
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32).eval()
    prompts = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,",
               "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", "The mitochondria is the"]
    out = {"prompts": [], "corpus_ids": [tok.encode(l).ids for l in tokenizer_corpus()]}
    for p in prompts:
        ids = tok.encode(p).ids
        last = torch.tensor(logits_of(model, ids)[-1])
        top = torch.topk(last, 5)
        out["prompts"].append({"text": p, "ids": ids, "top5_ids": top.indices.tolist(),
                               "top5_logits": top.values.tolist(), "greedy": greedy(model, ids, 24, eos=2)})
    text = open(os.path.join(FIX, "apache-2.0.txt"), encoding="utf-8").read()
    ids = tok.encode(text).ids
    ppl, n = perplexity(model, ids, 256, 128)
    out["perplexity"] = {"file": "apache-2.0.txt", "window": 256, "stride": 128, "tokens": len(ids),
                         "predicted": n, "value": ppl}
    json.dump(out, open(os.path.join(FIX, "smollm2.json"), "w"), ensure_ascii=False)
    print("smollm2 references written; perplexity", ppl)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--smollm2", help="path of SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--skip-tiny", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(2)
    if not a.skip_tiny: tiny(a)
    if a.smollm2: smollm2(a.smollm2)

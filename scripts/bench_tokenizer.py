#!/usr/bin/env python3
"""Tokenizer throughput, sparc vs the Hugging Face `tokenizers` library, on the same text
and the same tokenizer in one run (see BENCHMARKS.md, "Tokenizer").

    python3 scripts/bench_tokenizer.py [--text FILE] [--gguf SmolLM2.gguf] [--sparc .build/release/sparc]

Builds SmolLM2's tokenizer.json from the GGUF's tokenizer.ggml.* metadata (gguf-py),
takes --text (default: ~1 MB of English prose from vim's documentation), then times one
`encode` of the whole text: first call (cold cache) and best of --repeats (warm), with
`tokenizers` and with `sparc bench --tokenizer` on both that tokenizer.json and the GGUF.
Needs: pip install tokenizers gguf
"""
import argparse, glob, json, os, subprocess, sys, tempfile, time

os.environ["RAYON_NUM_THREADS"] = "1"  # one thread for tokenizers' encode_batch, like sparc
os.environ["RAYON_RS_NUM_CPUS"] = "1"

import gguf
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))


def default_text(nbytes):
    parts, size = [], 0
    for path in sorted(glob.glob("/usr/share/vim/vim*/doc/*.txt")):
        with open(path, encoding="utf-8", errors="ignore") as f:
            s = f.read()
        parts.append(s)
        size += len(s.encode())
        if size >= nbytes:
            break
    if not parts:
        sys.exit("no default text (vim docs not found): pass --text FILE")
    return "".join(parts).encode()[:nbytes].decode("utf-8", errors="ignore")


def tokenizer_json_from_gguf(path):
    r = gguf.GGUFReader(path)
    def field(name):
        f = r.fields[name]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data] if f.types[0] == gguf.GGUFValueType.ARRAY and f.types[-1] == gguf.GGUFValueType.STRING \
            else ([int(f.parts[i][0]) for i in f.data] if f.types[0] == gguf.GGUFValueType.ARRAY else bytes(f.parts[-1]).decode())
    tokens, merges, types = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.merges"), field("tokenizer.ggml.token_type")
    pre = field("tokenizer.ggml.pre")
    assert pre == "smollm", f"this script knows SmolLM2's pre-tokenizer, not {pre}"
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": types[i] == 3} for i, t in enumerate(tokens) if types[i] in (3, 4)]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        "post_processor": None, "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": merges},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text")
    ap.add_argument("--bytes", type=int, default=1_000_000)
    ap.add_argument("--gguf", default=os.path.expanduser("~/.cache/sparc/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--sparc", default=os.path.join(HERE, "..", ".build", "release", "sparc"))
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="sparc-tokbench-")
    text = open(a.text, encoding="utf-8").read() if a.text else default_text(a.bytes)
    text_path = os.path.join(tmp, "text.txt")
    with open(text_path, "w", encoding="utf-8") as f:
        f.write(text)
    json_path = os.path.join(tmp, "tokenizer.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(tokenizer_json_from_gguf(a.gguf), f, ensure_ascii=False)
    nbytes = len(text.encode())

    tok = Tokenizer.from_file(json_path)
    t0 = time.perf_counter(); ids = tok.encode(text, add_special_tokens=False).ids; cold = time.perf_counter() - t0
    warm = float("inf")
    for _ in range(a.repeats):
        t0 = time.perf_counter(); tok.encode(text, add_special_tokens=False); warm = min(warm, time.perf_counter() - t0)

    # Line by line, one thread: encode_batch without its thread pool.
    lines = [l for l in text.split("\n") if l]
    line_bytes = sum(len(l.encode()) for l in lines)
    per_line = float("inf")
    for _ in range(a.repeats):
        t0 = time.perf_counter(); tok.encode_batch(lines, add_special_tokens=False); per_line = min(per_line, time.perf_counter() - t0)

    rows = [("tokenizers (Python, Rust core)", cold, warm, per_line, len(ids))]
    for label, extra in [("sparc, same tokenizer.json", ["--tokenizer-json", json_path]), ("sparc, SmolLM2 GGUF tokenizer", ["-m", a.gguf])]:
        out = subprocess.run([a.sparc, "bench", "--tokenizer", text_path, "--repeats", str(a.repeats), "--json"] + extra,
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append((label, r["cold_s"], r["warm_s"], r["lines_s"], r["tokens"]))

    print(f"{nbytes / 1e6:.2f} MB of text ({a.text or 'vim documentation'}), {len(lines)} lines, one thread")
    print(f"  {'':34s} {'whole text, cold':>18s} {'whole text, warm':>18s} {'line by line':>14s}")
    for label, c, w, l, n in rows:
        print(f"  {label:34s} {nbytes / c / 1e6:12.2f} MB/s {nbytes / w / 1e6:12.2f} MB/s {line_bytes / l / 1e6:8.2f} MB/s  {n} tokens")
    if len({n for *_, n in rows}) != 1:
        print("  WARNING: token counts differ")


if __name__ == "__main__":
    main()

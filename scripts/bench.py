#!/usr/bin/env python3
"""Forward and generation speed of sparc and PyTorch + transformers on SmolLM2-135M-Instruct,
side by side in one run, as ratios. PyTorch runs when this Python has torch and transformers.

    python3 scripts/bench.py [--threads 2] [--tokens 64,256] [--repeats 5]

sparc runs through `.build/release/sparc bench --json` (build it first: scripts/setup.sh),
with its default sgemm backend (oneDNN where installed) and, when that is not OpenBLAS,
again with SPARC_BLAS=openblas. PyTorch loads the same GGUF through transformers
(dequantised to float32).
"""
import argparse, json, os, subprocess, sys, time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SPARC = os.path.join(ROOT, ".build", "release", "sparc")


def model_path():
    base = os.environ.get("SPARC_MODELS") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sparc", "models")
    return os.path.join(base, "SmolLM2-135M-Instruct.Q4_1.gguf")


def run_sparc(args, env_extra):
    env = dict(os.environ, SPARC_THREADS=str(args.threads), **env_extra)
    out = subprocess.run([SPARC, "bench", "--json", "--tokens", args.tokens, "--repeats", str(args.repeats),
                          "--generate", str(args.generate)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def run_torch(args):
    try:
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError:
        return None
    torch.set_num_threads(args.threads)
    path = model_path()
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                 dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    rows = []
    with torch.inference_mode():
        for n in [int(t) for t in args.tokens.split(",")]:
            ids = torch.tensor([[(i * 7919 + 13) % vocab for i in range(n)]])
            model(ids)
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter(); model(ids); best = min(best, time.perf_counter() - t0)
            rows.append({"tokens": n, "seconds": best, "tokens_per_s": n / best})
        prompt = torch.tensor([[504, 2988, 282, 260, 4719, 6738]])
        t0 = time.perf_counter()
        out = model.generate(prompt, max_new_tokens=args.generate, min_new_tokens=args.generate, do_sample=False,
                             attention_mask=torch.ones_like(prompt), pad_token_id=0)
        gen = (out.shape[1] - prompt.shape[1]) / (time.perf_counter() - t0)
    return {"torch": torch.__version__, "forward": rows, "generate_tokens_per_s": gen}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", default="64,256")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--generate", type=int, default=64)
    args = ap.parse_args()
    if not os.path.exists(SPARC):
        sys.exit("build sparc first: bash scripts/setup.sh")
    runs = {"sparc": run_sparc(args, {})}
    if not runs["sparc"].get("blas_backend", "OpenBLAS").startswith("OpenBLAS"):
        runs["sparc, SPARC_BLAS=openblas"] = run_sparc(args, {"SPARC_BLAS": "openblas"})
    torch_result = run_torch(args)

    print(f"SmolLM2-135M-Instruct, float32, {args.threads} threads, best of {args.repeats}")
    header = "| engine | " + " | ".join(f"{n} tokens: ms | tokens/s | GFLOP/s" for n in args.tokens.split(",")) + " | generation tokens/s |"
    print(header)
    print("|" + "---|" * (2 + 3 * len(args.tokens.split(","))))
    for name, r in runs.items():
        cells = " | ".join(f"{x['seconds']*1000:.1f} | {x['tokens_per_s']:.0f} | {x['gflops']:.1f}" for x in r["forward"])
        engine = r.get("blas_backend", "OpenBLAS " + r["blas_core"]) + (f", {r['kernels']} kernels" if "kernels" in r else "")
        print(f"| {name} ({engine}) | {cells} | {r['generate_tokens_per_s']:.1f} |")
    if torch_result:
        flops = [x["gflops"] * x["seconds"] for x in runs["sparc"]["forward"]]
        cells = " | ".join(f"{x['seconds']*1000:.1f} | {x['tokens_per_s']:.0f} | {f / x['seconds']:.1f}"
                           for x, f in zip(torch_result["forward"], flops))
        print(f"| PyTorch {torch_result['torch']} + transformers | {cells} | {torch_result['generate_tokens_per_s']:.1f} |")
        print()
        for name, r in runs.items():
            ratios = ", ".join(f"{s['tokens']} tokens {t['seconds'] / s['seconds']:.2f}×"
                               for s, t in zip(r["forward"], torch_result["forward"]))
            gen = r["generate_tokens_per_s"] / torch_result["generate_tokens_per_s"]
            print(f"{name} speed relative to PyTorch (>1 = sparc faster): forward {ratios}; generation {gen:.2f}×")
    else:
        print("\n(PyTorch not available in this Python: install torch and transformers to compare)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Forward and generation speed of sparc and PyTorch + transformers on SmolLM2-135M-Instruct,
side by side in one run, as ratios. PyTorch runs when this Python has torch and transformers.

    python3 scripts/bench.py [--threads 2] [--tokens 64,256] [--repeats 5] [--rounds 3]

sparc runs through `.build/release/sparc bench --json` (build it first: scripts/setup.sh),
with its default sgemm backend (oneDNN where installed) and, when that is not OpenBLAS,
again with SPARC_BLAS=openblas. PyTorch loads the same GGUF through transformers
(dequantised to float32). The engines alternate in rounds, the order reversed every other
round, and each ratio is given as the median of the rounds' ratios with their range.
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


def torch_runner(args):
    """Loads the model once; returns a function that times one round, or None without torch."""
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

    def one_round():
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
    return one_round


def median(xs):
    xs = sorted(xs)
    return (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2]) / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", default="64,256")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--generate", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds that alternate the engines (this VM's speed drifts over minutes)")
    args = ap.parse_args()
    if not os.path.exists(SPARC):
        sys.exit("build sparc first: bash scripts/setup.sh")
    torch_round = torch_runner(args)
    # sparc's variants and PyTorch back to back in each round, the order reversed every other
    # round, so a drift of the machine's speed moves both sides of a round's ratio alike.
    variants = {"sparc": {}}
    rounds = []
    for k in range(args.rounds):
        result = {}
        steps = [(name, lambda env=env: run_sparc(args, env)) for name, env in variants.items()]
        if torch_round:
            steps.append(("PyTorch", torch_round))
        for name, step in (steps if k % 2 == 0 else steps[::-1]):
            result[name] = step()
        if k == 0 and not result["sparc"].get("blas_backend", "OpenBLAS").startswith("OpenBLAS"):
            variants["sparc, SPARC_BLAS=openblas"] = {"SPARC_BLAS": "openblas"}
            result["sparc, SPARC_BLAS=openblas"] = run_sparc(args, variants["sparc, SPARC_BLAS=openblas"])
        rounds.append(result)

    print(f"SmolLM2-135M-Instruct, float32, {args.threads} threads, best of {args.repeats} per round, "
          f"{args.rounds} rounds alternating the engines")
    header = "| round | engine | " + " | ".join(f"{n} tokens: ms | tokens/s | GFLOP/s" for n in args.tokens.split(",")) + " | generation tokens/s |"
    print(header)
    print("|" + "---|" * (3 + 3 * len(args.tokens.split(","))))
    for k, result in enumerate(rounds):
        flops = [x["gflops"] * x["seconds"] for x in result["sparc"]["forward"]]
        for name, r in result.items():
            if name == "PyTorch":
                cells = " | ".join(f"{x['seconds']*1000:.1f} | {x['tokens_per_s']:.0f} | {f / x['seconds']:.1f}"
                                   for x, f in zip(r["forward"], flops))
                label = f"PyTorch {r['torch']} + transformers"
            else:
                cells = " | ".join(f"{x['seconds']*1000:.1f} | {x['tokens_per_s']:.0f} | {x['gflops']:.1f}" for x in r["forward"])
                label = f"{name} ({r.get('blas_backend', 'OpenBLAS ' + r['blas_core'])}" + (f", {r['kernels']} kernels)" if "kernels" in r else ")")
            print(f"| {k + 1} | {label} | {cells} | {r['generate_tokens_per_s']:.1f} |")
    if not torch_round:
        print("\n(PyTorch not available in this Python: install torch and transformers to compare)")
        return
    print()
    for name in variants:
        parts = []
        for i, n in enumerate(args.tokens.split(",")):
            ratios = [r["PyTorch"]["forward"][i]["seconds"] / r[name]["forward"][i]["seconds"] for r in rounds if name in r]
            parts.append(f"{n} tokens {median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})")
        gen = [r[name]["generate_tokens_per_s"] / r["PyTorch"]["generate_tokens_per_s"] for r in rounds if name in r]
        print(f"{name} speed relative to PyTorch (>1 = sparc faster), median of the rounds (range): forward "
              + ", ".join(parts) + f"; generation {median(gen):.2f}× ({min(gen):.2f}–{max(gen):.2f})")


if __name__ == "__main__":
    main()

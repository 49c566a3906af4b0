#!/usr/bin/env python3
"""Forward and forward + AttnLRP (every weight relevance) on SmolLM2-135M-Instruct:
sparc and PyTorch + LXT side by side in one run, as ratios.

    /path/to/lxt-python scripts/bench_attribution.py [--threads 2] [--tokens 64,256] [--repeats 3] [--rounds 3]

Run it with a Python that has torch, transformers 4.x, gguf and lxt (see
scripts/make_attribution_references.py); sparc runs via `.build/release/sparc bench
--attribution --json`. PyTorch's LRP pass: LXT's efficient patches, inputs_embeds with
requires_grad, every parameter's gradient kept, logit.backward(logit), then W ⊙ W.grad
for every block linear weight. Peak memory is each process's maximum resident size.
The engines alternate in rounds (sparc then PyTorch, then the other way round): each
round's ratio compares passes timed within a minute of each other.
"""
import argparse, json, os, resource, subprocess, sys, time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SPARC = os.path.join(ROOT, ".build", "release", "sparc")
GGUF = os.path.join(os.environ.get("SPARC_MODELS") or os.path.expanduser("~/.cache/sparc/models"),
                    "SmolLM2-135M-Instruct.Q4_1.gguf")


def torch_lxt(args):
    """Loads the model once; returns a function that times one round (forward and LRP per length)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.models.llama import modeling_llama
    from lxt.efficient import monkey_patch
    torch.set_num_threads(args.threads)
    monkey_patch(modeling_llama, verbose=False)
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF),
                                                 torch_dtype=torch.float32, attn_implementation="eager").eval()
    linear = [m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "layers." in n]
    vocab = model.config.vocab_size

    def one_round():
        rows = []
        for n in [int(t) for t in args.tokens.split(",")]:
            ids = torch.tensor([[(i * 7919 + 13) % vocab for i in range(n)]])

            def forward():
                with torch.no_grad():
                    model(ids, use_cache=False)

            def lrp():
                model.zero_grad(set_to_none=True)
                emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
                logits = model(inputs_embeds=emb, use_cache=False).logits
                value = logits[0, -1].max()
                value.backward(value)
                return [m.weight * m.weight.grad for m in linear]

            def best(fn):
                fn()
                t = float("inf")
                for _ in range(args.repeats):
                    t0 = time.perf_counter(); fn(); t = min(t, time.perf_counter() - t0)
                return t

            rows.append({"tokens": n, "forward_s": best(forward), "lrp_s": best(lrp)})
        return {"torch": torch.__version__, "attribution": rows,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    return one_round


def run_sparc(args):
    env = dict(os.environ, SPARC_THREADS=str(args.threads))
    return json.loads(subprocess.run([SPARC, "bench", "--attribution", "--json", "--tokens", args.tokens,
                                      "--repeats", str(args.repeats)], env=env, capture_output=True, text=True,
                                     check=True).stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", default="64,256")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds that alternate the two engines (this VM's speed drifts over minutes)")
    args = ap.parse_args()
    try:
        torch_round = torch_lxt(args)
    except ImportError as e:
        torch_round = None
        print(f"(PyTorch + LXT not available: {e})")
    # Each round times both engines back to back, the order swapped every round, so a drift
    # of the machine's speed over minutes moves both sides of a round's ratio alike.
    rounds = []
    for k in range(args.rounds):
        if torch_round and k % 2 == 1:
            ref = torch_round(); sparc = run_sparc(args)
        else:
            sparc = run_sparc(args); ref = torch_round() if torch_round else None
        rounds.append((sparc, ref))

    sparc0 = rounds[0][0]
    print(f"SmolLM2-135M-Instruct, float32, {args.threads} threads, best of {args.repeats} per round, "
          f"{args.rounds} rounds alternating the engines; sparc: "
          f"{sparc0.get('blas_backend', 'OpenBLAS ' + sparc0['blas_core'])}, {sparc0.get('kernels', 'Swift')} element-wise kernels"
          + (f"; PyTorch {rounds[0][1]['torch']} + LXT" if rounds[0][1] else ""))
    print("| round | tokens | sparc forward ms | sparc forward+LRP ms | LRP/forward | sparc LRP GFLOP/s (of sgemm's: cached / streamed) |"
          + (" PyTorch forward ms | PyTorch+LXT LRP ms | forward speed vs PyTorch | sparc LRP / LXT LRP |" if torch_round else ""))
    print("|---|---|---|---|---|---|" + ("---|---|---|---|" if torch_round else ""))
    for k, (sparc, ref) in enumerate(rounds):
        for i, s in enumerate(sparc["attribution"]):
            line = (f"| {k + 1} | {s['tokens']} | {s['forward_s']*1000:.1f} | {s['lrp_s']*1000:.1f} | {s['ratio']:.2f}× | "
                    f"{s['lrp_gflops']:.1f} ({100 * s['fraction_of_sgemm']:.0f} % / "
                    f"{100 * s.get('fraction_of_streamed_sgemm', float('nan')):.0f} %) |")
            if ref:
                r = ref["attribution"][i]
                line += (f" {r['forward_s']*1000:.1f} | {r['lrp_s']*1000:.1f} | {r['forward_s'] / s['forward_s']:.2f}× |"
                         f" {s['lrp_s'] / r['lrp_s']:.2f}× |")
            print(line)
    if torch_round:
        print()
        for i, n in enumerate(s["tokens"] for s in sparc0["attribution"]):
            lrp = sorted(sp["attribution"][i]["lrp_s"] / rf["attribution"][i]["lrp_s"] for sp, rf in rounds)
            fwd = sorted(rf["attribution"][i]["forward_s"] / sp["attribution"][i]["forward_s"] for sp, rf in rounds)
            print(f"{n} tokens over {len(rounds)} rounds: sparc LRP / LXT LRP median {median(lrp):.2f}× "
                  f"({lrp[0]:.2f}–{lrp[-1]:.2f}); forward speed vs PyTorch median {median(fwd):.2f}× ({fwd[0]:.2f}–{fwd[-1]:.2f})")
    peak = max(sp["peak_rss_mib"] for sp, _ in rounds)
    print(f"\npeak memory: sparc {peak:.0f} MiB ({peak / sparc0['f32_weights_mib']:.2f}× "
          f"the {sparc0['f32_weights_mib']:.0f} MiB of f32 weights)"
          + (f"; PyTorch + LXT {rounds[-1][1]['peak_rss_mib']:.0f} MiB" if torch_round else ""))


def median(xs):
    xs = sorted(xs)
    return (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2]) / 2


if __name__ == "__main__":
    main()

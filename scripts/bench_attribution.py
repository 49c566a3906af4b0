#!/usr/bin/env python3
"""Forward and forward + AttnLRP (every weight relevance) on SmolLM2-135M-Instruct:
sparc and PyTorch + LXT side by side in one run, as ratios.

    /path/to/lxt-python scripts/bench_attribution.py [--threads 2] [--tokens 64,256] [--repeats 3]

Run it with a Python that has torch, transformers 4.x, gguf and lxt (see
scripts/make_attribution_references.py); sparc runs via `.build/release/sparc bench
--attribution --json`. PyTorch's LRP pass: LXT's efficient patches, inputs_embeds with
requires_grad, every parameter's gradient kept, logit.backward(logit), then W ⊙ W.grad
for every block linear weight. Peak memory is each process's maximum resident size.
"""
import argparse, json, os, resource, subprocess, sys, time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SPARC = os.path.join(ROOT, ".build", "release", "sparc")
GGUF = os.path.join(os.environ.get("SPARC_MODELS") or os.path.expanduser("~/.cache/sparc/models"),
                    "SmolLM2-135M-Instruct.Q4_1.gguf")


def torch_lxt(args):
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"torch": torch.__version__, "attribution": rows, "peak_rss_mib": peak}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", default="64,256")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    env = dict(os.environ, SPARC_THREADS=str(args.threads))
    sparc = json.loads(subprocess.run([SPARC, "bench", "--attribution", "--json", "--tokens", args.tokens,
                                       "--repeats", str(args.repeats)], env=env, capture_output=True, text=True,
                                      check=True).stdout)
    try:
        ref = torch_lxt(args)
    except ImportError as e:
        ref = None
        print(f"(PyTorch + LXT not available: {e})")
    print(f"SmolLM2-135M-Instruct, float32, {args.threads} threads, best of {args.repeats}; "
          f"sparc: {sparc.get('blas_backend', 'OpenBLAS ' + sparc['blas_core'])}, {sparc.get('kernels', 'Swift')} element-wise kernels")
    print("| tokens | sparc forward ms | sparc forward+LRP ms | LRP/forward | sparc LRP GFLOP/s (of sgemm's: cached / streamed) |"
          + (" PyTorch forward ms | PyTorch+LXT LRP ms | sparc LRP / LXT LRP |" if ref else ""))
    print("|---|---|---|---|---|" + ("---|---|---|" if ref else ""))
    for i, s in enumerate(sparc["attribution"]):
        line = (f"| {s['tokens']} | {s['forward_s']*1000:.1f} | {s['lrp_s']*1000:.1f} | {s['ratio']:.2f}× | "
                f"{s['lrp_gflops']:.1f} ({100 * s['fraction_of_sgemm']:.0f} % / "
                f"{100 * s.get('fraction_of_streamed_sgemm', float('nan')):.0f} %) |")
        if ref:
            r = ref["attribution"][i]
            line += f" {r['forward_s']*1000:.1f} | {r['lrp_s']*1000:.1f} | {s['lrp_s'] / r['lrp_s']:.2f}× |"
        print(line)
    print(f"\npeak memory: sparc {sparc['peak_rss_mib']:.0f} MiB ({sparc['peak_rss_mib'] / sparc['f32_weights_mib']:.2f}× "
          f"the {sparc['f32_weights_mib']:.0f} MiB of f32 weights)"
          + (f"; PyTorch + LXT {ref['peak_rss_mib']:.0f} MiB" if ref else ""))


if __name__ == "__main__":
    main()

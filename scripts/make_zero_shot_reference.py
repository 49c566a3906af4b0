#!/usr/bin/env python3
"""Reference log-likelihoods for sparc's zero-shot test, from PyTorch + transformers,
run by hand; the small output is committed as
Tests/SparcModelTests/Fixtures/zero-shot/reference.json.

    python3 scripts/make_zero_shot_reference.py [--lm-eval]

Needs torch, transformers (4.x or 5.x) and safetensors. For every made-up item of
Tests/SparcModelTests/Fixtures/zero-shot/items.jsonl and each choice, on the tiny-gqa
fixture model, it scores the continuation " " + choice after the context the way
lm-evaluation-harness's HFLM does for `multiple_choice` tasks:

  _encode_pair: trailing whitespace of the context moves to the continuation; the
      continuation's tokens are encode(context + continuation)[len(encode(context)):],
      both encoded without special tokens (add_special_tokens=False);
  _loglikelihood_tokens: input (context + continuation)[-(max_length + 1):][:-1], the
      sum of log-softmax at the continuation's positions;
  process_results: acc = argmax of the sums, acc_norm = argmax of sum / len(choice)
      (Python len: characters), first maximum on ties (numpy).

With --lm-eval it also runs lm_eval's own HFLM.loglikelihood (lm-eval 0.4.x installed)
on the same requests and checks the two agree.
"""
import argparse, json, os
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "Tests", "SparcModelTests", "Fixtures")
MODEL = os.path.join(FIXTURES, "tiny-gqa")
ITEMS = os.path.join(FIXTURES, "zero-shot", "items.jsonl")
OUT = os.path.join(FIXTURES, "zero-shot", "reference.json")


def load_tiny():
    cfg = json.load(open(os.path.join(MODEL, "config.json")))
    rope = cfg.pop("rope_parameters", None) or {}
    cfg["rope_theta"] = rope.get("rope_theta", 10000.0)
    for k in ("dtype", "transformers_version"):
        cfg.pop(k, None)
    config = LlamaConfig(**cfg)
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config).double().eval()  # float64: the reference, not a peer
    sd = {k: v.double() for k, v in load_file(os.path.join(MODEL, "model.safetensors")).items()}
    model.load_state_dict(sd, strict=True)
    return model, config.max_position_embeddings


def encode_pair(tok, context, continuation):
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok.encode(context + continuation, add_special_tokens=False)
    ctx = tok.encode(context, add_special_tokens=False)
    return ctx, whole[len(ctx):]


def loglikelihood(model, max_length, ctx, cont):
    inp = (ctx + cont)[-(max_length + 1):][:-1]
    with torch.no_grad():
        logits = model(torch.tensor([inp])).logits[0]
    logprobs = torch.log_softmax(logits, dim=-1)[len(inp) - len(cont):]
    return float(sum(logprobs[j, t] for j, t in enumerate(cont)))


def argmax(xs):
    return max(range(len(xs)), key=lambda i: (xs[i], -i))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lm-eval", action="store_true", help="also check against lm_eval's HFLM")
    args = ap.parse_args()
    model, max_length = load_tiny()
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(MODEL, "tokenizer.json"))
    items = [json.loads(line) for line in open(ITEMS, encoding="utf-8") if line.strip()]
    out = []
    for item in items:
        lls, counts = [], []
        for choice in item["choices"]:
            ctx, cont = encode_pair(tok, item["context"], " " + choice)
            lls.append(loglikelihood(model, max_length, ctx, cont))
            counts.append(len(cont))
        norm = [ll / len(c) for ll, c in zip(lls, item["choices"])]
        out.append({"task": item["task"], "loglikelihoods": lls, "continuation_tokens": counts,
                    "prediction": argmax(lls), "prediction_norm": argmax(norm)})
        print(item["task"], [round(x, 4) for x in lls], out[-1]["prediction"], out[-1]["prediction_norm"])

    if args.lm_eval:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
        lm = HFLM(pretrained=model.float(), tokenizer=tok, batch_size=1, max_length=max_length)
        requests = [Instance("loglikelihood", {}, (item["context"], " " + c), i)
                    for item in items for i, c in enumerate(item["choices"])]
        theirs = [ll for ll, _ in lm.loglikelihood(requests)]
        ours = [ll for o in out for ll in o["loglikelihoods"]]
        worst = max(abs(a - b) for a, b in zip(theirs, ours))
        print("lm_eval HFLM (float32) vs this script (float64): largest difference %.2e over %d requests" % (worst, len(ours)))
        assert worst < 1e-3, worst

    with open(OUT, "w") as f:
        json.dump({"model": "tiny-gqa", "items": out}, f, indent=1)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()

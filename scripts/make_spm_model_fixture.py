#!/usr/bin/env python3
"""A tiny SentencePiece `tokenizer.model` (BPE with byte fallback, as Llama 2's and
TinyLlama's) and its reference ids, for sparc's reader of `tokenizer.model` folders.
Run by hand (needs `pip install sentencepiece protobuf "transformers<5"`):

    python3 -m venv /tmp/spmvenv && /tmp/spmvenv/bin/pip install sentencepiece protobuf "transformers<5"
    /tmp/spmvenv/bin/python scripts/make_spm_model_fixture.py

Outputs, under Tests/SparcModelTests/Fixtures/tokenizers/spm-model/:
- `tokenizer.model`: trained by `sentencepiece` on Fixtures/apache-2.0.txt with Llama 2's
  trainer settings where they matter for encoding (BPE, byte_fallback, identity normalizer,
  dummy prefix, no whitespace removal, digits split, pad_id -1), vocabulary 384 so that it
  fits the tiny Llama fixtures' 384 embeddings, plus one user-defined symbol "<sep>".
- `tokenizer_config.json`, `special_tokens_map.json`: what transformers' slow
  `LlamaTokenizer.save_pretrained` writes next to the model (no tokenizer.json).
- `reference.json`: for each text, `sentencepiece`'s own ids (no BOS), transformers'
  `LlamaTokenizer` ids (slow, legacy=True, add_bos_token) and sentencepiece's decoding of its
  ids; plus the pieces of the model so a failing test can name the tokens.
Texts with control tokens ("<s>", "</s>") have no `sentencepiece` ids: sentencepiece does
not cut control tokens out of text, transformers and llama.cpp do.
"""
import json, os, shutil, tempfile
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "Tests", "SparcModelTests", "Fixtures")
OUT = os.path.join(FIXTURES, "tokenizers", "spm-model")

TEXTS = [
    "Hello world",
    "the License",
    "Licensed under the Apache License, Version 2.0",
    " leading space",
    "   three leading spaces",
    "multiple   inner    spaces",
    "trailing spaces   ",
    " ",
    "   ",
    "line one\nline two\n\nline four",
    "\ttab\tseparated",
    "digits 1234567890 and 2024-01-31",
    "café naïve résumé Ünïcödé",
    "日本語のテキスト",
    "汉字",
    "emoji 🦙🧑🏽‍💻 fallback",
    "a<sep>b <sep> c",
    "<sep>start",
    "",
    "x",
    "WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND",
    "\u200b zero width",
]
# Control tokens in the text: only transformers (and llama.cpp) cut them out.
CONTROL_TEXTS = [
    "<s>Hello</s>world",
    "Hello </s> world",
    "</s><sep>x",
]


def main():
    corpus = os.path.join(FIXTURES, "apache-2.0.txt")
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "spm")
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=prefix, model_type="bpe", vocab_size=384,
            byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
            add_dummy_prefix=True, split_digits=True, character_coverage=0.99995,
            allow_whitespace_only_pieces=True, user_defined_symbols=["<sep>"],
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2,
        )
        # The trainer records its input and output paths: drop them, so the file does not
        # depend on where the script ran.
        proto = pb.ModelProto()
        with open(prefix + ".model", "rb") as f:
            proto.ParseFromString(f.read())
        del proto.trainer_spec.input[:]
        proto.trainer_spec.model_prefix = "tokenizer"
        with open(os.path.join(OUT, "tokenizer.model"), "wb") as f:
            f.write(proto.SerializeToString())

    model_path = os.path.join(OUT, "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=model_path)

    from transformers import LlamaTokenizer
    with tempfile.TemporaryDirectory() as tmp:
        tok = LlamaTokenizer(vocab_file=model_path, legacy=True, add_bos_token=True, add_eos_token=False)
        tok.save_pretrained(tmp)
        for name in ["tokenizer_config.json", "special_tokens_map.json"]:
            shutil.copy(os.path.join(tmp, name), os.path.join(OUT, name))
        assert not os.path.exists(os.path.join(tmp, "tokenizer.json"))

    cases = []
    for text in TEXTS:
        ids = sp.encode(text)
        cases.append({"text": text, "sentencepiece": ids, "transformers": tok.encode(text),
                      "decoded": sp.decode(ids)})
    for text in CONTROL_TEXTS:
        cases.append({"text": text, "transformers": tok.encode(text)})
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    with open(os.path.join(OUT, "reference.json"), "w", encoding="utf-8") as f:
        json.dump({"vocab_size": sp.get_piece_size(), "bos_id": sp.bos_id(), "eos_id": sp.eos_id(),
                   "unk_id": sp.unk_id(), "pad_id": sp.pad_id(), "cases": cases, "pieces": pieces},
                  f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {sp.get_piece_size()} pieces, {os.path.getsize(model_path)} bytes")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Tokenizer reference fixtures for sparc's tokenizer tests, made with the Hugging Face
`tokenizers` library. Run by hand (see scripts/README.md); its small outputs are committed
under Tests/SparcModelTests/Fixtures/tokenizers/.

    python3 scripts/make_tokenizer_fixtures.py

Trains tiny BPE tokenizers (a few hundred tokens, on apache-2.0.txt and the corpus) in
several tokenizer.json configurations — byte-level GPT-2 style, Llama-2 style
SentencePiece BPE with byte fallback, Metaspace variants, Split/Whitespace/Punctuation/
Digits pre-tokenizers with normalizers, subword prefix/suffix — and GPT-2/OPT style
vocab.json + merges.txt folders, then records `tokenizers`' ids and decoded text for
every line of corpus.json (tricky strings: Unicode, combining marks, emoji, digits,
whitespace runs, CRLF, long words).
"""
import json, os, random
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, processors, trainers, normalizers, Regex, AddedToken

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "Tests", "SparcModelTests", "Fixtures")
OUT = os.path.join(FIX, "tokenizers")
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
QWEN2_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def corpus():
    base = json.load(open(os.path.join(FIX, "tokenizer-corpus.json")))
    fixed = base[:72]
    rng = random.Random(7)
    extra = [
        "e\u0301t\u00e9 cafe\u0301 \u1e9b\u0323 \u212b \u2126 \uff21\uff22\uff23 \u2460\u2461 \u00bd",
        "\u0915\u094d\u0937 \u0e01\u0e33 \u05e9\u05c1\u05b8 a\u0308\u0301\u0327",
        "ﬀ ﬁ ﬂ ﬃ ﬄ ǅ ǈ ǋ ΣΑΣ İstanbul ŉ",
        "🧑🏽‍💻 🏳️‍🌈 👩‍❤️‍💋‍👨 🇯🇵🇺🇸 #️⃣ 1️⃣ ©️",
        "\U0001F600\U0001F601" * 20,
        "\U0001D400\U0001D401 \U00020000\U0002A6D6 \U0010FFFD",
        "0123456789 9876543210 00000 1e10 -3.5e-7 0x1F 0b1010 ١٢٣٤ ۵۶۷ ߀߁",
        "a   b     c\t\t\td \n\n\n e \r\n\r\n f",
        "CRLF line\r\nnext line\r\n\r\nlast\r",
        "   leading and trailing   ",
        " ",
        "",
        "x" * 300,
        "supercalifragilisticexpialidocious" * 12,
        "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
        "a" + "\u0301" * 40,
        "word-with-hyphens and_under_scores and.dots...and,commas",
        "hello-world -leading trailing- --double-- a-b-c",
        "It's don't won't y'all 'tis o'clock rock'n'roll",
        "<s>hello</s> <unk> [MASK] [CLS]x[SEP] <sep> hello helloworld hello, hello.",
        " [MASK] x  [MASK]  y <sep>  z <sep>",
        "\u00a0\u2002\u2003\u2009\u202f\u205f\u3000 mixed spaces",
        "▁already▁has▁metaspace ▁▁ double",
        "<0x41> <0xFF> literal byte names",
        "tab\there\u000bvt\u000cff\u001cfs\u0085nel\u2028ls\u2029ps",
        "UPPER lower Title CamelCase ǅungla ΣΊΣΥΦΟΣ",
        "naïve coöperate Zürich São Paulo ŁÓDŹ ĳssel",
        "\u200b\u200c\u200d\u2060\ufeff invisible",
        "\ud7ff\ue000\uf8ff private use",
    ]
    rnd = [base[i] for i in rng.sample(range(72, len(base)), 30)]
    return fixed + extra + rnd


def train(tok, alphabet_limit=None, vocab=400, specials=(), extra_alphabet=(), **trainer_options):
    text = open(os.path.join(FIX, "apache-2.0.txt"), encoding="utf-8").read().splitlines()
    kwargs = dict(vocab_size=vocab, special_tokens=list(specials), show_progress=False,
                  initial_alphabet=list(extra_alphabet), **trainer_options)
    if alphabet_limit:
        kwargs["limit_alphabet"] = alphabet_limit
    tok.train_from_iterator(text + corpus(), trainers.BpeTrainer(**kwargs))
    return tok


def with_byte_tokens(tok):
    """Adds <0x00>…<0xFF> to the model vocabulary (SentencePiece byte fallback)."""
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    n = max(max(vocab.values()), max(t["id"] for t in j["added_tokens"])) + 1
    for b in range(256):
        name = "<0x%02X>" % b
        if name not in vocab:
            vocab[name] = n
            n += 1
    return Tokenizer.from_str(json.dumps(j))


def bytelevel_gpt2():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([])  # an empty Sequence
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    train(tok, vocab=1000, specials=["<|endoftext|>"], extra_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def llama2_spm():
    """Llama-2 / TinyLlama: Prepend ▁ + Replace ' '→▁, no pre-tokenizer, byte fallback."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    train(tok, alphabet_limit=70, vocab=500, specials=["<unk>", "<s>", "</s>"])
    tok = with_byte_tokens(tok)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tok


def metaspace_first():
    """Newer Llama/Mistral files: Metaspace pre-tokenizer (prepend first, no split), byte fallback."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    train(tok, alphabet_limit=70, vocab=500, specials=["<unk>", "<s>", "</s>"])
    tok = with_byte_tokens(tok)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tok


def metaspace_split():
    """Metaspace with split and prepend always; unknown characters without byte fallback, unfused."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    train(tok, alphabet_limit=60, vocab=400, specials=["<unk>", "<s>", "</s>"])
    return tok


def normalized_words():
    """NFD + strip accents (regex Replace) + Lowercase + Strip, Whitespace / Punctuation /
    Digits, continuing_subword_prefix, Roberta post-processor, added-token options."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Replace(Regex(r"\p{Mn}"), ""),
                                           normalizers.Lowercase(), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation("isolated"),
                                                 pre_tokenizers.Digits(individual_digits=False)])
    train(tok, alphabet_limit=50, vocab=400, specials=["[UNK]", "[CLS]", "[SEP]"], continuing_subword_prefix="##")
    tok.add_tokens([AddedToken("[MASK]", lstrip=True, special=True, normalized=False),
                    AddedToken("<sep>", rstrip=True, special=True, normalized=False),
                    AddedToken("hello", single_word=True, normalized=True)])
    tok.post_processor = processors.RobertaProcessing(("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]")))
    return tok


def split_behaviours():
    """Split with string and regex patterns and every behaviour, inverted too; NFKD,
    end_of_word_suffix with the BPEDecoder."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Strip(left=False, right=True)])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(" ", "merged_with_next"),
        pre_tokenizers.Split("-", "removed"),
        pre_tokenizers.Split(Regex(r"[.,;:!?]+"), "merged_with_previous"),
        pre_tokenizers.Split(Regex(r"\d"), "contiguous"),
        pre_tokenizers.Split(Regex(r"\p{L}+"), "isolated", invert=True),
        pre_tokenizers.WhitespaceSplit(),
    ])
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    train(tok, alphabet_limit=60, vocab=400, specials=["<unk>"], end_of_word_suffix="</w>")
    return tok


def qwen2_nfc():
    """Qwen2: NFC, the Qwen2 split regex then ByteLevel without regex, ignore_merges."""
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    train(tok, vocab=1000, specials=["<|endoftext|>"], extra_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def bytelevel_prefix_space():
    """ByteLevel with add_prefix_space and a generic regex Split before it; Lowercase; NFKC."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[\p{P}\p{S}]"), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    train(tok, vocab=800, specials=["<s>", "</s>"], extra_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> $B </s>",
                                                       special_tokens=[("<s>", 0), ("</s>", 1)])
    return tok


def pairs_with_spaces():
    """Merges in the [left, right] form with tokens that hold spaces (no pre-tokenizer, so
    spaces reach the model), unk_token for everything outside a-z and space."""
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [" "]
    vocab = {"<unk>": 0}
    for t in letters:
        vocab[t] = len(vocab)
    merges = []
    for a, b in [("e", " "), ("t", "h"), ("th", "e "), (" ", " "), ("s", " "), ("  ", " "), ("i", "n"), ("in", "g"), ("d", " "), ("the ", "d ")]:
        vocab.setdefault(a + b, len(vocab))
        merges.append([a, b])
    j = {"version": "1.0", "truncation": None, "padding": None,
         "added_tokens": [{"id": 0, "content": "<unk>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}],
         "normalizer": {"type": "Lowercase"}, "pre_tokenizer": None, "post_processor": None, "decoder": None,
         "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None, "end_of_word_suffix": None,
                   "fuse_unk": True, "byte_fallback": False, "ignore_merges": False, "vocab": vocab, "merges": merges}}
    return Tokenizer.from_str(json.dumps(j))


def gpt2_folder(name, opt):
    """vocab.json + merges.txt as GPT-2 / OPT checkpoints ship them, and the tokenizer
    transformers builds from them (ByteLevel, <|endoftext|> or OPT's specials, OPT's BOS)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>"] if opt else ["<|endoftext|>"]
    train(tok, vocab=800, specials=specials, extra_alphabet=pre_tokenizers.ByteLevel.alphabet())
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    tok.model.save(folder)
    if opt:
        json.dump({"add_bos_token": True, "bos_token": {"content": "</s>"}, "eos_token": {"content": "</s>"},
                   "unk_token": {"content": "</s>"}, "pad_token": {"content": "<pad>"}, "add_prefix_space": False},
                  open(os.path.join(folder, "tokenizer_config.json"), "w"), indent=1)
    # The reference: read back from the two files, as transformers' GPT2TokenizerFast does.
    ref = Tokenizer(models.BPE.from_file(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")))
    ref.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    ref.decoder = decoders.ByteLevel()
    # transformers makes added tokens of the special tokens the config names only.
    ref.add_special_tokens(["</s>", "<pad>"] if opt else specials)
    if opt:
        ref.post_processor = processors.TemplateProcessing(single="</s> $A", special_tokens=[("</s>", ref.token_to_id("</s>"))])
    return ref


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = corpus()
    json.dump(lines, open(os.path.join(OUT, "corpus.json"), "w", encoding="utf-8"), ensure_ascii=False, indent=0)
    configs = {
        "bytelevel-gpt2": bytelevel_gpt2(), "llama2-spm": llama2_spm(), "metaspace-first": metaspace_first(),
        "metaspace-split": metaspace_split(), "normalized-words": normalized_words(), "split-behaviours": split_behaviours(),
        "qwen2-nfc": qwen2_nfc(), "bytelevel-prefix-space": bytelevel_prefix_space(), "pairs-with-spaces": pairs_with_spaces(),
    }
    refs = {}
    for name, tok in configs.items():
        tok.save(os.path.join(OUT, name + ".json"), pretty=False)
        tok = Tokenizer.from_file(os.path.join(OUT, name + ".json"))
        refs[name] = reference(tok, lines)
    for name, opt in [("gpt2-folder", False), ("opt-folder", True)]:
        refs[name] = reference(gpt2_folder(name, opt), lines)
    json.dump(refs, open(os.path.join(OUT, "references.json"), "w", encoding="utf-8"), ensure_ascii=False, separators=(",", ":"))


def reference(tok, lines):
    ids = [tok.encode(l).ids for l in lines]
    plain = [tok.encode(l, add_special_tokens=False).ids for l in lines]
    return {
        "ids": ids,
        "decoded": [tok.decode(p, skip_special_tokens=False) for p in plain],
        "decoded_skip": [tok.decode(i, skip_special_tokens=True) for i in ids],
    }


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Fetches the byte-level BPE vocabularies that TokenizerLlamaCppTests checks against
llama.cpp's test vectors: ggml-vocab-{gpt-2,qwen2,llama-bpe}.gguf from
vendor/llama.cpp/models/ in the llama-cpp-python 0.3.36 sdist on PyPI (the release the
committed .inp/.out vectors come from; MIT, the ggml authors). Test data only, so it lives
beside sparc's caches, not among `sparc install`'s entries.

Usage: python3 scripts/fetch_test_vocabs.py [DEST]
DEST defaults to $XDG_CACHE_HOME/sparc/test-vocabs (~/.cache/sparc/test-vocabs);
scripts/test.sh sets SPARC_LLAMA_VOCABS to it when the files are there. Standard library
only; every file is checked against its SHA-256 before it is put in place.
"""
import hashlib
import os
import sys
import tarfile
import tempfile
import urllib.request

SDIST = "llama_cpp_python-0.3.36.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SDIST_URL = ("https://files.pythonhosted.org/packages/ec/e9/"
             "e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/" + SDIST)
MEMBER_DIR = "llama_cpp_python-0.3.36/vendor/llama.cpp/models/"
VOCABS = {
    "ggml-vocab-gpt-2.gguf": "cedc56ca6e2e89f63e781696d1fd76b4b1d49e6720dee86463e915f6e90016ac",
    "ggml-vocab-qwen2.gguf": "44c2f46b715f585c6ab513970e8a006bfa5badd6108560054921cf598d154d8c",
    "ggml-vocab-llama-bpe.gguf": "97272e430d53bc7688f52d5e0ad8ea8f163ede9f1bbd1694feaa504797d5d96e",
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_dest():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "sparc", "test-vocabs")


def main():
    try:
        fetch(sys.argv[1] if len(sys.argv) > 1 else default_dest())
    except (OSError, KeyError, tarfile.TarError) as error:  # URLError is an OSError
        sys.exit("fetch_test_vocabs: %s" % error)


def fetch(dest):
    if all(os.path.isfile(os.path.join(dest, n)) and sha256(os.path.join(dest, n)) == d for n, d in VOCABS.items()):
        print("test vocabularies already in %s" % dest)
        return
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        archive = os.path.join(tmp, SDIST)
        print("downloading %s (77 MB) for llama.cpp's tokenizer vocabularies…" % SDIST)
        urllib.request.urlretrieve(SDIST_URL, archive)
        if sha256(archive) != SDIST_SHA256:
            sys.exit("fetch_test_vocabs: %s does not have the expected SHA-256" % SDIST)
        with tarfile.open(archive) as tar:
            for name, digest in VOCABS.items():
                member = tar.getmember(MEMBER_DIR + name)
                if not member.isfile():
                    sys.exit("fetch_test_vocabs: %s is not a file in %s" % (member.name, SDIST))
                part = os.path.join(tmp, name)
                with tar.extractfile(member) as src, open(part, "wb") as out:
                    out.write(src.read())
                if sha256(part) != digest:
                    sys.exit("fetch_test_vocabs: %s does not have the expected SHA-256" % name)
                os.replace(part, os.path.join(dest, name))  # atomic: a file is whole or absent
    print("installed %s in %s" % (", ".join(VOCABS), dest))


if __name__ == "__main__":
    main()

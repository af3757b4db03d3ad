#!/bin/sh
# A short training run of trm-train on `--device cuda:0` against the same
# run on the CPU backend: the per-step training losses must agree within
# 1e-4 relative (GEMMs in fp32 on both). Run it on the CPU stand-in through
# `make test-cuda-standin`, or on a GPU machine after `make cuda`:
#
#   cuda/standin/train-check.sh
#
# The model is the 4x4 Sudoku at a small width (hidden 64, 2x3 cycles, at
# most 4 supervision steps) so that 20 steps take seconds on the stand-in;
# it keeps attention, rope, the puzzle embedding and ACT.
set -eu
cd "$(dirname "$0")/../.."
GO=${GO:-go}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

$GO build -o "$tmp/trm-cpu" ./cmd/trm-train
$GO build -tags cuda -o "$tmp/trm-cuda" ./cmd/trm-train
"$tmp/trm-cpu" data sudoku --size 4 --generate 200 --generate-test 40 --seed 1 --quiet --out "$tmp/sudoku4" >/dev/null

args="lr=1e-4 puzzle_emb_lr=1e-4 global_batch_size=8 max_steps=20 data_paths=[$tmp/sudoku4]
  arch.hidden_size=64 arch.num_heads=4 arch.puzzle_emb_ndim=64 arch.H_cycles=2 arch.L_cycles=3 arch.halt_max_steps=4"
start=$(date +%s)
# shellcheck disable=SC2086 # args are separate overrides
"$tmp/trm-cpu" train --device cpu --quiet --log "$tmp/cpu.jsonl" $args >"$tmp/cpu.out" 2>&1 || { cat "$tmp/cpu.out"; exit 1; }
mid=$(date +%s)
# shellcheck disable=SC2086
TRM_CUDA_GEMM=fp32 "$tmp/trm-cuda" train --device cuda:0 --quiet --log "$tmp/cuda.jsonl" $args >"$tmp/cuda.out" 2>&1 || { cat "$tmp/cuda.out"; exit 1; }
end=$(date +%s)
grep -m1 -o '"backend":"[^"]*"' "$tmp/cuda.jsonl" || true

# step and train/loss of every step line of a JSONL log.
losses() { sed -n 's/.*"step":\([0-9]*\),.*"train\/loss":\([-0-9.eE+]*\).*/\1 \2/p' "$1"; }
losses "$tmp/cpu.jsonl" >"$tmp/cpu.loss"
losses "$tmp/cuda.jsonl" >"$tmp/cuda.loss"
awk -v ncpu="$(wc -l <"$tmp/cpu.loss")" -v ncuda="$(wc -l <"$tmp/cuda.loss")" '
NR == FNR { cpu[$1] = $2; next }
($1 in cpu) {
	$3 = $2; $2 = cpu[$1]
	d = $3 - $2; if (d < 0) d = -d
	r = d / ($2 < 0 ? -$2 : $2)
	if (r > worst) worst = r
	bad += (r > 1e-4)
	printf "step %3d  cpu %.8f  cuda %.8f  rel %.2e%s\n", $1, $2, $3, r, (r > 1e-4 ? "  <- over 1e-4" : "")
	n++
}
END {
	if (n != 20 || ncpu != 20 || ncuda != 20) { printf "train-check: %d steps compared (cpu log %d, cuda log %d), want 20\n", n, ncpu, ncuda; exit 1 }
	if (bad) { printf "train-check: %d of %d steps differ by more than 1e-4 relative\n", bad, n; exit 1 }
	printf "train-check: 20 steps, worst relative loss difference %.2e (limit 1e-4)\n", worst
}' "$tmp/cpu.loss" "$tmp/cuda.loss"
echo "train-check: cpu run $((mid - start)) s, cuda run $((end - mid)) s"

#!/usr/bin/env bash
# apps/memnet/run_continual.sh — experiment 2's table: five fortunes topics, one per phase
# (apps/memnet/configs/continual.yaml), for MemNet, an LSTM and a full-context Transformer at
# matched parameter counts (~158K), for the seeds given (default 0), two runs at a time.
#   bash apps/memnet/run_continual.sh [OUT_DIR] [SEEDS...]      STEPS=N: steps per phase (200)
# Writes OUT_DIR/<model>_s<seed>/ (loss_matrix.csv, text_phases.json, forgetting_curves.png) and
# OUT_DIR/table.md from their final: lines.
set -euo pipefail
out=${1:-runs/memnet_continual}
shift || true
seeds=${*:-0}
steps=${STEPS:-200}
bin=build/apps/memnet
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE ENGRAM_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
variants=(
  "memnet|model.kind=memnet"
  "windowed|model.kind=memnet model.memnet_memory=false model.d_model=72"
  "lstm|model.kind=lstm model.d_model=84"
  "transformer|model.kind=transformer model.d_model=68 model.max_len=128"
)
jobs=()
for seed in $seeds; do
  for v in "${variants[@]}"; do
    name=${v%%|*}
    sets=""
    for s in ${v#*|}; do sets="$sets --set $s"; done
    jobs+=("$bin continual --seed $seed $sets --set phases.steps=$steps --out $out/${name}_s$seed")
  done
done
printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} bash -c '{} > "$(echo "{}" | sed -E "s/.*--out ([^ ]+).*/\1/").log" 2>&1 || echo "FAILED: {}"'
{
  echo "| model | seed | final line |"
  echo "| --- | --- | --- |"
  for v in "${variants[@]}"; do
    name=${v%%|*}
    for seed in $seeds; do
      echo "| $name | $seed | $(grep '^final:' $out/${name}_s$seed.log | sed 's/^final: //') |"
    done
  done
} > "$out/table.md"
cat "$out/table.md"

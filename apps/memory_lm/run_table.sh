#!/usr/bin/env bash
# apps/memory_lm/run_table.sh — the README's tables: every memory variant at ~250K parameters,
# trained on fortunes (validation bpc) and on the key-value recall stream (accuracy vs distance),
# for the seeds given (default 0 1), two runs at a time, one thread each.
#   bash apps/memory_lm/run_table.sh [OUT_DIR] [SEEDS...]
# Writes OUT_DIR/<variant>_s<seed>/ and OUT_DIR/<variant>_probe_s<seed>/ run directories, and
# OUT_DIR/table.md summarising their final:/final_probe: lines.
set -euo pipefail
out=${1:-runs/memory_lm_table}
shift || true
seeds=${*:-0 1}
steps=${STEPS:-250}              # fortunes runs
probe_steps=${PROBE_STEPS:-800}  # key-value recall runs (a denser stream than the default)
bin=build/apps/memory_lm
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE ENGRAM_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# name | --set options (d_model chosen so every variant has about 250K parameters)
variants=(
  "local_attention|model.kind=local_attention model.d_model=100"
  "cmr_parallel|model.kind=cmr_parallel model.d_model=80"
  "cmr_series|model.kind=cmr_series model.d_model=84"
  "cmr_parallel_shared|model.kind=cmr_parallel model.memory_placement=shared model.d_model=88"
  "titans_mag|model.kind=titans_mag model.d_model=80"
  "hybrid|model.kind=hybrid model.d_model=72"
)
jobs=()
for seed in $seeds; do
  for v in "${variants[@]}"; do
    name=${v%%|*}
    sets=""
    for s in ${v#*|}; do sets="$sets --set $s"; done
    jobs+=("$bin --steps $steps --seed $seed $sets --set sample.length=0 --out $out/${name}_s$seed")
    jobs+=("$bin probe --probe-trials 200 --kv-d-max 256 --kv-bind-every 8 --steps $probe_steps --seed $seed $sets --set sample.length=0 --out $out/${name}_probe_s$seed")
  done
done
printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} bash -c '{} > "$(echo "{}" | sed -E "s/.*--out ([^ ]+).*/\1/").log" 2>&1 || echo "FAILED: {}"'
{
  echo "| variant | seed | parameters | val_bpc | tokens/s | kv acc d=16 | 32 | 64 | 128 | 256 | 512 |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for v in "${variants[@]}"; do
    name=${v%%|*}
    for seed in $seeds; do
      lm=$out/${name}_s$seed.log probe=$out/${name}_probe_s$seed.log
      params=$(grep -o '[0-9]* parameters' "$lm" | head -1 | cut -d' ' -f1)
      bpc=$(grep '^final:' "$lm" | grep -o 'val_bpc=[0-9.]*' | cut -d= -f2)
      tps=$(grep '^final:' "$lm" | grep -o 'tokens_per_s=[0-9]*' | cut -d= -f2)
      accs=$(grep '^final_probe:' "$probe" | grep -o 'acc_d[0-9]*=[0-9.]*' | cut -d= -f2 | tr '\n' '|' | sed 's/|$//; s/|/ | /g')
      echo "| $name | $seed | $params | $bpc | $tps | $accs |"
    done
  done
} > "$out/table.md"
cat "$out/table.md"

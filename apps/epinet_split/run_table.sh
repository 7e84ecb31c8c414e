#!/usr/bin/env bash
# apps/epinet_split/run_table.sh — the README's table: every method in class-IL and task-IL over
# seeds 1-3, two runs at a time (one thread each), then one line per run and the mean
# and spread per method and scenario.   usage: bash apps/epinet_split/run_table.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/epinet_table}
mkdir -p "$out"
: > "$out/finals.txt"
export OMP_WAIT_POLICY=PASSIVE ENGRAM_NUM_THREADS=1
jobs=()
for m in ${METHODS:-finetune replay epinet-recall epinet joint}; do
  for s in 1 2 3; do jobs+=("$m class-il $s" "$m task-il $s"); done
done
run() {
  read -r m sc s <<< "$1"
  build/apps/epinet_split --method "$m" --set run.scenario="$sc" --seed "$s" \
    --out "$out/$m-$sc-$s" > "$out/$m-$sc-$s.log" 2>&1
  tail -1 "$out/$m-$sc-$s.log"
}
export -f run
export out
printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} bash -c 'run "{}"' | sort >> "$out/finals.txt"
cat "$out/finals.txt"
awk '{for (i = 1; i <= NF; ++i) { split($i, kv, "="); v[kv[1]] = kv[2] }
      k = v["method"] " " v["scenario"]; n[k]++; a[k] += v["avg_acc"]; a2[k] += v["avg_acc"]^2;
      f[k] += v["forgetting"]; b[k] += v["bwt"]}
     END {for (k in n) { m = a[k] / n[k]; var = n[k] > 1 ? (a2[k] - n[k] * m * m) / (n[k] - 1) : 0; sd = var > 0 ? sqrt(var) : 0;
          printf "%-28s runs=%d avg_acc=%.3f sd=%.3f bwt=%.3f forgetting=%.3f\n", k, n[k], m, sd,
                 b[k] / n[k], f[k] / n[k] }}' "$out/finals.txt" | sort

#!/usr/bin/env bash
# apps/crsd_tiny/run_leaderboard.sh — the leaderboard of apps/crsd_tiny/README.md: every model
# (CRSD, LSTM, Transformer and the seven state-space families) trained by crsd_tiny with its
# config in apps/crsd_tiny/configs/, for the seeds given (default 0 1), two runs at a time, one
# thread each, validating every 25 steps so the learning curves can be compared at equal time.
#   bash apps/crsd_tiny/run_leaderboard.sh [OUT_DIR] [SEEDS...]
#   MODELS="mamba s4d": only these; PARALLEL=N: runs at a time (2); TABLE_ONLY=1: only rebuild
#   the table and the plot
# Writes OUT_DIR/<model>_s<seed>/ (metrics.csv, ...), OUT_DIR/leaderboard.md and
# OUT_DIR/learning_curves.png (val bpc against step and against training seconds, seed means).
set -euo pipefail
out=${1:-runs/leaderboard}
shift || true
seeds=${*:-0 1}
models=${MODELS:-crsd lstm transformer s4d s4 s5 mamba linoss retnet samba}
bin=${BIN:-build/apps/crsd_tiny}
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE ENGRAM_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

config_of() { [ "$1" = crsd ] && echo apps/crsd_tiny/configs/tiny.yaml || echo "apps/crsd_tiny/configs/$1.yaml"; }

if [ -z "${TABLE_ONLY:-}" ]; then
  jobs=()
  for seed in $seeds; do
    for m in $models; do
      jobs+=("$bin --config $(config_of "$m") --seed $seed --set train.eval_every=25 --out $out/${m}_s$seed")
    done
  done
  printf '%s\n' "${jobs[@]}" | xargs -P "${PARALLEL:-2}" -I{} bash -c \
    '{} > "$(echo "{}" | sed -E "s/.*--out ([^ ]+).*/\1/").log" 2>&1 || echo "FAILED: {}"'
fi

# One line per run: model seed params final_val_bpc tokens_per_s train_seconds
runs=$out/runs.tsv
: > "$runs"
for m in $models; do
  for seed in $seeds; do
    log=$out/${m}_s$seed.log csv=$out/${m}_s$seed/metrics.csv
    [ -f "$csv" ] && grep -q '^final:' "$log" || { echo "missing or unfinished: $log" >&2; continue; }
    params=$(head -1 "$log" | sed -E 's/.* ([0-9]+) parameters.*/\1/')
    awk -F, -v m="$m" -v s="$seed" -v p="$params" '
      $2 == "train" { last_sec = $10 }
      $2 == "val" { periodic_sec = final_sec; final_sec = $10; bpc = $4 }
      END { printf "%s\t%s\t%s\t%s\t%s\t%s\n", m, s, p, bpc, last_sec, periodic_sec }' "$csv" >> "$runs"
  done
done

# tau = the shortest mean training time at which any model made its last periodic validation:
# every model is also read at that time (linear interpolation between its periodic validations,
# all on the same first 16 val batches), the "same training time" column. The final row of
# metrics.csv (the whole val split) is left out of that reading.
tau=$(awk -F'\t' '{ t[$1] += $6; n[$1]++ } END { m = 1e30; for (k in t) if (t[k] / n[k] < m) m = t[k] / n[k]; print m }' "$runs")
bpc_at() {  # csv seconds -> val bpc at that training time (periodic validations only)
  awk -F, -v tau="$2" '$2 == "val" { rows++; sec[rows] = $10; b[rows] = $4 }
    END { for (i = 1; i < rows; i++) if (sec[i] >= tau) {
            v = i == 1 ? b[1] : b[i - 1] + (b[i] - b[i - 1]) * (tau - sec[i - 1]) / (sec[i] - sec[i - 1]); break }
          if (i >= rows) v = b[rows - 1]
          printf "%.3f", v }' "$1"
}
{
  echo "| model | parameters | val bpc @ 500 steps (seeds) | mean | val bpc @ ${tau%.*} s (seeds) | mean | tokens/s | training s | command |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for m in $models; do
    lines=$(awk -F'\t' -v m="$m" '$1 == m' "$runs")
    [ -n "$lines" ] || continue
    at=""
    for seed in $seeds; do [ -f "$out/${m}_s$seed/metrics.csv" ] && at="$at $(bpc_at "$out/${m}_s$seed/metrics.csv" "$tau")"; done
    echo "$lines" | awk -F'\t' -v at="$at" -v cfg="$(config_of "$m")" -v tok=$((16 * 128 * 500)) '
      { p = $3; b[NR] = $4; sb += $4; t += $5; n++ }
      END {
        split(at, a, " "); sa = 0; la = ""; for (i = 1; i <= n; i++) { sa += a[i]; la = la (i > 1 ? " / " : "") a[i] }
        lb = ""; for (i = 1; i <= n; i++) lb = lb (i > 1 ? " / " : "") sprintf("%.3f", b[i])
        printf "| %s | %d | %s | %.3f | %s | %.3f | %d | %.0f | `build/apps/crsd_tiny --config %s --seed S --set train.eval_every=25` |\n",
          $1, p, lb, sb / n, la, sa / n, tok / (t / n), t / n, cfg }'
  done
} > "$out/leaderboard.md"
cat "$out/leaderboard.md"

# Learning curves: val bpc of each model (mean over seeds) against step and against seconds.
if command -v gnuplot > /dev/null; then
  plot_step="" plot_sec="" i=0
  colors=(black "#e41a1c" "#377eb8" "#4daf4a" "#984ea3" "#ff7f00" "#a65628" "#f781bf" "#999999" "#17becf" "#bcbd22" "#1f3b99")
  for m in $models; do
    files=() ; for seed in $seeds; do [ -f "$out/${m}_s$seed/metrics.csv" ] && files+=("$out/${m}_s$seed/metrics.csv"); done
    [ ${#files[@]} -gt 0 ] || continue
    # the periodic validations only (16 batches each): the last row is the whole val split
    awk -F, 'FNR == 1 { last = 0 } $2 == "val" { if (last) { s[ls] += lb; t[ls] += lt; n[ls]++ } ls = $1; lb = $4; lt = $10; last = 1 }
      END { for (k in s) print k, s[k] / n[k], t[k] / n[k] }' "${files[@]}" | sort -n > "$out/curve_$m.dat"
    style="with lines lw 2 lc rgb \"${colors[$((i % ${#colors[@]}))]}\" dt $((i / 6 + 1)) title \"$m\""
    plot_step="$plot_step \"$out/curve_$m.dat\" using 1:2 $style,"
    plot_sec="$plot_sec \"$out/curve_$m.dat\" using 3:2 $style,"
    i=$((i + 1))
  done
  gnuplot <<GP
set terminal pngcairo size 1400,560 font ",11" noenhanced
set output "$out/learning_curves.png"
set multiplot layout 1,2 title "crsd_tiny leaderboard: val bpc (mean over seeds $seeds), fortunes, 16 x 128 bytes per step"
set grid; set key top right; set yrange [2.4:4.5]
set xlabel "step"; set ylabel "val bpc"
plot ${plot_step%,}
set xlabel "training seconds (one thread, log scale)"; set logscale x
plot ${plot_sec%,}
unset multiplot
GP
  echo "plot: $out/learning_curves.png"
fi

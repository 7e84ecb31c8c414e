#!/usr/bin/env bash
# apps/memnet/run_recall.sh — experiment 1's table: key-value recall accuracy vs distance for
# MemNet, the windowed Transformer (the same controller without memory), an LSTM and a
# full-context Transformer at matched parameter counts (~158K), and MemNet's ablations; the seeds
# given (default 0 1), two runs at a time, one thread each.
#   bash apps/memnet/run_recall.sh [OUT_DIR] [SEEDS...]
#   ABLATIONS=0 skips the ablations; STEPS=N changes the budget (600 steps); TABLE_ONLY=1 only
#   rebuilds table.md and recall.png from existing runs
# Writes OUT_DIR/<variant>_s<seed>/ run directories and logs, OUT_DIR/table.md, and
# OUT_DIR/recall.png (mean accuracy over seeds vs distance, one line per model; gnuplot).
set -euo pipefail
out=${1:-runs/memnet_recall}
shift || true
seeds=${*:-0 1}
steps=${STEPS:-600}
bin=build/apps/memnet
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE ENGRAM_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
probe="probe --probe-trials 200 --probe-distances 8,16,32,64,128 --kv-d-max 128 --kv-bind-every 8"
# name | --set options (window W = 16, two blocks: receptive field 2W = 32 tokens)
variants=(
  "memnet|model.kind=memnet"
  "windowed|model.kind=memnet model.memnet_memory=false model.d_model=72"
  "lstm|model.kind=lstm model.d_model=84"
  "transformer|model.kind=transformer model.d_model=68 model.max_len=128"
)
if [ "${ABLATIONS:-1}" = 1 ]; then
  variants+=(
    "no_graph|model.kind=memnet model.memnet_graph=false"
    "no_dreaming|model.kind=memnet model.memnet_dream_every=0"
    "single_policy|model.kind=memnet model.memnet_policy=top_k"
    "no_hallucination|model.kind=memnet model.memnet_hallucination=0"
  )
fi
jobs=()
for seed in $seeds; do
  for v in "${variants[@]}"; do
    name=${v%%|*}
    case $name in no_*|single_*) [ "$seed" = "${seeds%% *}" ] || continue ;; esac  # ablations: first seed
    sets=""
    for s in ${v#*|}; do sets="$sets --set $s"; done
    jobs+=("$bin $probe --steps $steps --seed $seed $sets --set sample.length=0 --out $out/${name}_s$seed")
  done
done
[ "${TABLE_ONLY:-0}" = 1 ] || printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} bash -c '{} > "$(echo "{}" | sed -E "s/.*--out ([^ ]+).*/\1/").log" 2>&1 || echo "FAILED: {}"'
{
  echo "| variant | seed | parameters | d = 8 | 16 | 32 | 64 | 128 | read entropy | slot reuse | policy top-k / uniform / random |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for v in "${variants[@]}"; do
    name=${v%%|*}
    for seed in $seeds; do
      log=$out/${name}_s$seed.log
      [ -f "$log" ] || continue
      params=$(grep -o '[0-9]* parameters' "$log" | head -1 | cut -d' ' -f1)
      line=$(grep '^final_probe:' "$log" || echo "")
      accs=$(echo "$line" | grep -o 'acc_d[0-9]*=[0-9.]*' | cut -d= -f2 | tr '\n' '|' | sed 's/|$//; s/|/ | /g')
      get() { echo "$line" | grep -o "$1=[0-9.]*" | cut -d= -f2 || true; }
      pol="$(get policy.top_k) / $(get policy.uniform) / $(get policy.random)"
      [ "$pol" = " /  / " ] && pol="-"
      echo "| $name | $seed | $params | $accs | $(get read_entropy) | $(get slot_reuse) | $pol |"
    done
  done
} > "$out/table.md"
cat "$out/table.md"
# the figure: mean over seeds of each main model's accuracy at each distance
dat=$out/recall_mean.dat
{
  echo "# d memnet windowed lstm transformer"
  for d in 8 16 32 64 128; do
    row="$d"
    for name in memnet windowed lstm transformer; do
      row="$row $(cat $out/${name}_s*/kv_recall.csv 2>/dev/null | awk -F, -v d=$d '$1==d {s+=$2; n++} END {if (n) printf "%.4f", s/n; else print "NaN"}')"
    done
    echo "$row"
  done
} > "$dat"
if command -v gnuplot > /dev/null; then
  gnuplot <<GP
set terminal png size 800,500 font ',11'
set output '$out/recall.png'
set title 'key-value recall vs distance (window W = 16, 2 blocks; mean of seeds $seeds)'
set xlabel 'distance d (tokens)'
set ylabel 'accuracy among the 10 digits'
set logscale x 2
set yrange [0:1]
set key top right
set arrow from 32, graph 0 to 32, graph 1 nohead dt 2
plot '$dat' using 1:2 with linespoints lw 2 title 'MemNet', \
     '' using 1:3 with linespoints title 'windowed Transformer (no memory)', \
     '' using 1:4 with linespoints title 'LSTM', \
     '' using 1:5 with linespoints title 'full-context Transformer', \
     0.1 with lines dt 3 title 'chance'
GP
  echo "$out/recall.png"
fi

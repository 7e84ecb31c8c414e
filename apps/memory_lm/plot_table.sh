#!/usr/bin/env bash
# apps/memory_lm/plot_table.sh — the README's figures from run_table.sh's run directories:
#   FIG_DIR/bpc_curves.png   validation bpc over training, one line per variant (seed 0)
#   FIG_DIR/kv_recall.png    key-value recall accuracy vs distance, one line per variant
#   bash apps/memory_lm/plot_table.sh RUN_DIR FIG_DIR [PROBE_SUFFIX]   (PROBE_SUFFIX: probe_s0)
set -euo pipefail
runs=${1:-runs/memory_lm_table}
fig=${2:-apps/memory_lm/figures}
probe=${3:-probe_s0}
mkdir -p "$fig"
variants="local_attention cmr_parallel cmr_series cmr_parallel_shared titans_mag hybrid cmr_parallel_m256 cmr_parallel_seg4"
bpc_plot="" recall_plot=""
for v in $variants; do
  m=$runs/${v}_s0/metrics.csv
  if [ -f "$m" ]; then
    # training bpc, a running mean over 20 steps
    grep ',train,' "$m" | cut -d, -f1,4 | awk -F, '{s[NR%20]=$2; n=NR<20?NR:20; t=0; for(i in s) t+=s[i]; print $1","t/n}' > "$fig/bpc_$v.dat"
    bpc_plot="$bpc_plot '$fig/bpc_$v.dat' using 1:2 with lines lw 2 title '$v',"
  fi
  k=$runs/${v}_$probe/kv_recall.csv
  if [ -f "$k" ]; then
    tail -n +2 "$k" | cut -d, -f1,2 > "$fig/kv_$v.dat"
    recall_plot="$recall_plot '$fig/kv_$v.dat' using 1:2 with linespoints title '$v',"
  fi
done
gnuplot <<GP
set terminal png size 800,500 font ',11' noenhanced
set datafile separator ','
set output '$fig/bpc_curves.png'
set title 'training bpc, running mean of 20 steps (fortunes, seed 0; attention window 32)'
set yrange [3.2:4.5]
set xlabel 'step'
set ylabel 'bits per byte'
set key top right
set grid
plot ${bpc_plot%,}
set output '$fig/kv_recall.png'
set title 'key-value recall vs distance (window W = 32; chance 0.1)'
set xlabel 'distance d (tokens)'
set ylabel 'accuracy among the 10 digits'
set logscale x 2
set yrange [0:1]
set key top right
set arrow from graph 0, first 0.1 to graph 1, first 0.1 nohead dt 2
set arrow from 32, graph 0 to 32, graph 1 nohead dt 3
plot ${recall_plot%,}
GP
rm -f "$fig"/bpc_*.dat "$fig"/kv_*.dat
echo "$fig/bpc_curves.png $fig/kv_recall.png"

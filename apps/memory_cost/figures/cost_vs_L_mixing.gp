set datafile separator ','
set datafile missing 'NaN'
set terminal png size 1050,520 font ',11'
set output 'apps/memory_cost/figures/cost_vs_L_mixing.png'
set title 'FLOPs per token beyond the projections (d=512 H=8 M=64 S=1)'
set xlabel 'L (tokens)'
set ylabel 'FLOPs per token'
set logscale xy
set xrange [51.2:10240]
set xtics (64, 128, 256, 512, 1024, 2048, 4096, 8192)
set format y '10^{%L}'
set grid
set key outside right top font ',10'
plot 'apps/memory_cost/figures/cost_vs_L.csv' using 1:7 with lines lw 2 lc rgb '#cc3311' title 'attention 4Ld (formula)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:8 with points pt 7 ps 1.3 lc rgb '#cc3311' title 'attention (measured)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:14 with lines lw 2 lc rgb '#4477aa' title 'neural memory H(9dh^2+3dh+1) (formula)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:15 with points pt 7 ps 1.3 lc rgb '#4477aa' title 'neural memory (measured)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:21 with lines lw 2 lc rgb '#228833' title 'episodic, one call (formula)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:22 with points pt 7 ps 1.3 lc rgb '#228833' title 'episodic, one call (measured)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:28 with lines lw 2 lc rgb '#aa3377' title 'episodic, calls of 128 (formula)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:29 with points pt 7 ps 1.3 lc rgb '#aa3377' title 'episodic, calls of 128 (measured)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:31 with lines lw 2 lc rgb '#222222' title 'episodic ideal 4Md+H(5dh+8) (formula)'

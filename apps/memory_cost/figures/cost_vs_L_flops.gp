set datafile separator ','
set datafile missing 'NaN'
set terminal png size 1050,520 font ',11'
set output 'apps/memory_cost/figures/cost_vs_L_flops.png'
set title 'forward FLOPs per token, one call of L tokens (d=512 H=8 M=64 S=1)'
set xlabel 'L (tokens)'
set ylabel 'FLOPs per token'
set logscale xy
set xrange [51.2:10240]
set xtics (64, 128, 256, 512, 1024, 2048, 4096, 8192)
set format y '10^{%L}'
set grid
set key outside right top font ',10'
plot 'apps/memory_cost/figures/cost_vs_L.csv' using 1:2 with lines lw 2 lc rgb '#cc3311' title 'attention (formula)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:3 with points pt 7 ps 1.3 lc rgb '#cc3311' title 'attention (measured)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:9 with lines lw 2 lc rgb '#4477aa' title 'neural memory (formula)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:10 with points pt 7 ps 1.3 lc rgb '#4477aa' title 'neural memory (measured)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:16 with lines lw 2 lc rgb '#228833' title 'episodic, one call (formula)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:17 with points pt 7 ps 1.3 lc rgb '#228833' title 'episodic, one call (measured)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:23 with lines lw 2 lc rgb '#aa3377' title 'episodic, calls of 128 (formula)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:24 with points pt 7 ps 1.3 lc rgb '#aa3377' title 'episodic, calls of 128 (measured)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:30 with lines lw 2 lc rgb '#222222' title 'episodic ideal 8d^2+4Md (formula)'

set datafile separator ','
set datafile missing 'NaN'
set terminal png size 1050,520 font ',11'
set output 'apps/memory_cost/figures/cost_vs_M_flops.png'
set title 'forward FLOPs per token vs episodic slots (d=512 H=8 L=128 S=1)'
set xlabel 'M (slots)'
set ylabel 'FLOPs per token'
set logscale xy
set xrange [12.8:5120]
set xtics (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
set format y '10^{%L}'
set grid
set key outside right top font ',10'
plot 'apps/memory_cost/figures/cost_vs_M.csv' using 1:2 with lines lw 2 lc rgb '#228833' title 'episodic (formula)', \
  'apps/memory_cost/figures/cost_vs_M.csv' using 1:3 with points pt 7 ps 1.3 lc rgb '#228833' title 'episodic (measured)', \
  'apps/memory_cost/figures/cost_vs_M.csv' using 1:4 with lines lw 2 lc rgb '#222222' title 'episodic ideal (formula)', \
  'apps/memory_cost/figures/cost_vs_M.csv' using 1:8 with lines lw 2 lc rgb '#cc3311' title 'attention, same L (formula)', \
  'apps/memory_cost/figures/cost_vs_M.csv' using 1:10 with lines lw 2 lc rgb '#4477aa' title 'neural memory (formula)'

set datafile separator ','
set datafile missing 'NaN'
set terminal png size 1050,520 font ',11'
set output 'apps/memory_cost/figures/cost_vs_M_bytes.png'
set title 'state bytes vs episodic slots (d=512 H=8 L=128 S=1, f32)'
set xlabel 'M (slots)'
set ylabel 'bytes'
set logscale xy
set xrange [12.8:5120]
set xtics (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
set format y '10^{%L}'
set grid
set key outside right top font ',10'
plot 'apps/memory_cost/figures/cost_vs_M.csv' using 1:5 with lines lw 2 lc rgb '#228833' title 'episodic bank (formula)', \
  'apps/memory_cost/figures/cost_vs_M.csv' using 1:6 with points pt 7 ps 1.3 lc rgb '#228833' title 'episodic bank (measured)', \
  'apps/memory_cost/figures/cost_vs_M.csv' using 1:9 with lines lw 2 lc rgb '#cc3311' title 'attention K/V, same L (formula)', \
  'apps/memory_cost/figures/cost_vs_M.csv' using 1:11 with lines lw 2 lc rgb '#4477aa' title 'neural memory (formula)'

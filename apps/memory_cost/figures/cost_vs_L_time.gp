set datafile separator ','
set datafile missing 'NaN'
set terminal png size 1050,520 font ',11'
set output 'apps/memory_cost/figures/cost_vs_L_time.png'
set title 'forward time per token, 1 thread(s) (d=512 H=8 M=64 S=1)'
set xlabel 'L (tokens)'
set ylabel 'microseconds per token'
set logscale xy
set xrange [51.2:10240]
set xtics (64, 128, 256, 512, 1024, 2048, 4096, 8192)
set format y '10^{%L}'
set grid
set key outside right top font ',10'
plot 'apps/memory_cost/figures/cost_vs_L.csv' using 1:6 with points pt 7 ps 1.3 lc rgb '#cc3311' title 'attention', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:13 with points pt 7 ps 1.3 lc rgb '#4477aa' title 'neural memory', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:20 with points pt 7 ps 1.3 lc rgb '#228833' title 'episodic, one call', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:27 with points pt 7 ps 1.3 lc rgb '#aa3377' title 'episodic, calls of 128'

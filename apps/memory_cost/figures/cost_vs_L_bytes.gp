set datafile separator ','
set datafile missing 'NaN'
set terminal png size 1050,520 font ',11'
set output 'apps/memory_cost/figures/cost_vs_L_bytes.png'
set title 'state carried after L tokens (d=512 H=8 M=64 S=1, f32)'
set xlabel 'L (tokens)'
set ylabel 'bytes'
set logscale xy
set xrange [51.2:10240]
set xtics (64, 128, 256, 512, 1024, 2048, 4096, 8192)
set format y '10^{%L}'
set grid
set key outside right top font ',10'
plot 'apps/memory_cost/figures/cost_vs_L.csv' using 1:4 with lines lw 2 lc rgb '#cc3311' title 'attention K/V 2LdB (formula)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:5 with points pt 7 ps 1.3 lc rgb '#cc3311' title 'attention K/V (measured)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:11 with lines lw 2 lc rgb '#4477aa' title 'neural memory 2Hdh^2B (formula)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:12 with points pt 7 ps 1.3 lc rgb '#4477aa' title 'neural memory (measured)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:18 with lines lw 2 lc rgb '#228833' title 'episodic bank (formula)', \
  'apps/memory_cost/figures/cost_vs_L.csv' using 1:19 with points pt 7 ps 1.3 lc rgb '#228833' title 'episodic bank (measured)'

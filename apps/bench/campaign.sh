#!/usr/bin/env bash
# apps/bench/campaign.sh — docs/benchmarks.md's measurement campaign: every workload, RUNS runs,
# at each thread count, one bench process per workload (so each peak-memory figure is that
# workload's alone), then one markdown table per thread count: the runs' engram and PyTorch step
# times, their ratios (torch_ms / engram_ms, > 1: engram faster), the median ratio, the median
# peak memory of each side, the memory ratio (torch / engram, > 1: engram needed less) and the
# large blocks engram took fresh from the system during the timed steps.
#   bash apps/bench/campaign.sh [OUT_DIR]        (default runs/bench_campaign)
#   RUNS=3 THREADS="1 2" WORKLOADS="mlp cnn" BIN=build/apps/bench: what to run
#   TABLE_ONLY=1: only rebuild the tables from OUT_DIR/raw.txt
# The slow memory-family workloads run 3 timed steps after 1 warm-up (PyTorch's Mamba step takes
# 7-14 s), the others the bench's defaults (10 after 2). Run it on a quiet machine: a build or a
# second benchmark on the other core moves single figures by 20% and more.
set -euo pipefail
out=${1:-runs/bench_campaign}
bin=${BIN:-build/apps/bench}
fast="mlp cnn lstm transformer spectral hebbian crsd_tiny"
slow="epinet hybrid memnet s4d s4 s5 mamba linoss retnet samba"
workloads=${WORKLOADS:-$fast $slow}
raw=$out/raw.txt
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE

if [ -z "${TABLE_ONLY:-}" ]; then
  : > "$raw"
  for r in $(seq 1 "${RUNS:-3}"); do
    for th in ${THREADS:-1 2}; do
      for w in $workloads; do
        extra=()
        case " $slow " in *" $w "*) extra=(--steps 3 --warmup 1) ;; esac
        line=$("$bin" --workload "$w" --threads "$th" "${extra[@]}" | grep '^workload=') ||
          { echo "campaign: $w at $th threads gave no result line" >&2; exit 1; }
        echo "run=$r $line" | tee -a "$raw"
      done
    done
  done
fi

# One table per thread count, the workloads in the order given.
for th in ${THREADS:-1 2}; do
  echo
  echo "#### $th thread(s)"
  echo
  echo "| workload | engram ms (runs) | torch ms (runs) | ratios | **median ratio** | engram peak MiB (median) | torch peak MiB (median) | mem ratio | fresh blocks |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for w in $workloads; do
    awk -v w="$w" -v th="$th" '
      function med(a, n,   i, j, t) {  # median of a[1..n] (sorted in place); NA when empty
        if (n == 0) return "NA"
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      }
      {
        delete f
        for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        if (f["workload"] != w || f["threads"] != th) next
        n++
        e = e (n > 1 ? ", " : "") sprintf("%.1f", f["engram_ms"])
        t = t (n > 1 ? ", " : "") (f["torch_ms"] == "NA" ? "NA" : sprintf("%.1f", f["torch_ms"]))
        r = r (n > 1 ? ", " : "") f["ratio"]
        fb = fb (n > 1 ? "," : "") f["fresh_blocks"]
        if (f["ratio"] != "NA") ratios[++nr] = f["ratio"] + 0
        if (f["engram_peak_mb"] != "NA") ep[++ne] = f["engram_peak_mb"] + 0
        if (f["torch_peak_mb"] != "NA") tp[++nt] = f["torch_peak_mb"] + 0
      }
      END {
        if (n == 0) exit
        mr = med(ratios, nr); me = med(ep, ne); mt = med(tp, nt)
        mem = (me == "NA" || mt == "NA" || me < 1 || mt < 1) ? "NA" : sprintf("%.2f", mt / me)
        printf "| %s | %s | %s | %s | **%s** | %s | %s | %s | %s |\n", w, e, t, r,
          mr == "NA" ? "NA" : sprintf("%.2f", mr), me == "NA" ? "NA" : sprintf("%.1f", me),
          mt == "NA" ? "NA" : sprintf("%.1f", mt), mem, fb
      }' "$raw"
  done
done

#!/usr/bin/env bash
# Installs the Debian packages engram needs. Safe to re-run; uses sudo when not root.
#   build:    g++ make pkg-config, OpenBLAS (BLAS+LAPACK), FFTW, fmt, doctest, yaml-cpp, CLI11,
#             nlohmann-json, sentencepiece, zlib (gzip-compressed IDX datasets), libcsv (the
#             free-recall CSV data sets)
#   data:     fortunes (English text corpus), dataset-fashion-mnist (IDX files)
#   optional: python3-torch (goldens and benchmark references), gnuplot (training plots)
#   mpi:      libopenmpi-dev, openmpi-bin: data-parallel training (--distributed under mpirun,
#             nn/distributed.h) and make test-mpi. Installed by default; ENGRAM_WITH_MPI=0 skips
#             them, and engram then builds without MPI (--distributed says so).
#   fuzzing:  clang, libclang-rt-dev (clang's sanitizer runtimes; on Debian 12 it pulls in
#             libclang-rt-14-dev, whose libclang_rt.fuzzer-x86_64.a is what -fsanitize=fuzzer
#             links, so no libfuzzer-N-dev package is needed), libomp-dev (OpenMP for clang).
#             Only with ENGRAM_WITH_FUZZ=1, as `make fuzz` users and CI ask.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(
  g++ make pkg-config
  libopenblas-dev liblapacke-dev libfftw3-dev libfmt-dev doctest-dev
  libyaml-cpp-dev libcli11-dev nlohmann-json3-dev libsentencepiece-dev zlib1g-dev libcsv-dev
  fortunes dataset-fashion-mnist
)
OPTIONAL=(python3-torch gnuplot-nox)
FUZZ=(clang libclang-rt-dev libomp-dev)
MPI=(libopenmpi-dev openmpi-bin)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${ENGRAM_WITH_OPTIONAL:-1}" = 1 ]; then
  for p in "${OPTIONAL[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
fi
if [ "${ENGRAM_WITH_MPI:-1}" = 1 ]; then
  for p in "${MPI[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
fi
if [ "${ENGRAM_WITH_FUZZ:-0}" = 1 ]; then
  for p in "${FUZZ[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

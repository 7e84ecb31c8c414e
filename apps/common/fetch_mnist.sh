#!/usr/bin/env bash
# apps/common/fetch_mnist.sh DIR — downloads the four MNIST IDX files (gzip) into DIR and verifies
# their published MD5s (the values torchvision checks). `make data` runs it; nothing in engram
# needs it offline (Fashion-MNIST comes from Debian's dataset-fashion-mnist). Train on it with
# `build/apps/epinet_split --set data.path=DIR`: the IDX reader takes the .gz files as they are.
set -euo pipefail
dir="${1:-data/mnist}"
base="https://ossci-datasets.s3.amazonaws.com/mnist"
declare -A md5=(
  [train-images-idx3-ubyte.gz]=f68b3c2dcbeaaa9fbdd348bbdeb94873
  [train-labels-idx1-ubyte.gz]=d53e105ee54ea40749a09fcbcd1e9432
  [t10k-images-idx3-ubyte.gz]=9fb629c4189551a2d022fa330f9573f3
  [t10k-labels-idx1-ubyte.gz]=ec29112dd5afa0611ce80d1b7f02629c
)
mkdir -p "$dir"
cd "$dir"
for f in "${!md5[@]}"; do
  if [ -f "$f" ] && echo "${md5[$f]}  $f" | md5sum --quiet -c - 2>/dev/null; then
    echo "fetch_mnist: $dir/$f present and verified"
    continue
  fi
  if command -v curl >/dev/null; then curl -fL --retry 3 -o "$f" "$base/$f"
  elif command -v wget >/dev/null; then wget -O "$f" "$base/$f"
  else echo "fetch_mnist: error: need curl or wget to download $base/$f" >&2; exit 2; fi
  if ! echo "${md5[$f]}  $f" | md5sum --quiet -c -; then
    echo "fetch_mnist: error: $dir/$f does not have the published MD5 ${md5[$f]} (corrupt download?)" >&2
    rm -f "$f"
    exit 2
  fi
  echo "fetch_mnist: $dir/$f verified (md5 ${md5[$f]})"
done

#!/usr/bin/env bash
# apps/common/fetch_enwik8.sh DIR — downloads enwik8 (the first 10^8 bytes of an English Wikipedia
# XML dump, the Hutter Prize corpus) into DIR/enwik8 and verifies its published MD5. `make data`
# runs it; nothing in engram needs it offline. Train on it with `--data DIR/enwik8`: the harness
# recognises the 100,000,000-byte file and uses the standard 90M/5M/5M train/val/test split.
set -euo pipefail
dir="${1:-data}"
url="https://mattmahoney.net/dc/enwik8.zip"
md5="a1fa5ffddb56f4953e226637dabbb36a"   # enwik8, 100,000,000 bytes (mattmahoney.net/dc/textdata)
mkdir -p "$dir"
cd "$dir"
if [ -f enwik8 ] && echo "$md5  enwik8" | md5sum --quiet -c - 2>/dev/null; then
  echo "fetch_enwik8: $dir/enwik8 present and verified"
  exit 0
fi
if command -v curl >/dev/null; then curl -fL --retry 3 -o enwik8.zip "$url"
elif command -v wget >/dev/null; then wget -O enwik8.zip "$url"
else echo "fetch_enwik8: error: need curl or wget to download $url" >&2; exit 2; fi
if command -v unzip >/dev/null; then unzip -o -q enwik8.zip enwik8
else python3 -c 'import zipfile; zipfile.ZipFile("enwik8.zip").extract("enwik8")'; fi
rm -f enwik8.zip
if ! echo "$md5  enwik8" | md5sum --quiet -c -; then
  echo "fetch_enwik8: error: $dir/enwik8 does not have the published MD5 $md5 (corrupt download?)" >&2
  rm -f enwik8
  exit 2
fi
echo "fetch_enwik8: $dir/enwik8 verified (md5 $md5)"

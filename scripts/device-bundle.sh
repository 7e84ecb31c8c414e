#!/usr/bin/env bash
# Run HERE (a Debian machine with the package archive): gathers the Debian libraries engram builds
# against into .device-bundle/, a folder small enough to travel to a bare GPU machine (the device
# tool's `carry`), where scripts/device-check.sh builds and checks the CUDA backend with it.
#
# The GPU machine has nvcc, a host g++ and PyTorch with CUDA, but none of these libraries and no
# network. So: `apt-get download` the .deb files of the build's libraries (headers, .so links,
# pkg-config files) and of their run-time libraries, unpack them with `dpkg -x` into
# .device-bundle/root (never into /), pack it as .device-bundle/root.tar.xz, drop what the build does not need (static archives, docs,
# man pages), and write .device-bundle/env.sh with the compiler and linker flags and the
# LD_LIBRARY_PATH that point into the bundle. The C++ runtime (libstdc++, libgomp) is the GPU
# machine's own: its g++ compiles the code, so its runtime must run it. MPI is not bundled (the
# GPU check builds with MPI=0).
#   bash scripts/device-bundle.sh            # then: device run with carry [".device-bundle"]
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=.device-bundle
PKGS=(
  # headers, .so links and .pc files
  libopenblas-dev libopenblas-pthread-dev liblapacke-dev libfftw3-dev libfmt-dev doctest-dev
  libyaml-cpp-dev libcli11-dev nlohmann-json3-dev libsentencepiece-dev zlib1g-dev libcsv-dev
  # the run-time libraries they link to (ldd of build/apps/crsd_tiny, less libc/libstdc++/libgomp)
  libopenblas0-pthread liblapacke libtmglib3 libgfortran5 libquadmath0 libfftw3-single3
  libfftw3-double3 libfmt9 libyaml-cpp0.7 libsentencepiece0 libcsv3 zlib1g
)
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/debs" "$BUNDLE/root"
(cd "$BUNDLE/debs" && apt-get download "${PKGS[@]}" >/dev/null)
for deb in "$BUNDLE"/debs/*.deb; do dpkg -x "$deb" "$BUNDLE/root"; done
rm -rf "$BUNDLE/debs"
# What the build never reads: static archives, documentation, manual pages, the FFTW tools.
find "$BUNDLE/root" -name '*.a' -delete
rm -rf "$BUNDLE/root/usr/share/doc" "$BUNDLE/root/usr/share/man" "$BUNDLE/root/usr/share/info" \
       "$BUNDLE/root/usr/bin" "$BUNDLE/root/usr/share/lintian"
rm -f "$BUNDLE"/root/usr/lib/x86_64-linux-gnu/libsentencepiece_train*
# Debian points libblas.so.3 etc. through /etc/alternatives; inside the bundle the OpenBLAS files
# are reached by their own names (-lopenblas from the openblas-pthread folder), so no links needed.
MULTI=usr/lib/x86_64-linux-gnu
cat > "$BUNDLE/env.sh" <<ENV
# Sourced by scripts/device-check.sh on the GPU machine: flags pointing into this bundle.
BUNDLE_ROOT="\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)/root"
BUNDLE_CFLAGS="-isystem \$BUNDLE_ROOT/usr/include -isystem \$BUNDLE_ROOT/usr/include/x86_64-linux-gnu -isystem \$BUNDLE_ROOT/usr/include/x86_64-linux-gnu/openblas-pthread"
BUNDLE_LIBDIRS="\$BUNDLE_ROOT/$MULTI:\$BUNDLE_ROOT/$MULTI/openblas-pthread:\$BUNDLE_ROOT/lib/x86_64-linux-gnu"
BUNDLE_LIBS="-L\$BUNDLE_ROOT/$MULTI -L\$BUNDLE_ROOT/$MULTI/openblas-pthread -L\$BUNDLE_ROOT/lib/x86_64-linux-gnu -Wl,-rpath-link,\$BUNDLE_ROOT/$MULTI -lopenblas -llapacke -lfftw3 -lfftw3f -lfmt -lz -lyaml-cpp -lsentencepiece"
export LD_LIBRARY_PATH="\$BUNDLE_LIBDIRS\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
ENV
# Unpacked it is about 60 MiB (OpenBLAS alone 36), too much beside the working tree in the
# device tool's 64 MiB; xz brings it to about 10 MiB. device-check.sh unpacks it there.
files=$(find "$BUNDLE/root" -type f | wc -l)
tar -C "$BUNDLE" -cJf "$BUNDLE/root.tar.xz" root
rm -rf "$BUNDLE/root"
echo "device-bundle: $BUNDLE/root.tar.xz, $(du -h "$BUNDLE/root.tar.xz" | cut -f1) ($files files)"

#!/usr/bin/env bash
# Copies, on a Debian machine with the project's -dev packages, the dependencies that the GPU
# machine lacks into .gpu-deps/ (ignored by git, carried to the GPU machine), keeping Debian's
# relative layout so that their CMake package files stay relocatable:
#   header-only: nlohmann_json, CLI11;  static: GoogleTest (+ GoogleMock, which GTest's package
#   file references), utf8proc;  Google Benchmark (Debian ships it shared only: its .so goes
#   along and the benchmark binary finds it through its build RPATH).
# fmt does not travel: without fmt's package the build compiles LibTorch's own fmt headers in
# header-only mode (cmake/TloraFmt.cmake), which is what it uses on every machine anyway.
# Usage: scripts/gpu-deps.sh [destination, default .gpu-deps]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$repo/.gpu-deps}"
arch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"
lib="/usr/lib/$arch"

# Copies each path under /usr to the same place under $dest, dereferencing symlinks (the
# transfer to the GPU machine may not keep links).
copy() {
  for path in "$@"; do
    [[ -e "$path" ]] || { echo "gpu-deps: missing $path (install the Debian -dev package)" >&2; exit 1; }
    local target="$dest/${path#/usr/}"
    mkdir -p "$(dirname "$target")"
    cp -rL "$path" "$(dirname "$target")/"
  done
}

rm -rf "$dest"
copy /usr/include/nlohmann /usr/share/cmake/nlohmann_json
copy /usr/include/CLI /usr/share/cmake/CLI11
copy /usr/include/gtest /usr/include/gmock "$lib/cmake/GTest" \
     "$lib/libgtest.a" "$lib/libgtest_main.a" "$lib/libgmock.a" "$lib/libgmock_main.a"
copy /usr/include/utf8proc.h "$lib/libutf8proc.a"
copy /usr/include/benchmark "$lib/cmake/benchmark" "$lib/libbenchmark_main.a" \
     "$lib"/libbenchmark.so.1*
echo "gpu-deps: $(du -sh "$dest" | cut -f1) in $dest"

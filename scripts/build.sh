#!/usr/bin/env bash
# Sets up what is missing, configures build/ once, and builds the given targets (default: all).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$TLORA_REPO/scripts/setup.sh"

if [[ ! -f "$TLORA_BUILD/CMakeCache.txt" ]]; then
  torch_prefix="$(python -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)" ||
    { echo "tlora build: cannot import torch from $TLORA_HOME/venv; rerun scripts/setup.sh" >&2; exit 1; }
  cmake -S "$TLORA_REPO" -B "$TLORA_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$torch_prefix" ${TLORA_CMAKE_ARGS:-} >"$TLORA_HOME/configure.log" 2>&1 ||
    { tail -n 30 "$TLORA_HOME/configure.log" >&2; echo "tlora build: cmake configure failed (log: $TLORA_HOME/configure.log)" >&2; exit 1; }
fi
cmake --build "$TLORA_BUILD" ${1:+--target "$@"}

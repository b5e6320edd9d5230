#!/usr/bin/env bash
# The whole test suite: sets up and builds what is missing, then runs ctest (arguments are
# passed on to ctest, e.g. -L cuda or -R TLoRALinear). Extras after it (docs/reliability.md):
#   TLORA_TEST_SANITIZE=1       the suite again under ASan + UBSan (scripts/sanitize.sh); opt-in,
#                               as its instrumented build of the tests does not fit CI's 90 minutes
#   TLORA_TEST_FUZZ_SECONDS=N   every fuzz target for N seconds (scripts/fuzz.sh); 10 by default
#                               where $CI is set (only the library and the fuzz targets are built
#                               instrumented for it), 0 or unset elsewhere: off
#   TLORA_TEST_KERNEL_VARIANTS  the tests labelled numerics again with LibTorch's CPU kernels
#                               restricted to the generic build and to AVX2 (tests/README.md);
#                               on for the whole suite (no ctest arguments), 0: off, 1: always
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$TLORA_REPO/scripts/build.sh"
(cd "$TLORA_BUILD" && ctest --output-on-failure -j "$(nproc)" "$@")
kernel_variants="${TLORA_TEST_KERNEL_VARIANTS:-$(( $# == 0 ))}"
if [[ "$kernel_variants" != 0 ]]; then
  for capability in default avx2; do
    echo "tlora test: the numerics tests with ATEN_CPU_CAPABILITY=$capability, oneDNN and MKL at AVX2"
    (cd "$TLORA_BUILD" && ATEN_CPU_CAPABILITY=$capability DNNL_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
      ctest --output-on-failure -j "$(nproc)" -L numerics)
  done
fi
if [[ "${TLORA_TEST_SANITIZE:-0}" != 0 ]]; then "$TLORA_REPO/scripts/sanitize.sh"; fi
fuzz_seconds="${TLORA_TEST_FUZZ_SECONDS:-}"
[[ -z "$fuzz_seconds" && -n "${CI:-}" ]] && fuzz_seconds=10
if [[ -n "$fuzz_seconds" && "$fuzz_seconds" != 0 ]]; then "$TLORA_REPO/scripts/fuzz.sh" "$fuzz_seconds"; fi

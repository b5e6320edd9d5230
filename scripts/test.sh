#!/usr/bin/env bash
# The whole test suite: sets up and builds what is missing, then runs ctest (arguments are
# passed on to ctest, e.g. -L cuda or -R TLoRALinear). Extras after it (docs/reliability.md):
#   TLORA_TEST_SANITIZE=1       the suite again under ASan + UBSan (scripts/sanitize.sh); opt-in,
#                               as its instrumented build of the tests does not fit CI's 90 minutes
#   TLORA_TEST_FUZZ_SECONDS=N   every fuzz target for N seconds (scripts/fuzz.sh); 10 by default
#                               where $CI is set (only the library and the fuzz targets are built
#                               instrumented for it), 0 or unset elsewhere: off
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$TLORA_REPO/scripts/build.sh"
(cd "$TLORA_BUILD" && ctest --output-on-failure -j "$(nproc)" "$@")
if [[ "${TLORA_TEST_SANITIZE:-0}" != 0 ]]; then "$TLORA_REPO/scripts/sanitize.sh"; fi
fuzz_seconds="${TLORA_TEST_FUZZ_SECONDS:-}"
[[ -z "$fuzz_seconds" && -n "${CI:-}" ]] && fuzz_seconds=10
if [[ -n "$fuzz_seconds" && "$fuzz_seconds" != 0 ]]; then "$TLORA_REPO/scripts/fuzz.sh" "$fuzz_seconds"; fi

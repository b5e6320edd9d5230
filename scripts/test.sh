#!/usr/bin/env bash
# The whole test suite: sets up and builds what is missing, then runs ctest (arguments are
# passed on to ctest, e.g. -L cuda or -R TLoRALinear). Opt-in extras after it (their instrumented
# build does not fit CI's 90 minutes next to the plain one; docs/reliability.md):
#   TLORA_TEST_SANITIZE=1       the suite again under ASan + UBSan (scripts/sanitize.sh)
#   TLORA_TEST_FUZZ_SECONDS=N   every fuzz target for N seconds (scripts/fuzz.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$TLORA_REPO/scripts/build.sh"
(cd "$TLORA_BUILD" && ctest --output-on-failure -j "$(nproc)" "$@")
if [[ "${TLORA_TEST_SANITIZE:-0}" != 0 ]]; then "$TLORA_REPO/scripts/sanitize.sh"; fi
if [[ -n "${TLORA_TEST_FUZZ_SECONDS:-}" ]]; then "$TLORA_REPO/scripts/fuzz.sh" "$TLORA_TEST_FUZZ_SECONDS"; fi

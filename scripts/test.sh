#!/usr/bin/env bash
# The whole test suite: sets up and builds what is missing, then runs ctest (arguments are
# passed on to ctest, e.g. -L cuda or -R TLoRALinear).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$TLORA_REPO/scripts/build.sh"
cd "$TLORA_BUILD"
exec ctest --output-on-failure -j "$(nproc)" "$@"

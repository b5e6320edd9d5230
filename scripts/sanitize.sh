#!/usr/bin/env bash
# Builds the library, the tests and the example with AddressSanitizer + UndefinedBehaviorSanitizer
# in build-sanitize/ (see sanitize-build.sh) and runs ctest there; arguments are passed on to
# ctest (e.g. -R Checkpoint). Any sanitizer report fails the test that raised it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$TLORA_REPO/scripts/setup.sh"
source "$TLORA_REPO/scripts/sanitize-build.sh"

# The build runs each test binary to list its tests; a leak report there would fail the build
# instead of a test, so the leak check waits for ctest.
ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" cmake --build "$TLORA_SANITIZE_BUILD" -j "${TLORA_JOBS:-2}"
cd "$TLORA_SANITIZE_BUILD"
# install_package builds a consumer without the sanitizer runtime against this instrumented
# library, which cannot work; the plain build (scripts/test.sh) runs it.
exec ctest --output-on-failure -j "${TLORA_JOBS:-2}" -E '^install_package$' "$@"

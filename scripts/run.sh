#!/usr/bin/env bash
# The main job: builds and runs the quickstart example (arguments are passed on to it).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$TLORA_REPO/scripts/build.sh" tlora-quickstart >&2
exec "$TLORA_BUILD/examples/quickstart/tlora-quickstart" "$@"

#!/usr/bin/env bash
# Installs what the benchmarks' Hugging Face side needs (scripts/bench-requirements.txt: PEFT, gguf)
# into the build's Python environment, once per machine. Idempotent; scripts/setup.sh first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$TLORA_REPO/scripts/setup.sh"
REQUIREMENTS="$TLORA_REPO/scripts/bench-requirements.txt"
STAMP="$TLORA_HOME/venv/.tlora-bench-requirements"
if ! cmp -s "$REQUIREMENTS" "$STAMP"; then
  echo "tlora bench-deps: installing $(grep -v '^#' "$REQUIREMENTS" | xargs) into $TLORA_HOME/venv" >&2
  "$TLORA_HOME/venv/bin/pip" install --quiet -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$STAMP"
fi

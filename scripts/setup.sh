#!/usr/bin/env bash
# Installs what the build needs, once per machine and outside the clone:
#   - Debian packages (compilers' libraries: fmt, nlohmann-json, GoogleTest, Google Benchmark,
#     CLI11, utf8proc, ccache; gloo's headers, which LibTorch's ProcessGroupGloo.hpp needs; clang
#     and its sanitizer/libFuzzer runtimes for scripts/sanitize.sh and scripts/fuzz.sh);
#   - a Python environment in $TLORA_HOME/venv (default ~/.cache/tlora) with torch, cmake, ninja.
# Idempotent and silent when everything is already there.
set -euo pipefail

TLORA_HOME="${TLORA_HOME:-$HOME/.cache/tlora}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUIREMENTS="$REPO/scripts/requirements.txt"
REQUIREMENTS_NODEPS="$REPO/scripts/requirements-nodeps.txt"
VENV="$TLORA_HOME/venv"
LOG="$TLORA_HOME/setup.log"
DEBIAN_PACKAGES=(ccache libfmt-dev nlohmann-json3-dev libgtest-dev libgmock-dev
                 libbenchmark-dev libcli11-dev libutf8proc-dev libgloo-dev clang libclang-rt-dev)

say() { echo "tlora setup: $*" >&2; }
fail() { say "FAILED: $*"; [[ -s "$LOG" ]] && say "last lines of $LOG:" && tail -n 20 "$LOG" >&2; exit 1; }

mkdir -p "$TLORA_HOME"

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || fail "need root (or sudo) to install: ${missing[*]}"
    SUDO="sudo"
  fi
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"; } \
    >"$LOG" 2>&1 || fail "apt-get install ${missing[*]}"
fi

# The stamp records which requirements the environment was built from, so that a check costs
# no Python start-up and a changed requirements file triggers a reinstall.
STAMP="$VENV/.tlora-requirements"
if [[ ! -x "$VENV/bin/python" ]] || ! cat "$REQUIREMENTS" "$REQUIREMENTS_NODEPS" | cmp -s - "$STAMP"; then
  say "creating the Python environment in $VENV (torch, cmake, ninja; a few GB, once per machine)"
  command -v python3 >/dev/null || fail "python3 is not installed (apt-get install python3 python3-venv)"
  {
    python3 -m venv "$VENV" &&
      "$VENV/bin/pip" install --quiet --upgrade pip &&
      "$VENV/bin/pip" install --quiet -r "$REQUIREMENTS" &&
      "$VENV/bin/pip" install --quiet --no-deps -r "$REQUIREMENTS_NODEPS"
  } >"$LOG" 2>&1 || fail "pip install -r $REQUIREMENTS (and $REQUIREMENTS_NODEPS) into $VENV"
  cat "$REQUIREMENTS" "$REQUIREMENTS_NODEPS" >"$STAMP"
fi

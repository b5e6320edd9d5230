# Sourced by the other scripts: the environment every build uses.
TLORA_HOME="${TLORA_HOME:-$HOME/.cache/tlora}"
TLORA_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TLORA_BUILD="${TLORA_BUILD:-$TLORA_REPO/build}"
export PATH="$TLORA_HOME/venv/bin:$PATH"
# ccache shares its cache between clones: paths under the repository are hashed relatively.
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
export CCACHE_BASEDIR="$TLORA_REPO"
export CCACHE_NOHASHDIR=1

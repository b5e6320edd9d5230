#!/usr/bin/env bash
# The main job: builds tlora-glue and fine-tunes MiniLM with TLoRA on 4,000 SST-2 sentences (one
# epoch, a few minutes on 2 CPU cores), then prints the dev metrics. Arguments are passed on to
# tlora-glue and override these (e.g. --task mrpc --output-dir runs/mrpc). Rerunning continues
# or re-reports the run in runs/main instead of starting it again.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$TLORA_REPO/scripts/build.sh" tlora-glue >&2
cd "$TLORA_REPO"
exec "$TLORA_BUILD/examples/glue/tlora-glue" --task sst2 --method tlora --max-train-samples 4000 \
  --epochs 1 --lr 1e-2 --max-seq-length 64 --output-dir runs/main --resume "$@"

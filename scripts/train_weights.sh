#!/usr/bin/env bash
# Re-make the shipped weights: one checkpoint per preset, trained with the CLI and the preset's own recipe.
# The exact command and everything it printed are kept beside each checkpoint (mnistlab/weights/<name>.txt), with
# the per-epoch history the CLI writes (<name>.json).
#   bash scripts/train_weights.sh              # all presets
#   bash scripts/train_weights.sh best lean    # some
set -euo pipefail
cd "$(dirname "$0")/.."
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(best lean tiny micro seed)
for name in "${presets[@]}"; do
  cmd=(python3 -m mnistlab train --preset "$name" --seed 1 --quiet --out "mnistlab/weights/$name.pt")
  {
    echo "\$ ${cmd[*]}"
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), $(python3 -c 'import torch; print("torch", torch.__version__)'), $(nproc) cores"
    "${cmd[@]}"
  } 2>&1 | tee "mnistlab/weights/$name.txt"
done

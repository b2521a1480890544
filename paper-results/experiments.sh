#!/usr/bin/env bash
# The experiments behind the numbers in paper-results/: VAE vs IWAE (activity paper, Burda et al.),
# VAE vs eVAE at D = 20 and D = 50 (eVAE paper), and VAE vs warm-up vs batch norm (activity paper).
#
#   paper-results/experiments.sh [EPOCHS]      (default 100 epochs of the Burda schedule)
#
# Each run goes to paper-results/runs/NAME (config, metrics, activity, eval.json; checkpoints are not
# committed). Set VAE to another build of the CLI to pin one (default: the ./vae launcher).
# The papers train for 3280 epochs; with EPOCHS < 3280 the schedule is cut short.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VAE=${VAE:-./vae}
EPOCHS=${1:-100}
OUT=paper-results/runs
COMMON=(--schedule burda --epochs "$EPOCHS" --seed 1 --hidden 200,200 --activation softplus)

train() { # NAME ARGS...
  local name=$1; shift
  if [ -f "$OUT/$name/checkpoint.safetensors" ]; then
    $VAE train --out "$OUT/$name" --epochs "$EPOCHS" --resume
  else
    $VAE train --out "$OUT/$name" "${COMMON[@]}" "$@"
  fi
}

train vae-d50        --latent 50
train iwae5-d50      --latent 50 --k 5
train evae-d50-k25   --latent 50 --model evae --epitome-size 25 --epitome-stride 25
train vae-d20        --latent 20
train evae-d20-k5    --latent 20 --model evae --epitome-size 5 --epitome-stride 5
train vae-d50-warmup --latent 50 --warmup-epochs $((EPOCHS / 2))
train vae-d50-bn     --latent 50 --batchnorm

for run in vae-d50 iwae5-d50 evae-d50-k25 vae-d20 evae-d20-k5 vae-d50-warmup vae-d50-bn; do
  $VAE eval "$OUT/$run" --k 5000
done

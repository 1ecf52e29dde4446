#!/usr/bin/env bash
# The main job: generate SynthWorld, train the default config, evaluate, predict a few images.
# Every step is a plain babelseg command, echoed before it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
run() { echo; echo "\$ $*"; "$@"; }
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
[ -f sw/datasets.yaml ] || run babelseg synth --out sw
run babelseg datasets check sw/datasets.yaml
run babelseg train configs/default.yaml --no-eval --overwrite  # replaces an earlier runs/default
run babelseg eval --run runs/default --out runs/default/metrics.json
val=$(ls sw/metro_drive/images/val | head -n 3 | sed 's|^|sw/metro_drive/images/val/|')
night=$(ls sw/night_drive/images/val | head -n 3 | sed 's|^|sw/night_drive/images/val/|')
run babelseg predict --run runs/default --dataset metro_drive $val --out runs/default/predictions/metro_drive
# a held-out dataset, in its own vocabulary (names never seen in training)
run babelseg predict --run runs/default --dataset night_drive $night --out runs/default/predictions/night_drive
# any vocabulary: synonyms of trained classes
run babelseg predict --run runs/default --labels "roadway, automobile, pedestrian, sky, tree, building" \
    $val --out runs/default/predictions/synonyms
echo
echo "Done. Results:"
echo "  metrics:      runs/default/metrics.json (table above)"
echo "  checkpoints:  runs/default/ckpt_*/ (safetensors + JSON)"
echo "  training log: runs/default/metrics.jsonl, TensorBoard: tensorboard --logdir runs/default/tb"
echo "  predictions:  runs/default/predictions/*/ (label PNGs and *_overlay.png)"

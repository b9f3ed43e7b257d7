#!/usr/bin/env bash
# The many-class study (README, "The many-class claim in miniature"), at equal steps.
# Every run: 600 steps of batch 16 at 64 px, evaluated every 150 steps (the learning curves), 10000 generated
# training images (each seen about once, so no class runs short of examples), 3 seeds, 2 runs at a time.
# Re-running skips finished runs and resumes unfinished ones. Then `python results/many_classes/report.py`
# collects results.csv, curves.csv and the figures.
set -euo pipefail
COMMON=(--seeds 3 --jobs 2 --threads 2 solver.max_iters=600 eval_period=150 checkpoint_period=300 log_period=50
        data.num_train=10000)
sweep() {  # sweep CUE MODEL CLASS_COUNTS
  local cue=$1 model=$2 ks=$3 keys=data.num_classes+model.num_classes
  [ "$model" = per_pixel_plus ] && keys=$keys+model.num_queries  # PerPixelBaseline+: one query per class
  python -m maskformer sweep shapes/${model}_tiny --grid $keys=$ks --output output/many_classes/$cue/$model \
    "${COMMON[@]}" data.class_cue=$cue
}
# Shapes: a class is a (shape, colour) pair
sweep shape_colour per_pixel 7,19,50,100
# the marker probe: a class is only the hue of a small marker somewhere inside the segment
sweep marker per_pixel 7,19
sweep marker maskformer 7,19
sweep marker per_pixel_plus 7,19
sweep shape_colour per_pixel_plus 7,19
sweep shape_colour maskformer 7,19

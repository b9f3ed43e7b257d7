#!/usr/bin/env bash
# The many-class study (README, "The many-class claim in miniature"), at equal steps and at equal time.
# Equal steps: 600 steps of batch 16 at 64 px, evaluated every 150 steps (the learning curves), 10000 generated
# training images (each seen about once, so no class runs short of examples), 3 seeds, 2 runs at a time.
# Equal time: each model trains the steps that PerPixelBaseline's 600 take, read from equal_time_steps.csv
# (measured by `python results/many_classes/timing.py`; PerPixelBaseline's equal-time runs are its 600-step ones).
# Twice the steps: the equal-steps grid again at 1200 steps (same data, evaluation every 150 steps), to see whether
# each curve has flattened: the gain from doubling the budget is the test (README, "The many-class claim").
# A cell still rising at 1200 steps is doubled again, to 2400 and on (HYPOTHESIS.md), with `sweep ... STEPS`.
# Equal time at a comparison length L (the first length every model of a class count has passed; HYPOTHESIS.md):
# `equal_time CUE MODEL KS N`, N = PerPixelBaseline's steps in the time the slowest model takes for L steps (report.py
# prints N and the lines still to run); the slowest model's runs there are its equal-steps runs at L.
# Re-running skips finished runs and resumes unfinished ones. Then `python results/many_classes/report.py`
# collects results.csv, curves.csv and the figures.
set -euo pipefail
HERE=$(dirname "$0")
# --cache-samples: each generated image is drawn once and kept (the same runs, 1.1-1.7x faster past the first epoch:
# benchmarks/shapes_cache.py); the runs before 2026-12-07 drew them again every epoch
COMMON=(--seeds 3 --jobs 2 --threads 2 --cache-samples checkpoint_period=300 log_period=50 data.num_train=10000)
keys() {  # the grid key of a model: the class count, and for PerPixelBaseline+ one query per class
  if [ "$1" = per_pixel_plus ]; then echo data.num_classes+model.num_classes+model.num_queries
  else echo data.num_classes+model.num_classes; fi
}
sweep() {  # sweep CUE MODEL CLASS_COUNTS [STEPS]: equal steps, 600 unless STEPS is given
  local cue=$1 model=$2 ks=$3 steps=${4:-600} budget=equal_steps
  [ "$steps" = 600 ] || budget=equal_steps_$steps
  python -m maskformer sweep shapes/${model}_tiny --grid "$(keys $model)=$ks" \
    --output output/many_classes/$budget/$cue/$model "${COMMON[@]}" solver.max_iters=$steps eval_period=150 \
    data.class_cue=$cue
}
longer() { sweep "$1" "$2" "$3" 1200; }  # longer CUE MODEL CLASS_COUNTS: equal steps, twice as long
equal_time() {  # equal_time CUE MODEL CLASS_COUNTS [N]: the steps that PerPixelBaseline's N (600 unless given) take,
  local cue=$1 model=$2 n=${4:-600} budget=equal_time k steps  # one class count at a time
  [ "$n" = 600 ] || budget=equal_time_$n
  for k in ${3//,/ }; do
    steps=$(awk -F, -v c=$cue -v m=$model -v k=$k '$1==c && $2==m && $3==k {sub(/\r$/, "", $4); print $4}' \
      $HERE/equal_time_steps.csv)  # the csv module writes CRLF line ends
    [ -n "$steps" ] || { echo "$HERE/equal_time_steps.csv: no row for $cue $model K=$k; run timing.py" >&2; exit 1; }
    steps=$(( (steps * n + 300) / 600 ))  # its steps in PerPixelBaseline's n, rounded (report.py: equal_time_steps)
    python -m maskformer sweep shapes/${model}_tiny --grid "$(keys $model)=$k" \
      --output output/many_classes/$budget/$cue/$model "${COMMON[@]}" solver.max_iters=$steps eval_period=0 \
      data.class_cue=$cue
  done
}
# Shapes: a class is a (shape, colour) pair
sweep shape_colour per_pixel 7,19,50,100
# the marker probe: a class is only the hue of a small marker somewhere inside the segment
sweep marker per_pixel 7,19
sweep marker maskformer 7,19
sweep marker per_pixel_plus 7,19
sweep shape_colour per_pixel_plus 7,19,50,100
sweep shape_colour maskformer 7,19,50,100
equal_time shape_colour per_pixel_plus 7,19,50,100
equal_time shape_colour maskformer 7,19,50,100
equal_time marker per_pixel_plus 7,19
equal_time marker maskformer 7,19
# twice the steps, the cells where the order could still change first
longer shape_colour maskformer 7,19
longer shape_colour per_pixel_plus 7,19
longer shape_colour per_pixel 7,19
longer shape_colour maskformer 50,100
longer shape_colour per_pixel 50,100
longer shape_colour per_pixel_plus 50,100
longer marker maskformer 7,19
longer marker per_pixel 7,19
longer marker per_pixel_plus 7,19
# still rising at 1200 steps (HYPOTHESIS.md: doubled again), the 7-class cells first, where the curves flatten soonest
sweep shape_colour per_pixel 7 2400
sweep shape_colour per_pixel_plus 7 2400
sweep shape_colour maskformer 7 2400
sweep shape_colour per_pixel 19,50,100 2400
sweep shape_colour per_pixel_plus 19,50,100 2400
sweep shape_colour maskformer 19,50 2400
sweep marker per_pixel 7,19 2400
sweep marker per_pixel_plus 7,19 2400
sweep marker maskformer 7 2400
# passed (not learning at 100 classes, flattened on the probe at 19), trained at 2400 steps beside the baselines of
# their class count, which are still rising (HYPOTHESIS.md, "equal steps at the comparison length")
sweep shape_colour maskformer 100 2400
sweep marker maskformer 19 2400
# still rising at 2400 steps: doubled again
sweep shape_colour per_pixel 7 4800
sweep shape_colour per_pixel_plus 7 4800
sweep shape_colour maskformer 7 4800
# still rising at 4800 steps (MaskFormer at 7 classes passed at 2400: +0.89 from 2400 to 4800): doubled again
sweep shape_colour per_pixel 7 9600
sweep shape_colour per_pixel_plus 7 9600
# still rising at 2400 steps: doubled again (MaskFormer at 19 markers too: its pass at 600 steps was contradicted by
# +10.3 from 1200 to 2400, HYPOTHESIS.md, "a pass that a later doubling contradicts does not count")
sweep shape_colour per_pixel 19,50,100 4800
sweep shape_colour per_pixel_plus 19 4800
sweep shape_colour maskformer 19,50 4800
sweep marker per_pixel 7,19 4800
sweep marker per_pixel_plus 7,19 4800
sweep marker maskformer 7,19 4800
# still rising at 2400 steps (PerPixelBaseline+ at 50 and 100 classes, +12.7 and +8.3 from 1200): doubled again
sweep shape_colour per_pixel_plus 50,100 4800
# still rising at 4800 steps (PerPixelBaseline at 19 and 50 Shapes classes, at 7 and 19 markers): doubled again;
# PerPixelBaseline at 7 Shapes classes flattened at 4800 (+0.71 from 4800 to 9600)
sweep shape_colour per_pixel 19,50 9600
sweep marker per_pixel 7,19 9600
# Shapes at 7 classes: every model has passed by 4800 steps (PerPixelBaseline+ +0.73 from 4800 to 9600), the first
# comparison length; equal time there, the time MaskFormer (the slowest per step) takes for 4800 steps, which is
# PerPixelBaseline's 10909 (MaskFormer's equal-time runs are its 4800-step runs, HYPOTHESIS.md)
equal_time shape_colour per_pixel 7 10909
equal_time shape_colour per_pixel_plus 7 10909
# still rising at 4800 steps (MaskFormer at 19 and 50 Shapes classes, +14.6 and +11.4 from 2400; PerPixelBaseline+ at 7 markers,
# +2.75): doubled again
sweep shape_colour maskformer 19,50 9600
sweep marker per_pixel_plus 7 9600
# still rising at 9600 steps (PerPixelBaseline at 19 Shapes classes, +4.69 from 4800): doubled again
sweep shape_colour per_pixel 19 19200
# still rising at 9600 steps (MaskFormer at 19 Shapes classes, +13.27 from 4800) and at 4800 (MaskFormer at 7 markers,
# +4.40 from 2400): doubled again
sweep shape_colour maskformer 19 19200
sweep marker maskformer 7 9600
# still rising at 4800 steps (MaskFormer at 19 markers, +40.10 from 2400) and at 9600 (PerPixelBaseline at 7 markers,
# +1.44 from 4800): doubled again
sweep marker maskformer 19 9600
sweep marker per_pixel 7 19200
# still rising at 9600 steps (PerPixelBaseline at 50 Shapes classes, +11.89 from 4800, and at 19 markers, +5.06) and
# at 4800 (PerPixelBaseline+ at 19 markers, +16.57 from 2400): doubled again
sweep shape_colour per_pixel 50 19200
sweep marker per_pixel 19 19200
sweep marker per_pixel_plus 19 9600

"""Under pytest (nbval) the notebooks run in their smoke mode: fewer steps, same cells, same asserts.

The committed outputs come from full runs (``jupyter nbconvert --execute``); ``SMOKE=0 python -m
pytest notebooks`` checks the full mode instead. The kernels nbval starts inherit this environment.
"""

import os

os.environ.setdefault("SMOKE", "1")
# One intra-op thread per kernel: on a 2-core machine shared with other jobs, two OpenMP threads that
# wait for a descheduled sibling made a training step 50x slower in our runs. The full runs are unaffected.
os.environ.setdefault("OMP_NUM_THREADS", "1")

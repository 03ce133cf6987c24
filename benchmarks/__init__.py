"""Performance benchmarks: ratios measured side by side in one process run (not timed unit tests).

    python -m benchmarks.run_all            # benchmarks 1-5 on CPU, writes benchmarks/results/
    python -m benchmarks.run_all --quick    # the same code paths at smoke sizes (< 1 minute)
    python -m benchmarks.gpu_check          # full-size SDXL architecture on a GPU (``--tiny``: on CPU)

See benchmarks/README.md for what each benchmark measures and how.
"""

import os

# Before torch (which imports tqdm) is imported: tqdm reads these once, and itd.experiment.generate's progress
# bars would otherwise interleave with the tables.
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

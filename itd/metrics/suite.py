"""Several metrics as one: ``metrics=paper`` is FID + ImageReward + PickScore + CLIP score.

Every metric has ``per_sample(images, prompts) -> columns`` (called batch by batch as images are
generated; 1-D columns go to samples.parquet, 2-D ones such as FID features to ``features/``) and
``aggregate(columns) -> numbers``; a metric that compares the two arms on the same prompts and seeds
(PickScore's win-rate) also has ``paired(other_columns, these_columns) -> numbers``.
"""

from __future__ import annotations

import numpy as np


class MetricSuite:
    """The union of named metrics; a metric set to null (e.g. ``metrics.fid=null``) is left out."""

    def __init__(self, **metrics):
        self.metrics = {name: m for name, m in metrics.items() if m is not None}

    def per_sample(self, images, prompts) -> dict[str, np.ndarray]:
        return {k: v for m in self.metrics.values() for k, v in m.per_sample(images, prompts).items()}

    def aggregate(self, columns: dict[str, np.ndarray]) -> dict[str, float]:
        return {k: v for m in self.metrics.values() for k, v in m.aggregate(columns).items()}

    def paired(self, other: dict[str, np.ndarray], these: dict[str, np.ndarray]) -> dict[str, float]:
        return {k: v for m in self.metrics.values() if hasattr(m, "paired") for k, v in m.paired(other, these).items()}

"""Digits metrics: Frechet distance in the judge's feature space (FD) and class accuracy.

FD is the FID recipe with the judge's penultimate features in place of Inception's, against all 1,797
real digits; the Frechet formula is clean-fid's. Accuracy (the judge's argmax equals the asked-for
class) is the prompt-alignment score, the analogue of ImageReward / PickScore.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from itd.data.digits import load_digits
from itd.models.toy import DigitsJudge, load_judge


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(features: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> float:
    from cleanfid.fid import frechet_distance as cleanfid_frechet

    mu, sigma = gaussian_stats(features)
    return float(cleanfid_frechet(mu, sigma, *reference))


@dataclass
class DigitsMetrics:
    """``per_sample(x, labels)`` -> columns for samples.parquet; ``aggregate(columns)`` -> fd, accuracy."""

    checkpoint: str | None = None
    batch_size: int = 4096
    judge: DigitsJudge = field(init=False, repr=False)
    reference: tuple[np.ndarray, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self):
        self.judge = load_judge(self.checkpoint)
        self.reference = gaussian_stats(self._features(load_digits()[0]))

    @torch.no_grad()
    def _features(self, x: Tensor) -> np.ndarray:
        return torch.cat([self.judge.features(b.float().cpu()) for b in x.split(self.batch_size)]).numpy()

    @torch.no_grad()
    def per_sample(self, x: Tensor, labels: Tensor) -> dict[str, np.ndarray]:
        """Judge features, correctness and class probability of the images ``x`` asked to show ``labels``."""
        feats = self._features(x)
        logits = self.judge.head(torch.from_numpy(feats))
        probs = logits.softmax(-1)
        labels = labels.cpu()
        return {
            "correct": (logits.argmax(-1) == labels).numpy(),
            "p_class": probs.gather(1, labels[:, None])[:, 0].numpy(),
            "features": feats,
        }

    def aggregate(self, columns: dict[str, np.ndarray]) -> dict[str, float]:
        """FD over all samples' features and mean accuracy, from the concatenated per-sample columns."""
        return {"fd": frechet_distance(columns["features"], self.reference), "accuracy": float(np.mean(columns["correct"]))}

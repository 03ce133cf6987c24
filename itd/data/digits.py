"""scikit-learn's bundled digits (1,797 images, 8x8, 10 classes), scaled to [-1, 1]."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from itd.denoisers import Cond
from itd.models.toy import IMAGE_SHAPE, NULL_LABEL, NUM_CLASSES


def load_digits() -> tuple[Tensor, Tensor]:
    """(images [1797, 8, 8] in [-1, 1], labels [1797]); pixel values 0..16 map to -1..1."""
    from sklearn.datasets import load_digits as sk_load

    data = sk_load()
    images = torch.tensor(data.images, dtype=torch.float32) / 8.0 - 1.0
    return images, torch.tensor(data.target, dtype=torch.long)


@dataclass
class DigitsPrompts:
    """Sample i asks for class ``i % 10``: a balanced, deterministic "prompt set" of ``num_samples``."""

    num_samples: int = 2000

    shape: tuple[int, ...] = IMAGE_SHAPE

    def __post_init__(self):
        if self.num_samples < 1:
            raise ValueError(f"data.num_samples={self.num_samples} must be >= 1")

    def labels(self, indices: Sequence[int]) -> Tensor:
        return torch.as_tensor(list(indices), dtype=torch.long) % NUM_CLASSES

    def cond(self, indices: Sequence[int], device: torch.device | str = "cpu") -> Cond:
        labels = self.labels(indices).to(device)
        return Cond({"labels": labels}, negative={"labels": torch.full_like(labels, NULL_LABEL)})

    def decode(self, x: Tensor) -> Tensor:
        """Latents to images: the digits live in pixel space, clipped to the data range [-1, 1]."""
        return x.clamp(-1.0, 1.0)

    def describe(self, indices: Sequence[int]) -> dict[str, list]:
        """Per-sample columns for samples.parquet."""
        return {"label": self.labels(indices).tolist()}

"""The digits world: scikit-learn's bundled digits (1,797 images, 8x8, 10 classes) scaled to [-1, 1]."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from itd.denoisers import Cond
from itd.io import atomic_write
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

    def __post_init__(self):
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise ValueError(f"data.num_samples={self.num_samples!r} must be an integer >= 1")

    def prompts_at(self, indices: Sequence[int]) -> Tensor:
        return torch.as_tensor(list(indices), dtype=torch.long) % NUM_CLASSES

    def describe(self, indices: Sequence[int]) -> dict[str, list]:
        """Per-sample columns for samples.parquet."""
        return {"label": self.prompts_at(indices).tolist()}


class NpyWriter:
    """Collects one method's samples and writes ``<method>.npy`` [N, 8, 8] on close (rows in seed, index order)."""

    def __init__(self, path: Path):
        self.path, self.parts = path, []

    def add(self, seed: int, indices: Sequence[int], images: Tensor) -> None:
        self.parts.append(images.float().cpu())

    def close(self) -> None:
        array = torch.cat(self.parts).numpy().astype(np.float32)
        atomic_write(self.path, lambda p: np.save(open(p, "wb"), array))


@dataclass
class DigitsWorld:
    """Conditioning, decoding and storage for digits: pixel space, class labels as prompts."""

    shape: tuple[int, ...] = field(default=IMAGE_SHAPE)

    def cond(self, labels: Tensor, device: torch.device | str = "cpu") -> Cond:
        labels = labels.to(device)
        return Cond({"labels": labels}, negative={"labels": torch.full_like(labels, NULL_LABEL)})

    def decode(self, x: Tensor) -> Tensor:
        """Latents to images: the digits live in pixel space, clipped to the data range [-1, 1]."""
        return x.clamp(-1.0, 1.0)

    def to_store(self, images: Tensor) -> np.ndarray:
        """Images as the sample store keeps them: float32, exact."""
        return images.float().cpu().numpy()

    def from_store(self, array: np.ndarray) -> Tensor:
        return torch.from_numpy(np.asarray(array, dtype=np.float32))

    def writer(self, out_dir: Path, method: str) -> NpyWriter:
        return NpyWriter(Path(out_dir) / f"{method}.npy")

"""Per-sample seeded noise streams (after EDM's StackedRandomGenerator).

Every draw is keyed by (seed, sample index, stream, step) and made on the CPU from its own generator,
so a sample's noise never depends on the batch it is in, the device, or whether another stream
(guidance's renoising, say) drew anything. Baseline and guided runs therefore share every draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

STREAMS = {"init": 1, "solver": 2, "renoise": 3, "renoise_timestep": 4}
_MASK = (1 << 64) - 1


def _mix(*words: int) -> int:
    """splitmix64 over the words: a well-spread 63-bit seed for ``torch.Generator.manual_seed``."""
    h = 0x9E3779B97F4A7C15
    for w in words:
        h = (h ^ (w & _MASK)) * 0xBF58476D1CE4E5B9 & _MASK
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & _MASK
        h ^= h >> 29
    return h >> 1


class NoiseStreams:
    """Noise for the samples ``indices`` of the run seeded ``seed``."""

    def __init__(self, seed: int, indices: Sequence[int], device: torch.device | str = "cpu"):
        self.seed, self.indices, self.device = int(seed), [int(i) for i in indices], torch.device(device)

    def _generators(self, stream: str, step: int):
        for i in self.indices:
            yield torch.Generator().manual_seed(_mix(self.seed, i, STREAMS[stream], step))

    def randn(self, stream: str, step: int, shape: Sequence[int]) -> Tensor:
        """N(0, I) of shape [len(indices), *shape]."""
        draws = [torch.randn(tuple(shape), generator=g) for g in self._generators(stream, step)]
        return torch.stack(draws).to(self.device)

    def randint(self, stream: str, step: int, low: int, high: int) -> Tensor:
        """One integer in [low, high) per sample, LongTensor [len(indices)]."""
        draws = [torch.randint(low, high, (1,), generator=g) for g in self._generators(stream, step)]
        return torch.cat(draws).to(self.device)


class SequentialNoise:
    """Batch-shaped draws from one generator, in call order: what a diffusers pipeline given
    ``generator=torch.Generator().manual_seed(seed)`` draws (initial latents, then each scheduler step).

    For parity checks against diffusers only: unlike ``NoiseStreams``, a sample's noise here depends on
    its batch and on every earlier draw, so baseline and guided runs do not share it.
    """

    def __init__(self, seed: int, batch_size: int, device: torch.device | str = "cpu"):
        self.generator = torch.Generator().manual_seed(int(seed))
        self.indices, self.device = list(range(batch_size)), torch.device(device)

    def randn(self, stream: str, step: int, shape: Sequence[int]) -> Tensor:
        return torch.randn((len(self.indices), *shape), generator=self.generator).to(self.device)

    def randint(self, stream: str, step: int, low: int, high: int) -> Tensor:
        return torch.randint(low, high, (len(self.indices),), generator=self.generator).to(self.device)

"""Variance-preserving noise schedule and the timestep recipes of the students.

x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * eps on integer timesteps t in {0..T-1}.
The timestep ``CLEAN`` (-1) stands for the end of sampling, abar = 1 (x = x0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

CLEAN = -1  # pseudo-timestep after the last step: abar = 1


class NoiseSchedule:
    """abar_t table of a VP diffusion; ``alpha(t)`` maps timesteps (with ``CLEAN``) to abar."""

    def __init__(self, alphas_cumprod: Tensor):
        self.alphas_cumprod = alphas_cumprod.to(torch.float32)
        self.num_train_timesteps = len(alphas_cumprod)
        # One trailing 1.0, so that indexing with CLEAN (-1) gives abar = 1.
        self._table = torch.cat([self.alphas_cumprod, self.alphas_cumprod.new_ones(1)])
        self._on_device = {self._table.device: self._table}

    @classmethod
    def scaled_linear(cls, beta_start: float = 0.00085, beta_end: float = 0.012, num_train_timesteps: int = 1000):
        """SDXL's schedule, computed exactly as diffusers does (float32 linspace of sqrt(beta), squared)."""
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2
        return cls(torch.cumprod(1.0 - betas, dim=0))

    def alpha(self, t: Tensor) -> Tensor:
        """abar at integer timesteps ``t`` (any shape, on t's device); ``CLEAN`` gives 1."""
        t = torch.as_tensor(t, dtype=torch.long)
        table = self._on_device.get(t.device)
        if table is None:  # one host-to-device copy per device, not one per call
            table = self._on_device[t.device] = self._table.to(t.device)
        return table[t]

    def sigma(self, t: Tensor) -> Tensor:
        """sqrt((1 - abar) / abar): the noise-to-signal ratio (EDM's sigma) at ``t``."""
        a = self.alpha(t)
        return ((1 - a) / a).sqrt()


# Timestep recipes: (num_steps) -> descending list of ints. Built in configs with ``_partial_: true``.


def lcm_timesteps(num_steps: int, original_steps: int = 50, num_train_timesteps: int = 1000) -> list[int]:
    """LCM's selection from its skipping-step grid (diffusers LCMScheduler.set_timesteps, strength 1).

    The grid is k-1, 2k-1, ..., T-1 with k = T // original_steps; ``num_steps`` of its entries are
    taken at floor(linspace(0, original_steps, num_steps, endpoint=False)) from the top.
    4 steps of a 50-step grid: 999, 759, 499, 259.
    """
    if not 1 <= num_steps <= original_steps:
        raise ValueError(f"lcm_timesteps: num_steps={num_steps} must be in [1, original_steps={original_steps}]")
    k = num_train_timesteps // original_steps
    grid = (np.arange(1, original_steps + 1) * k - 1)[::-1]
    idx = np.floor(np.linspace(0, original_steps, num=num_steps, endpoint=False)).astype(np.int64)
    return [int(t) for t in grid[idx]]


def trailing_timesteps(num_steps: int, num_train_timesteps: int = 1000) -> list[int]:
    """'trailing' spacing (Lin et al. 2024, "Common diffusion noise schedules ... are flawed"): starts at T-1.

    4 steps: 999, 749, 499, 249 (SDXL-Lightning, SDXL-Turbo).
    """
    ratio = num_train_timesteps / num_steps
    return [int(t) - 1 for t in np.round(np.arange(num_train_timesteps, 0, -ratio))]


def leading_timesteps(num_steps: int, num_train_timesteps: int = 1000, steps_offset: int = 1) -> list[int]:
    """'leading' spacing with an offset (SDXL-base's default schedulers; never starts at T-1)."""
    ratio = num_train_timesteps // num_steps
    return [int(t) + steps_offset for t in (np.arange(0, num_steps) * ratio).round()[::-1]]


def explicit_timesteps(num_steps: int, timesteps: Sequence[int]) -> list[int]:
    """A fixed list from a model card (DMD2: 999, 749, 499, 249)."""
    if len(timesteps) != num_steps:
        raise ValueError(f"explicit timesteps {list(timesteps)} do not have num_steps={num_steps} entries")
    return [int(t) for t in timesteps]


def check_timesteps(timesteps: Sequence[int], num_train_timesteps: int = 1000) -> list[int]:
    """Validate a recipe's output: strictly decreasing, inside [0, T)."""
    ts = [int(t) for t in timesteps]
    if not ts or any(a <= b for a, b in zip(ts, ts[1:])) or ts[0] >= num_train_timesteps or ts[-1] < 0:
        raise ValueError(f"timesteps must strictly decrease inside [0, {num_train_timesteps}): got {ts}")
    return ts

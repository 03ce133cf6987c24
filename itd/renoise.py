"""Step 1 of Distillation++: renoise the student's clean estimate to a timestep s for the teacher.

x_s = sqrt(abar_s) * x0_hat + sqrt(1 - abar_s) * z, with s from a *timestep rule* and z from a *noise rule*.
Rules are small functions selected in the configs (``renoiser=next|same|random``,
``renoiser/noise=fresh|deterministic``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from itd.denoisers import Prediction, append_dims
from itd.noise import NoiseStreams
from itd.sampling import StepContext
from itd.schedule import CLEAN, NoiseSchedule

# --- timestep rules: (ctx, streams) -> s, LongTensor [B] -----------------------------------------


@dataclass(frozen=True)
class NextTimestep:
    """s = t_{i+1}: the paper's "decreasing" schedule, s = t - dt (undefined at the last step)."""

    def __call__(self, ctx: StepContext, streams: NoiseStreams) -> Tensor:
        if ctx.t_next == CLEAN:
            raise ValueError(f"renoiser=next has no next timestep at the last step ({ctx.i}); guide earlier steps")
        return torch.full((len(streams.indices),), ctx.t_next, dtype=torch.long, device=streams.device)


next_timestep = NextTimestep()


def same_timestep(ctx: StepContext, streams: NoiseStreams) -> Tensor:
    """s = t_i: the teacher sees the student's own noise level."""
    return torch.full((len(streams.indices),), ctx.t, dtype=torch.long, device=streams.device)


@dataclass(frozen=True)
class RandomTimestep:
    """s ~ U{low, ..., high} per sample, as in score distillation sampling (Poole et al. 2022)."""

    low: int = 20
    high: int = 980

    def __post_init__(self):
        if not 0 <= self.low <= self.high:
            raise ValueError(f"random timestep rule: need 0 <= low <= high, got low={self.low} high={self.high}")

    def __call__(self, ctx: StepContext, streams: NoiseStreams) -> Tensor:
        return streams.randint("renoise_timestep", ctx.i, self.low, self.high + 1)


# --- noise rules: (pred, ctx, streams) -> z ------------------------------------------------------


def fresh_noise(pred: Prediction, ctx: StepContext, streams: NoiseStreams) -> Tensor:
    """z ~ N(0, I) from the renoise stream (never touches the solver's or the initial draws)."""
    return streams.randn("renoise", ctx.i, pred.x0.shape[1:]).to(pred.x0.dtype)


def deterministic_noise(pred: Prediction, ctx: StepContext, streams: NoiseStreams) -> Tensor:
    """z = eps_hat: DDIM-style, re-uses the student's own noise estimate."""
    return pred.eps


@dataclass(frozen=True)
class Renoiser:
    timestep: Callable[[StepContext, NoiseStreams], Tensor]
    noise: Callable[[Prediction, StepContext, NoiseStreams], Tensor]

    def __call__(
        self, pred: Prediction, ctx: StepContext, streams: NoiseStreams, schedule: NoiseSchedule
    ) -> tuple[Tensor, Tensor]:
        """(x_s, s) for the teacher query."""
        s = self.timestep(ctx, streams)
        a = append_dims(schedule.alpha(s), pred.x0)
        return a.sqrt() * pred.x0 + (1 - a).sqrt() * self.noise(pred, ctx, streams), s

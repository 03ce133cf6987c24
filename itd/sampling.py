"""The sampling loop: student -> (teacher guidance) -> solver, over the student's timesteps.

No I/O and no global RNG: all noise comes from ``NoiseStreams``; observers hang off ``callback``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from itd.denoisers import Cond, Denoiser, Prediction
from itd.noise import NoiseStreams
from itd.schedule import CLEAN, NoiseSchedule
from itd.solvers import VP

Solver = Callable[[Tensor, Prediction, Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class StepContext:
    """Step i of num_steps, from timestep t to t_next (``CLEAN`` after the last step)."""

    i: int
    t: int
    t_next: int
    num_steps: int


@dataclass(frozen=True)
class StepInfo:
    """What one step did, for callbacks: the context, the VP latent the networks saw, the (possibly
    guided) prediction, the solver's next state, and the cost."""

    ctx: StepContext
    x: Tensor
    pred: Prediction
    x_next: Tensor
    guided: bool
    student_forwards: int
    teacher_forwards: int


class Guidance(Protocol):
    def active(self, i: int) -> bool: ...

    def __call__(
        self, x: Tensor, pred: Prediction, ctx: StepContext, cond: Cond, streams: NoiseStreams
    ) -> tuple[Prediction, int]: ...


@torch.no_grad()
def sample(
    student: Denoiser,
    solver: Solver,
    timesteps: Sequence[int],
    schedule: NoiseSchedule,
    cond: Cond,
    streams: NoiseStreams,
    shape: Sequence[int],
    guidance: Guidance | None = None,
    callback: Callable[[StepInfo], None] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw len(streams.indices) samples of ``shape`` (per sample); returns the final x [B, *shape].

    The solver's state lives in its own coordinates (``solver.coords``); the student, the guidance and
    the callback see VP latents. After the last step (abar = 1) both coordinates are the clean sample.
    """
    coords = getattr(solver, "coords", VP)
    stochastic = getattr(solver, "stochastic", True)
    batch = len(streams.indices)
    steps = list(timesteps) + [CLEAN]
    x = coords.init(streams.randn("init", 0, shape).to(dtype), schedule.alpha(torch.full((batch,), steps[0])))
    for i, (t, t_next) in enumerate(zip(steps, steps[1:])):
        ctx = StepContext(i, int(t), int(t_next), len(timesteps))
        t_vec = torch.full((batch,), ctx.t, dtype=torch.long, device=x.device)
        alpha, alpha_next = schedule.alpha(t_vec), schedule.alpha(torch.full_like(t_vec, ctx.t_next))
        x_in = coords.to_model(x, alpha)
        pred = student(x_in, t_vec, cond)
        guided = guidance is not None and guidance.active(i)
        teacher_forwards = 0
        if guided:
            pred, teacher_forwards = guidance(x_in, pred, ctx, cond, streams)
        noise = streams.randn("solver", i, shape).to(dtype) if stochastic else None  # deterministic solvers need none
        x_next = solver(x, pred, alpha, alpha_next, noise)
        if callback is not None:
            callback(StepInfo(ctx, x_in, pred, x_next, guided, student.forwards, teacher_forwards))
        x = x_next
    return x


class NFECounter:
    """Callback that counts network calls per sample: student steps, teacher calls, forward passes."""

    def __init__(self):
        self.student_calls = self.teacher_calls = self.forwards = 0

    def __call__(self, info: StepInfo) -> None:
        if info.ctx.i == 0:  # one count per sample trajectory, whatever the batch
            self.student_calls = self.teacher_calls = self.forwards = 0
        self.student_calls += 1
        self.teacher_calls += int(info.guided)
        self.forwards += info.student_forwards + info.teacher_forwards

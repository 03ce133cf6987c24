"""Teacher guidance (Distillation++, Park, Lee & Ye 2024, arXiv 2412.08871, Sec. 3).

At the guided steps the student's estimate is renoised to s (``itd.renoise``), denoised by the
teacher(s) with classifier-free guidance at s, and combined with the student's prediction:

- x0-form (paper, eq. 10):   x0 <- (1 - lam) * x0_student + lam * x0_teacher(s)
- eps-form (authors' code):  eps <- eps_student + lam * (eps_teacher(s) - eps_student), x0 re-derived at t

The solver then continues from the combined prediction exactly as without guidance. Several teachers
combine convexly (sum_j w_j * prediction_j) before either form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from itd.denoisers import Cond, Denoiser, Prediction, eps_from_x0, x0_from_eps
from itd.noise import NoiseStreams
from itd.renoise import NextTimestep, Renoiser
from itd.sampling import StepContext
from itd.schedule import NoiseSchedule

FORMS = ("x0", "eps")


class ConfigError(ValueError):
    """A configuration that cannot run; raised before any model is built."""


def check_weights(weights: Sequence[float] | None, num_teachers: int) -> list[float]:
    """Convex weights over the teachers (``None``: uniform)."""
    weights = [1.0 / num_teachers] * num_teachers if weights is None else list(weights)
    if len(weights) != num_teachers or any(w < 0 for w in weights) or abs(sum(weights) - 1) > 1e-6:
        raise ConfigError(f"guidance.weights={weights} must be {num_teachers} non-negative numbers summing to 1")
    return weights


@dataclass(frozen=True)
class GuidancePlan:
    """Which steps are guided and how strongly: checked against the student's step count up front.

    steps: k (an int: the first k steps) or an explicit list of step indices.
    lam: one value for every guided step, or one per step index (0 where unguided is fine).
    eps_rule (x0-form only): after changing x0, ``rederive`` eps from it at x_t, or ``keep`` the
    student's eps (matters for solvers that use eps, such as DDIM).
    """

    form: str = "eps"
    lam: float | Sequence[float] = 0.2
    steps: int | Sequence[int] = 1
    eps_rule: str = "rederive"

    def guided_steps(self) -> list[int]:
        return list(range(self.steps)) if isinstance(self.steps, int) else sorted(set(int(i) for i in self.steps))

    def lam_at(self, i: int) -> float:
        return float(self.lam) if isinstance(self.lam, (int, float)) else float(self.lam[i])

    def validate(self, num_steps: int, renoiser: Renoiser | None = None) -> None:
        if self.form not in FORMS:
            raise ConfigError(f"guidance.form={self.form!r} is not one of {FORMS}")
        if self.eps_rule not in ("rederive", "keep"):
            raise ConfigError(f"guidance.eps_rule={self.eps_rule!r} must be 'rederive' or 'keep'")
        if isinstance(self.steps, int) and not 0 <= self.steps <= num_steps:
            raise ConfigError(f"guidance.steps={self.steps} (k) must be in [0, {num_steps}], the student's step count")
        steps = self.guided_steps()
        if any(not 0 <= i < num_steps for i in steps):
            raise ConfigError(f"guidance.steps={list(self.steps)} must index steps 0..{num_steps - 1}")
        if not isinstance(self.lam, (int, float)) and len(self.lam) != num_steps:
            raise ConfigError(f"guidance.lam has {len(self.lam)} values; a per-step list needs one per step ({num_steps})")
        for i in steps:
            lam = self.lam_at(i)
            if not 0.0 <= lam <= 1.0:
                raise ConfigError(
                    f"guidance.lam={lam} at step {i} is outside [0, 1], the interpolation range of the "
                    f"{self.form}-form; pick 0 <= lam <= 1"
                )
        if renoiser is not None and isinstance(renoiser.timestep, NextTimestep) and num_steps - 1 in steps:
            raise ConfigError(
                f"renoiser=next needs a next timestep, but step {num_steps - 1} is the last; "
                f"use guidance.steps <= {num_steps - 1} or renoiser=same|random"
            )


@dataclass
class TeacherGuidance:
    """Wraps the student's prediction at guided steps; ``__call__`` returns (prediction, teacher forwards)."""

    plan: GuidancePlan
    teachers: Sequence[Denoiser]
    renoiser: Renoiser
    schedule: NoiseSchedule = field(repr=False)
    weights: Sequence[float] | None = None

    def __post_init__(self):
        self.weights = check_weights(self.weights, len(self.teachers))

    def active(self, i: int) -> bool:
        """Guided at step i with a non-zero lam (lam = 0 skips the teacher: the output is the student's, bit for bit)."""
        return i in self.plan.guided_steps() and self.plan.lam_at(i) != 0.0

    def __call__(
        self, x: torch.Tensor, pred: Prediction, ctx: StepContext, cond: Cond, streams: NoiseStreams
    ) -> tuple[Prediction, int]:
        # 1. Renoise the student's estimate to s.
        x_s, s = self.renoiser(pred, ctx, streams, self.schedule)
        # 2. Teacher(s) at s, with their own CFG; convex combination across teachers.
        outs = [teacher(x_s, s, cond) for teacher in self.teachers]
        x0_t = sum(w * o.x0 for w, o in zip(self.weights, outs))
        eps_t = sum(w * o.eps for w, o in zip(self.weights, outs))
        # 3. Combine with the student's prediction at t.
        lam, alpha = self.plan.lam_at(ctx.i), self.schedule.alpha(torch.full_like(s, ctx.t))
        if self.plan.form == "x0":
            x0 = torch.lerp(pred.x0, x0_t, lam)
            eps = eps_from_x0(x, x0, alpha) if self.plan.eps_rule == "rederive" else pred.eps
        else:
            eps = torch.lerp(pred.eps, eps_t, lam)
            x0 = x0_from_eps(x, eps, alpha)
        return Prediction(x0, eps), sum(t.forwards for t in self.teachers)

"""The one denoiser contract: ``denoiser(x_t, t, cond) -> Prediction(x0, eps)``.

Every network (student, teacher, a CFG or a guided combination) is wrapped once, at load time, into
this call. x_t: [B, ...] ordinary VP latents; t: LongTensor [B] of training timesteps. eps/x0/consistency
conversions live only in the adapters below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor, nn

from itd.schedule import NoiseSchedule


@dataclass(frozen=True)
class Prediction:
    """A clean estimate and the noise that is consistent with it at the queried x_t and t."""

    x0: Tensor
    eps: Tensor


@dataclass(frozen=True)
class Cond:
    """Batch-first keyword tensors for the network; ``negative`` feeds CFG's unconditional branch."""

    kwargs: dict[str, Tensor]
    negative: dict[str, Tensor] | None = None


class Denoiser(Protocol):
    #: Network forward passes per sample in one call (CFG counts its two branches), for NFE accounting.
    forwards: int

    def __call__(self, x: Tensor, t: Tensor, cond: Cond) -> Prediction: ...


def append_dims(a: Tensor, x: Tensor) -> Tensor:
    """A per-sample [B] tensor shaped to broadcast against x [B, ...], on x's device and dtype."""
    return a.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def x0_from_eps(x: Tensor, eps: Tensor, alpha: Tensor) -> Tensor:
    a = append_dims(alpha, x)
    return (x - (1 - a).sqrt() * eps) / a.sqrt()


def eps_from_x0(x: Tensor, x0: Tensor, alpha: Tensor) -> Tensor:
    a = append_dims(alpha, x)
    return (x - a.sqrt() * x0) / (1 - a).sqrt()


class EpsDenoiser(nn.Module):
    """Adapter for an eps-prediction network ``net(x, t, **cond.kwargs) -> eps``."""

    forwards = 1

    def __init__(self, net: nn.Module, schedule: NoiseSchedule):
        super().__init__()
        self.net, self.schedule = net, schedule

    def forward(self, x: Tensor, t: Tensor, cond: Cond) -> Prediction:
        eps = self.net(x, t, **cond.kwargs)
        return Prediction(x0_from_eps(x, eps, self.schedule.alpha(t)), eps)


class ConsistencyDenoiser(nn.Module):
    """Adapter for a latent consistency model (Luo et al. 2023, LCM), eps-parameterised.

    x0 = c_skip(t) * x_t + c_out(t) * x0_eps with EDM-style boundary coefficients at scaled time t*s
    (sigma_data 0.5, s = 10, as diffusers' LCMScheduler); eps is re-derived so it is consistent with x0
    (solvers that need the network's raw eps, such as Euler, do not pair with consistency students).
    """

    forwards = 1

    def __init__(self, net: nn.Module, schedule: NoiseSchedule, sigma_data: float = 0.5, timestep_scaling: float = 10.0):
        super().__init__()
        self.net, self.schedule = net, schedule
        self.sigma_data, self.timestep_scaling = sigma_data, timestep_scaling

    def boundary(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(c_skip, c_out) at timesteps t, in float32 as diffusers' LCMScheduler; c_skip(0) = 1, c_out(0) = 0."""
        st = t.clamp(min=0) * self.timestep_scaling
        sd2 = self.sigma_data**2
        return sd2 / (st**2 + sd2), st / (st**2 + sd2) ** 0.5

    def forward(self, x: Tensor, t: Tensor, cond: Cond) -> Prediction:
        alpha = self.schedule.alpha(t)
        c_skip, c_out = self.boundary(t)
        x0 = append_dims(c_skip, x) * x + append_dims(c_out, x) * x0_from_eps(x, self.net(x, t, **cond.kwargs), alpha)
        return Prediction(x0, eps_from_x0(x, x0, alpha))


@dataclass
class CFGDenoiser:
    """Classifier-free guidance (Ho & Salimans 2022): eps = eps_u + w * (eps_c - eps_u).

    Both branches run as one batched call [negative, positive]; ``scale == 1`` skips the
    unconditional branch. Requires ``cond.negative``.
    """

    denoiser: Denoiser
    scale: float
    schedule: NoiseSchedule = field(repr=False)

    @property
    def forwards(self) -> int:
        return self.denoiser.forwards * (1 if self.scale == 1 else 2)

    def __call__(self, x: Tensor, t: Tensor, cond: Cond) -> Prediction:
        if self.scale == 1:
            return self.denoiser(x, t, cond)
        if cond.negative is None:
            raise ValueError("classifier-free guidance needs cond.negative (the unconditional inputs)")
        both = Cond({k: torch.cat([cond.negative[k], v]) for k, v in cond.kwargs.items()})
        eps_u, eps_c = self.denoiser(torch.cat([x, x]), torch.cat([t, t]), both).eps.chunk(2)
        eps = eps_u + self.scale * (eps_c - eps_u)
        return Prediction(x0_from_eps(x, eps, self.schedule.alpha(t)), eps)

"""Stateless solver steps: ``solver(x, pred, alpha, alpha_next, noise) -> x_next``.

``alpha`` and ``alpha_next`` are abar at t and t_next, shape [B] (abar_next = 1 after the last step);
``noise`` is a fresh N(0, I) draw of x's shape, used only by the stochastic solvers. No step counters.

Each solver keeps its state ``x`` in the coordinates of the diffusers scheduler it reproduces, so that
its loop matches diffusers bit for bit: ``VP`` (the noisy latent itself: LCM, DDIM) or ``SIGMA``
(x / sqrt(abar), k-diffusion / EDM style: Euler, Euler ancestral). ``solver.coords`` says which; the
sampling loop feeds the networks VP latents either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from itd.denoisers import Prediction, append_dims


def sigma_of(alpha: Tensor) -> Tensor:
    """sigma = sqrt((1 - abar) / abar), computed as diffusers' Euler schedulers do (0 at abar = 1)."""
    return ((1 - alpha) / alpha) ** 0.5


@dataclass(frozen=True)
class Coords:
    """How a solver's state maps to the network input, and how sampling starts."""

    name: str
    sigma_space: bool

    def init(self, noise: Tensor, alpha_first: Tensor) -> Tensor:
        """The state at the first timestep from N(0, I) noise (diffusers: ``latents * init_noise_sigma``)."""
        return noise * sigma_of(alpha_first).max() if self.sigma_space else noise

    def to_model(self, x: Tensor, alpha: Tensor) -> Tensor:
        """The VP latent the networks see (diffusers: ``scale_model_input``)."""
        return x / ((append_dims(sigma_of(alpha), x) ** 2 + 1) ** 0.5) if self.sigma_space else x

    def from_model(self, x: Tensor, alpha: Tensor) -> Tensor:
        """The inverse of ``to_model`` (up to rounding)."""
        return x * ((append_dims(sigma_of(alpha), x) ** 2 + 1) ** 0.5) if self.sigma_space else x


VP = Coords("vp", sigma_space=False)
SIGMA = Coords("sigma", sigma_space=True)


def _coords(c: Coords, stochastic: bool):
    """Mark a solver with its coordinates and whether it uses ``noise`` (the loop draws none otherwise)."""

    def mark(fn):
        fn.coords, fn.stochastic = c, stochastic
        return fn

    return mark


@_coords(VP, stochastic=True)
def lcm(x: Tensor, pred: Prediction, alpha: Tensor, alpha_next: Tensor, noise: Tensor) -> Tensor:
    """LCM multistep sampling (Luo et al. 2023, Alg. 3): renoise the clean estimate with fresh noise."""
    a = append_dims(alpha_next, x)
    return a.sqrt() * pred.x0 + (1 - a).sqrt() * noise


@_coords(VP, stochastic=False)
def ddim(x: Tensor, pred: Prediction, alpha: Tensor, alpha_next: Tensor, noise: Tensor) -> Tensor:
    """DDIM, eta = 0 (Song et al. 2021, eq. 12); Euler on the probability-flow ODE in VP coordinates."""
    a = append_dims(alpha_next, x)
    return a.sqrt() * pred.x0 + (1 - a).sqrt() * pred.eps


@_coords(SIGMA, stochastic=False)
def euler(x: Tensor, pred: Prediction, alpha: Tensor, alpha_next: Tensor, noise: Tensor) -> Tensor:
    """Euler on the probability-flow ODE in sigma coordinates (Karras et al. 2022, Alg. 1 without churn).

    Mathematically DDIM; written as diffusers' EulerDiscreteScheduler (eps-prediction) so it matches it exactly.
    """
    sigma, sigma_next = append_dims(sigma_of(alpha), x), append_dims(sigma_of(alpha_next), x)
    x0 = x - sigma * pred.eps
    return x + (x - x0) / sigma * (sigma_next - sigma)


@_coords(SIGMA, stochastic=True)
def euler_ancestral(x: Tensor, pred: Prediction, alpha: Tensor, alpha_next: Tensor, noise: Tensor) -> Tensor:
    """Euler ancestral, eta = 1 (k-diffusion ``sample_euler_ancestral``; diffusers EulerAncestralDiscreteScheduler).

    sigma_up = sqrt(s'^2 (s^2 - s'^2) / s^2), sigma_down = sqrt(s'^2 - sigma_up^2): a deterministic
    step to sigma_down, then fresh noise of scale sigma_up.
    """
    sigma, sigma_next = append_dims(sigma_of(alpha), x), append_dims(sigma_of(alpha_next), x)
    x0 = x - sigma * pred.eps
    sigma_up = (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2) ** 0.5
    sigma_down = (sigma_next**2 - sigma_up**2) ** 0.5
    return x + (x - x0) / sigma * (sigma_down - sigma) + noise * sigma_up

"""Stateless solver steps in VP coordinates: ``solver(x, pred, alpha, alpha_next, noise) -> x_next``.

``alpha`` and ``alpha_next`` are abar at t and t_next, shape [B] (abar_next = 1 after the last step);
``noise`` is a fresh N(0, I) draw of x's shape, used only by the stochastic solvers. No step counters.
"""

from __future__ import annotations

from torch import Tensor

from itd.denoisers import Prediction, append_dims


def lcm(x: Tensor, pred: Prediction, alpha: Tensor, alpha_next: Tensor, noise: Tensor) -> Tensor:
    """LCM multistep sampling (Luo et al. 2023, Alg. 3): renoise the clean estimate with fresh noise."""
    a = append_dims(alpha_next, x)
    return a.sqrt() * pred.x0 + (1 - a).sqrt() * noise


def ddim(x: Tensor, pred: Prediction, alpha: Tensor, alpha_next: Tensor, noise: Tensor) -> Tensor:
    """DDIM, eta = 0 (Song et al. 2021, eq. 12); Euler on the probability-flow ODE in VP coordinates."""
    a = append_dims(alpha_next, x)
    return a.sqrt() * pred.x0 + (1 - a).sqrt() * pred.eps


def euler_ancestral(x: Tensor, pred: Prediction, alpha: Tensor, alpha_next: Tensor, noise: Tensor) -> Tensor:
    """Euler ancestral, eta = 1 (k-diffusion ``sample_euler_ancestral``), written in VP coordinates.

    With sigma = sqrt((1 - abar) / abar): sigma_up = sqrt(s'^2 (s^2 - s'^2) / s^2), sigma_down =
    sqrt(s'^2 - sigma_up^2); the step to sigma_down is deterministic, sigma_up is fresh noise.
    """
    a, a_next = append_dims(alpha, x), append_dims(alpha_next, x)
    s2, s2_next = (1 - a) / a, (1 - a_next) / a_next
    up2 = s2_next * (s2 - s2_next) / s2
    down = (s2_next - up2).clamp(min=0).sqrt()
    return a_next.sqrt() * (pred.x0 + down * pred.eps + up2.sqrt() * noise)

"""Each solver against closed-form results with the ideal denoiser of Gaussian data (design.md §1)."""

import pytest
import torch

from itd import solvers
from itd.denoisers import Cond
from itd.noise import NoiseStreams
from itd.sampling import sample
from itd.schedule import lcm_timesteps, trailing_timesteps
from tests.conftest import GaussianDenoiser

MU = 0.3


def _noisy(schedule, t, std, n=200_000, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = schedule.alpha(torch.tensor(t))
    x0 = MU + std * torch.randn(n, 1, generator=g)
    eps = torch.randn(n, 1, generator=g)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps, eps, torch.randn(n, 1, generator=g)


def _step(schedule, solver, den, x, t, t_next, noise):
    """One step from the VP latent x, through the solver's own coordinates, back to VP."""
    tv = torch.full((len(x),), t)
    alpha, alpha_next = schedule.alpha(tv), schedule.alpha(torch.full_like(tv, t_next))
    state = solver(solver.coords.from_model(x, alpha), den(x, tv), alpha, alpha_next, noise)
    return solver.coords.to_model(state, alpha_next)


@pytest.mark.parametrize("t, t_next", [(999, 759), (759, 259), (259, -1)])
def test_point_mass_data_every_solver_is_exact(schedule, t, t_next):
    """Data at a single point: the ideal denoiser recovers (mu, eps) exactly, so every solver lands on the true x_{t'}."""
    den = GaussianDenoiser(MU, 0.0, schedule)
    x, eps, z = _noisy(schedule, t, 0.0)
    a2 = schedule.alpha(torch.tensor(t_next))
    for ode in (solvers.ddim, solvers.euler):
        out = _step(schedule, ode, den, x, t, t_next, z)
        torch.testing.assert_close(out, a2.sqrt() * MU + (1 - a2).sqrt() * eps, atol=1e-5, rtol=0)  # same path
    lcm = _step(schedule, solvers.lcm, den, x, t, t_next, z)
    torch.testing.assert_close(lcm, a2.sqrt() * MU + (1 - a2).sqrt() * z, atol=1e-5, rtol=0)  # fresh noise
    anc = _step(schedule, solvers.euler_ancestral, den, x, t, t_next, z)
    assert anc.mean().item() == pytest.approx(a2.sqrt().item() * MU, abs=1e-2)
    assert anc.var().item() == pytest.approx((1 - a2).item(), abs=1e-2 + 0.02 * (1 - a2).item())


@pytest.mark.parametrize("t, t_next", [(999, 759), (499, 249)])
def test_gaussian_data_one_step_variances(schedule, t, t_next):
    """x0 ~ N(mu, s^2): each step's output variance has a closed form in sigma = sqrt((1 - abar) / abar)."""
    s = 0.5
    den = GaussianDenoiser(MU, s, schedule)
    x, _, z = _noisy(schedule, t, s)
    a, a2 = schedule.alpha(torch.tensor(t)).double(), schedule.alpha(torch.tensor(t_next)).double()
    sig2, sig2n = (1 - a) / a, (1 - a2) / a2
    k = s**2 / (s**2 + sig2)  # x0_hat - mu = k (x_t / sqrt(a) - mu)
    var_y = s**2 + sig2  # variance of x_t / sqrt(a)
    expected = {
        solvers.lcm: a2 * k**2 * var_y + (1 - a2),
        solvers.ddim: a2 * (k + sig2n.sqrt() * (1 - k) / sig2.sqrt()) ** 2 * var_y,
    }
    expected[solvers.euler] = expected[solvers.ddim]
    up2 = sig2n * (sig2 - sig2n) / sig2
    down = (sig2n - up2).sqrt()
    expected[solvers.euler_ancestral] = a2 * ((k + down * (1 - k) / sig2.sqrt()) ** 2 * var_y + up2)
    for solver, var in expected.items():
        out = _step(schedule, solver, den, x, t, t_next, z)
        assert out.var().item() == pytest.approx(var.item(), rel=0.02), solver.__name__
        assert out.mean().item() == pytest.approx((a2.sqrt() * MU).item(), abs=0.01), solver.__name__


def _closed_form(schedule, solver, timesteps, s):
    """Mean and std of the sampler's output, propagated exactly: with Gaussian data every step is affine,
    x' = A x + B + R z, with x0_hat = c0 + g x the posterior mean; the start is x_T ~ N(0, 1) in the
    solver's coordinates (for sigma-space solvers, sigma_max * z: VP variance 1 - abar_T, as diffusers)."""
    m, v = 0.0, (1.0 - schedule.alpha(torch.tensor(timesteps[0])).item()) if solver.coords.sigma_space else 1.0
    steps = [*timesteps, -1]
    for t, t_next in zip(steps, steps[1:]):
        a, a2 = (schedule.alpha(torch.tensor(u)).double().item() for u in (t, t_next))
        g = a**0.5 * s**2 / (a * s**2 + 1 - a)
        c0 = MU * (1 - g * a**0.5)
        sig2, sig2n = (1 - a) / a, (1 - a2) / a2
        up = (sig2n * (sig2 - sig2n) / sig2) ** 0.5
        down = max(sig2n - up**2, 0.0) ** 0.5
        P, Q, R = {  # x' = P x0_hat + Q eps_hat + R z
            solvers.lcm: (a2**0.5, 0.0, (1 - a2) ** 0.5),
            solvers.ddim: (a2**0.5, (1 - a2) ** 0.5, 0.0),
            solvers.euler: (a2**0.5, (1 - a2) ** 0.5, 0.0),
            solvers.euler_ancestral: (a2**0.5, a2**0.5 * down, a2**0.5 * up),
        }[solver]
        A = P * g + Q * (1 - a**0.5 * g) / (1 - a) ** 0.5
        B = P * c0 - Q * a**0.5 * c0 / (1 - a) ** 0.5
        m, v = A * m + B, A**2 * v + R**2
    return m, v**0.5


@pytest.mark.parametrize("solver", [solvers.lcm, solvers.ddim, solvers.euler, solvers.euler_ancestral])
@pytest.mark.parametrize("timesteps", [lcm_timesteps(4), trailing_timesteps(4), trailing_timesteps(50)])
def test_sampling_loop_matches_closed_form(schedule, solver, timesteps):
    s = 0.5
    den = GaussianDenoiser(MU, s, schedule)
    x = sample(den, solver, timesteps, schedule, Cond({}), NoiseStreams(0, range(400)), (8, 8))
    mean, std = _closed_form(schedule, solver, timesteps, s)
    assert x.mean().item() == pytest.approx(mean, abs=0.01)
    assert x.std().item() == pytest.approx(std, rel=0.02)


"""Our stateless loop reproduces diffusers' scheduler loops bit for bit (the correctness anchor).

The network is a small random conv net; the diffusers side is the StableDiffusionXLPipeline denoising
loop (``latents * init_noise_sigma``, ``scale_model_input``, ``step``) with one seeded generator, and
ours draws the same numbers through ``SequentialNoise``.
"""

import pytest
import torch
from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, LCMScheduler
from torch import nn

from itd import solvers
from itd.denoisers import Cond, ConsistencyDenoiser, EpsDenoiser
from itd.noise import SequentialNoise
from itd.sampling import sample
from itd.schedule import NoiseSchedule, explicit_timesteps, lcm_timesteps, trailing_timesteps

SDXL = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
SHAPE = (4, 8, 8)


class TinyEpsNet(nn.Module):
    """A deterministic, non-trivial eps-predictor of (x, t): conv, timestep-dependent shift, tanh."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.t_scale = nn.Parameter(torch.randn(4))

    def forward(self, x, t):
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1)
        shift = torch.sin(t[:, None] / 100.0 * self.t_scale[None])[:, :, None, None]
        return torch.tanh(self.conv(x) + shift)


def diffusers_loop(scheduler, net, seed, batch, num_steps, explicit=None):
    if explicit is None:
        scheduler.set_timesteps(num_steps)
    else:
        scheduler.set_timesteps(timesteps=explicit)
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn((batch, *SHAPE), generator=g) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        eps = net(scheduler.scale_model_input(latents, t), t)
        latents = scheduler.step(eps, t, latents, generator=g, return_dict=False)[0]
    return latents


def ours(adapter, solver, timesteps, net, seed, batch):
    schedule = NoiseSchedule.scaled_linear()
    return sample(adapter(net, schedule), solver, timesteps, schedule, Cond({}), SequentialNoise(seed, batch), SHAPE)


CASES = {
    # family: (scheduler, adapter, solver, our timesteps, explicit timesteps for diffusers)
    "lcm / lcm-lora (4)": (lambda: LCMScheduler(**SDXL, original_inference_steps=50), ConsistencyDenoiser, solvers.lcm, lcm_timesteps(4), None),
    "dmd2 (999, 749, 499, 249)": (lambda: LCMScheduler(**SDXL), ConsistencyDenoiser, solvers.lcm, explicit_timesteps(4, [999, 749, 499, 249]), [999, 749, 499, 249]),
    "sdxl-lightning (4)": (lambda: EulerDiscreteScheduler(**SDXL, timestep_spacing="trailing"), EpsDenoiser, solvers.euler, trailing_timesteps(4), None),
    "sdxl-lightning (2)": (lambda: EulerDiscreteScheduler(**SDXL, timestep_spacing="trailing"), EpsDenoiser, solvers.euler, trailing_timesteps(2), None),
    "sdxl-turbo (1)": (lambda: EulerAncestralDiscreteScheduler(**SDXL, timestep_spacing="trailing"), EpsDenoiser, solvers.euler_ancestral, trailing_timesteps(1), None),
    "sdxl-turbo (4)": (lambda: EulerAncestralDiscreteScheduler(**SDXL, timestep_spacing="trailing"), EpsDenoiser, solvers.euler_ancestral, trailing_timesteps(4), None),
    "ddim trailing, final abar 1 (4)": (lambda: DDIMScheduler(**SDXL, timestep_spacing="trailing", set_alpha_to_one=True, clip_sample=False), EpsDenoiser, solvers.ddim, trailing_timesteps(4), None),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("batch", [1, 3])
def test_loop_matches_diffusers_exactly(case, batch):
    make_scheduler, adapter, solver, timesteps, explicit = CASES[case]
    net, scheduler = TinyEpsNet().eval(), make_scheduler()
    with torch.no_grad():
        expected = diffusers_loop(scheduler, net, 7, batch, len(timesteps), explicit)
        got = ours(adapter, solver, timesteps, net, 7, batch)
    assert scheduler.timesteps.long().tolist() == timesteps
    assert torch.equal(got, expected), (got - expected).abs().max().item()


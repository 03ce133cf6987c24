import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, LCMScheduler

from itd.schedule import CLEAN, NoiseSchedule, check_timesteps, explicit_timesteps, lcm_timesteps, leading_timesteps, trailing_timesteps

SDXL = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)


def test_alphas_match_diffusers_exactly(schedule):
    assert torch.equal(schedule.alphas_cumprod, DDIMScheduler(**SDXL).alphas_cumprod)


def test_clean_pseudo_timestep_is_abar_one(schedule):
    a = schedule.alpha(torch.tensor([CLEAN, 0, 999]))
    assert a[0] == 1.0 and a[1] == schedule.alphas_cumprod[0] and a[2] == schedule.alphas_cumprod[999]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 8])
def test_lcm_recipe_matches_lcm_scheduler(n):
    sched = LCMScheduler(**SDXL, original_inference_steps=50)
    sched.set_timesteps(n)
    assert lcm_timesteps(n) == sched.timesteps.tolist()


def test_lcm_four_steps_are_the_papers():
    assert lcm_timesteps(4) == [999, 759, 499, 259]


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_trailing_matches_euler_trailing(n):
    sched = EulerDiscreteScheduler(**SDXL, timestep_spacing="trailing")
    sched.set_timesteps(n)
    assert trailing_timesteps(n) == sched.timesteps.long().tolist()
    assert trailing_timesteps(4) == [999, 749, 499, 249]


@pytest.mark.parametrize("n", [4, 50])
def test_leading_matches_euler_leading(n):
    sched = EulerDiscreteScheduler(**SDXL, timestep_spacing="leading", steps_offset=1)
    sched.set_timesteps(n)
    assert leading_timesteps(n) == sched.timesteps.long().tolist()


def test_explicit_and_checks():
    assert explicit_timesteps(4, [999, 749, 499, 249]) == [999, 749, 499, 249]
    with pytest.raises(ValueError, match="num_steps=3"):
        explicit_timesteps(3, [999, 749, 499, 249])
    with pytest.raises(ValueError, match="strictly decrease"):
        check_timesteps([999, 999, 10])
    with pytest.raises(ValueError, match="strictly decrease"):
        check_timesteps([1000, 500])

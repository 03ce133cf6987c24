"""With guidance off, our sampler reproduces StableDiffusionXLPipeline's latents for every student family.

Tiny random-weight SDXL-architecture models (UNet, two CLIP text encoders, VAE, tokenizers from a small
local vocabulary, a LoRA with non-zero init) are saved to disk and loaded through our real loaders; the
pipeline runs from the same folders with the scheduler each model card prescribes. Latents must be
bit-identical at fp32.
"""

from pathlib import Path

import pytest
import torch
from diffusers import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, LCMScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

from itd import solvers
from itd.models import sdxl
from itd.models.tiny import build_tiny_models
from itd.noise import SequentialNoise
from itd.sampling import sample
from itd.schedule import NoiseSchedule, explicit_timesteps, lcm_timesteps, trailing_timesteps

PROMPTS = ["a photo of a cat", "a red bus in the rain"]
SIZE = 32
SEED = 3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return {k: str(v) for k, v in build_tiny_models(tmp_path_factory.mktemp("tiny")).items()}


def run_pipeline(tiny, make_scheduler, unet=None, lora=None, **call):
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny["base"], local_files_only=True, **({"unet": unet} if unet else {}))
    pipe.scheduler = make_scheduler(pipe.scheduler.config)
    if lora:
        pipe.load_lora_weights(lora)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(PROMPTS, height=SIZE, width=SIZE, generator=torch.Generator().manual_seed(SEED), output_type="latent", **call)
    return out.images


def run_ours(tiny, student, solver, timesteps):
    schedule = NoiseSchedule.scaled_linear()
    text = sdxl.load_text(tiny["base"])
    cond = text.encode(PROMPTS, SIZE, SIZE)
    factor = 2 ** (len(sdxl.load_vae(tiny["base"]).config.block_out_channels) - 1)
    shape = (4, SIZE // factor, SIZE // factor)
    return sample(student(schedule), solver, timesteps, schedule, cond, SequentialNoise(SEED, len(PROMPTS)), shape)


def lcm_scheduler(config):
    return LCMScheduler.from_config(config)


def euler_trailing(config):
    return EulerDiscreteScheduler.from_config(config, timestep_spacing="trailing")


def euler_ancestral_trailing(config):
    return EulerAncestralDiscreteScheduler.from_config(config, timestep_spacing="trailing")


def check(ours, theirs):
    assert ours.shape == theirs.shape
    assert torch.equal(ours, theirs), f"max |diff| = {(ours - theirs).abs().max().item()}"


@torch.no_grad()
def test_lcm_lora(tiny):
    theirs = run_pipeline(tiny, lcm_scheduler, lora=tiny["lora"], num_inference_steps=4, guidance_scale=0.0)
    student = lambda s: sdxl.load_student(s, tiny["base"], lora=tiny["lora"])  # noqa: E731
    check(run_ours(tiny, student, solvers.lcm, lcm_timesteps(4)), theirs)


@torch.no_grad()
def test_lcm_sdxl_with_guidance_embedding(tiny):
    unet = UNet2DConditionModel.from_pretrained(tiny["lcm_unet"], local_files_only=True)
    theirs = run_pipeline(tiny, lcm_scheduler, unet=unet, num_inference_steps=4, guidance_scale=8.0)
    student = lambda s: sdxl.load_student(s, tiny["base"], unet=tiny["lcm_unet"], unet_subfolder=None, guidance=8.0)  # noqa: E731
    check(run_ours(tiny, student, solvers.lcm, lcm_timesteps(4)), theirs)


@torch.no_grad()
def test_dmd2_state_dict_with_explicit_timesteps(tiny):
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(tiny["base"], subfolder="unet"))
    unet.load_state_dict(torch.load(tiny["dmd2_unet"], weights_only=True))
    ts = [999, 749, 499, 249]
    theirs = run_pipeline(tiny, lcm_scheduler, unet=unet, timesteps=ts, guidance_scale=0.0)
    folder, name = str(Path(tiny["dmd2_unet"]).parent), Path(tiny["dmd2_unet"]).name
    student = lambda s: sdxl.load_student(s, tiny["base"], unet=folder, unet_file=name)  # noqa: E731
    check(run_ours(tiny, student, solvers.lcm, explicit_timesteps(4, ts)), theirs)


@torch.no_grad()
@pytest.mark.parametrize(
    "make_scheduler, solver, steps",
    [(euler_trailing, solvers.euler, 2), (euler_trailing, solvers.euler, 4),  # SDXL-Lightning
     (euler_ancestral_trailing, solvers.euler_ancestral, 1), (euler_ancestral_trailing, solvers.euler_ancestral, 4)],  # SDXL-Turbo
)
def test_euler_students_lightning_and_turbo(tiny, make_scheduler, solver, steps):
    unet = UNet2DConditionModel.from_pretrained(tiny["unet"], local_files_only=True)
    theirs = run_pipeline(tiny, make_scheduler, unet=unet, num_inference_steps=steps, guidance_scale=0.0)
    student = lambda s: sdxl.load_student(s, tiny["base"], unet=tiny["unet"], unet_subfolder=None, consistency=False)  # noqa: E731
    check(run_ours(tiny, student, solver, trailing_timesteps(steps)), theirs)


@torch.no_grad()
def test_lcm_lora_holds_one_unet_shared_with_the_teacher(tiny):
    schedule = NoiseSchedule.scaled_linear()
    student = sdxl.load_student(schedule, tiny["base"], lora=tiny["lora"])
    teacher = sdxl.load_teacher(schedule, tiny["base"])
    assert student.net.unet is teacher.net.unet
    shared = {id(p) for p in student.parameters()} & {id(p) for p in teacher.parameters()}
    assert len(shared) == len({id(p) for p in teacher.parameters()})  # every teacher weight is the student's
    # The adapter really matters, and the teacher really runs without it.
    cond = sdxl.load_text(tiny["base"]).encode(PROMPTS, SIZE, SIZE)
    x, t = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([500, 500])
    base_unet = UNet2DConditionModel.from_pretrained(tiny["base"], subfolder="unet", local_files_only=True).eval()
    plain = sdxl.EpsDenoiser(sdxl.SDXLUNet(base_unet), schedule)(x, t, cond).eps
    assert torch.equal(teacher(x, t, cond).eps, plain)
    assert not torch.allclose(student.net(x, t, **cond.kwargs), plain, atol=1e-3)


def test_missing_model_fails_at_once_with_one_line(tmp_path):
    with pytest.raises(sdxl.MissingModelError) as err:
        sdxl.load_unet("tianweiy/DMD2-does-not-exist", "unet", what="student.unet")
    message = str(err.value)
    assert "\n" not in message and "student.unet" in message and "under `models:`" in message


def test_compile_is_opt_in_and_compiles_a_shared_unet_once(tiny, schedule):
    from itd.denoisers import CFGDenoiser
    from itd.experiment import compile_networks

    student = sdxl.load_student(schedule, str(tiny["base"]), lora=str(tiny["lora"]), consistency=True)
    teacher = CFGDenoiser(sdxl.load_teacher(schedule, str(tiny["base"])), 7.5, schedule)
    (unet,) = compile_networks([student, teacher.denoiser])
    assert unet is student.net.unet is teacher.denoiser.net.unet and unet._compiled_call_impl is not None
    unet._compiled_call_impl = None  # leave the cached module as other tests expect it

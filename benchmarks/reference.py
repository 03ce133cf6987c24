"""diffusers' own StableDiffusionXLPipeline for the student a composed config describes (the reference arm).

The recipe is tests/test_sdxl_parity.py's: the pipeline is loaded from the same folders as our loaders
read (the student's UNet folder, raw state-dict file or LoRA on base's UNet), with the scheduler its
model card prescribes, chosen here from our solver and timestep recipe rather than from the student's
name: ``solver`` picks the scheduler class, a ``trailing`` recipe sets ``timestep_spacing``, an explicit
list is passed as ``timesteps=``, LCM-SDXL's distilled guidance goes in as ``guidance_scale``.
"""

from __future__ import annotations

import torch
from diffusers import (
    DDIMScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from omegaconf import DictConfig

from itd.models.sdxl import load_unet_file

SCHEDULERS = {  # our solver -> the diffusers scheduler it reproduces bit for bit
    "itd.solvers.lcm": LCMScheduler,
    "itd.solvers.euler": EulerDiscreteScheduler,
    "itd.solvers.euler_ancestral": EulerAncestralDiscreteScheduler,
    "itd.solvers.ddim": DDIMScheduler,
}


def scheduler_for(cfg: DictConfig, base_config):
    """The diffusers scheduler matching ``cfg.solver`` and ``cfg.student.timesteps``, from base's scheduler config."""
    spacing = {"timestep_spacing": "trailing"} if cfg.student.timesteps._target_.endswith("trailing_timesteps") else {}
    return SCHEDULERS[cfg.solver.path].from_config(base_config, **spacing)


def call_kwargs(cfg: DictConfig) -> dict:
    """Step count (or explicit timesteps) and guidance for the pipeline call: no CFG, as the students run."""
    model, recipe = cfg.student.model, cfg.student.timesteps
    explicit = recipe._target_.endswith("explicit_timesteps")
    steps = {"timesteps": list(recipe.timesteps)} if explicit else {"num_inference_steps": cfg.student.num_steps}
    return {**steps, "guidance_scale": float(model.get("guidance") or 0.0)}


def student_pipeline(cfg: DictConfig) -> tuple[StableDiffusionXLPipeline, dict]:
    """(pipeline, call kwargs) for the student of ``cfg``; the pipeline holds its own copy of every module."""
    model = cfg.student.model
    dtype = getattr(torch, cfg.dtype)
    unet = None
    if model.get("unet") and model.get("unet_file"):
        unet = load_unet_file(model.base, model.unet, model.unet_file, cfg.dtype, cfg.device, False, "student.unet")
    elif model.get("unet"):
        sub = model.get("unet_subfolder", "unet")
        unet = UNet2DConditionModel.from_pretrained(model.unet, local_files_only=True, dtype=dtype, **({"subfolder": sub} if sub else {}))
    pipe = StableDiffusionXLPipeline.from_pretrained(
        model.base, local_files_only=True, dtype=dtype, add_watermarker=False, **({"unet": unet} if unet is not None else {})
    )
    pipe.scheduler = scheduler_for(cfg, pipe.scheduler.config)
    if model.get("lora"):
        pipe.load_lora_weights(model.lora, **({"weight_name": model.lora_weight_name} if model.get("lora_weight_name") else {}))
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(cfg.device), call_kwargs(cfg)


def latents_from(pipe: StableDiffusionXLPipeline, call: dict, prompts: list[str], size: tuple[int, int], seed: int) -> torch.Tensor:
    """The pipeline's final latents for ``prompts`` with a CPU generator seeded ``seed`` (what SequentialNoise replays)."""
    out = pipe(
        prompts, height=size[0], width=size[1], generator=torch.Generator().manual_seed(seed), output_type="latent", **call
    )
    return out.images


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| (nan where either is not finite)."""
    return float((a.float() - b.float()).abs().max()) if a.shape == b.shape else float("nan")

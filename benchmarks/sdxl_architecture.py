"""SDXL's architectures written out by hand (no hub access): UNet, VAE and the two CLIP text encoders.

The values are those of stabilityai/stable-diffusion-xl-base-1.0's ``unet/``, ``vae/``, ``text_encoder/``
and ``text_encoder_2/`` config files (LCM-SDXL's UNet adds a 256-wide guidance embedding). ``tiny_configs``
returns the same four for the tiny random-weight stand-ins of ``debug=smoke``, read from their folder, so
that one code path serves both sizes.

``build(configs, ...)`` makes random-weight modules (initialised on the target device: seconds on a GPU);
on the ``meta`` device it allocates nothing and gives parameter counts (2,567 M for the UNet).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SDXL_UNET = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    attention_head_dim=(5, 10, 20),
    transformer_layers_per_block=(1, 2, 10),
    use_linear_projection=True,
    cross_attention_dim=2048,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,  # 6 time ids x 256 + pooled text embeds (1280)
    norm_num_groups=32,
    norm_eps=1e-5,
)
LCM_TIME_COND_PROJ_DIM = 256
SDXL_VAE = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=1024,
    scaling_factor=0.13025,
    force_upcast=False,  # as madebyollin/sdxl-vae-fp16-fix (same architecture), so fp16 end to end
)
CLIP_L = dict(  # text_encoder: CLIP ViT-L/14's text tower
    hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, projection_dim=768,
    hidden_act="quick_gelu", max_position_embeddings=77, vocab_size=49408,
)
CLIP_BIGG = dict(  # text_encoder_2: OpenCLIP ViT-bigG/14's text tower, with its projection
    hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20, projection_dim=1280,
    hidden_act="gelu", max_position_embeddings=77, vocab_size=49408,
)
SDXL_SCHEDULER = dict(  # scheduler/scheduler_config.json: EulerDiscreteScheduler, from which the students' schedulers are made
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, prediction_type="epsilon",
    timestep_spacing="leading", steps_offset=1, interpolation_type="linear", use_karras_sigmas=False,
)
# LCM-LoRA-SDXL's adapter (rank 64) on the attention and feed-forward projections of the transformer blocks.
LORA = dict(r=64, lora_alpha=64, target_modules=["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"])


@dataclass(frozen=True)
class Configs:
    unet: dict
    vae: dict
    text: dict
    text_2: dict
    lora: dict
    time_cond_proj_dim: int  # LCM-SDXL's guidance embedding width
    resolution: int | None  # None: the student's own (``cfg.resolution``)


def full_configs() -> Configs:
    return Configs(dict(SDXL_UNET), dict(SDXL_VAE), dict(CLIP_L), dict(CLIP_BIGG), dict(LORA), LCM_TIME_COND_PROJ_DIM, None)


def tiny_configs(base: str) -> Configs:
    """The tiny stand-ins' architectures, from the ``debug=smoke`` base folder (``smoke_models()["sdxl_base"]``)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig

    from itd.models.tiny import LCM_TIME_COND_PROJ_DIM as TINY_TIME_COND_PROJ_DIM
    from itd.models.tiny import LORA_TARGETS

    def text(sub):
        config = CLIPTextConfig.from_pretrained(base, subfolder=sub).to_dict()
        return {k: config[k] for k in CLIP_L}  # the keys written out for the full-size encoders

    unet = {k: v for k, v in UNet2DConditionModel.load_config(base, subfolder="unet").items() if not k.startswith("_")}
    vae = {k: v for k, v in AutoencoderKL.load_config(base, subfolder="vae").items() if not k.startswith("_")}
    lora = dict(r=4, lora_alpha=4, target_modules=LORA_TARGETS)
    return Configs(unet, {**vae, "force_upcast": False}, text("text_encoder"), text("text_encoder_2"), lora, TINY_TIME_COND_PROJ_DIM, 32)


@dataclass
class Modules:
    unet: torch.nn.Module
    vae: torch.nn.Module
    text: torch.nn.Module
    text_2: torch.nn.Module


def build_unet(configs: Configs, device="cpu", dtype=torch.float32, seed: int = 0, time_cond_proj_dim: int | None = None):
    """A random-weight UNet (initialised on ``device``: fast on a GPU, free on ``meta``)."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**{**configs.unet, **({"time_cond_proj_dim": time_cond_proj_dim} if time_cond_proj_dim else {})})
    return unet.to(device=device, dtype=dtype).eval().requires_grad_(False)


def build(configs: Configs, device="cpu", dtype=torch.float32, tokenizer=None, seed: int = 0, time_cond_proj_dim: int | None = None) -> Modules:
    """Random-weight UNet (with LCM-SDXL's guidance embedding if ``time_cond_proj_dim``), VAE and text encoders;
    the text configs take the tokenizer's special token ids (the encoder pools at the end-of-text token), so
    any CLIP tokenizer drives them."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    ids = {}
    if tokenizer is not None:
        ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    unet = build_unet(configs, device, dtype, seed, time_cond_proj_dim)
    torch.manual_seed(seed + 1)
    with torch.device(device):
        vae = AutoencoderKL(**configs.vae)
        text = CLIPTextModel(CLIPTextConfig(**configs.text, **ids))
        text_2 = CLIPTextModelWithProjection(CLIPTextConfig(**configs.text_2, **ids))
    return Modules(unet, *(m.to(device=device, dtype=dtype).eval().requires_grad_(False) for m in (vae, text, text_2)))


def parameter_counts(configs: Configs) -> dict[str, int]:
    """Parameters of each module of the architecture (built on the meta device: nothing allocated)."""
    modules = build(configs, device="meta")
    lcm_unet = build_unet(configs, device="meta", time_cond_proj_dim=configs.time_cond_proj_dim)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {
        "unet": count(modules.unet), "lcm_unet": count(lcm_unet), "vae": count(modules.vae),
        "text": count(modules.text), "text_2": count(modules.text_2),
    }

"""SDXL-family models on diffusers: the shared text encoders and VAE, the teacher and the students.

Every id can be a hub id or a local path. Nothing is downloaded unless ``allow_download=True``: offline,
a missing model fails at once with one line naming the id and how to point the config at a local copy.
Loaded modules are cached per (id, subfolder, dtype, device), so a LoRA student and the teacher share
one UNet (the teacher runs it with the adapter disabled) and every model shares one text stack and VAE.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from itd.denoisers import Cond, ConsistencyDenoiser, EpsDenoiser
from itd.models.hub import MissingModelError, dtype_of, fetch, hub_file, naming  # noqa: F401  (MissingModelError re-exported)
from itd.schedule import NoiseSchedule


@functools.lru_cache(maxsize=None)
def _unet(model_id: str, subfolder: str | None, dtype: str, device: str, allow_download: bool):
    from diffusers import UNet2DConditionModel

    kwargs = {"subfolder": subfolder} if subfolder else {}
    unet = fetch(UNet2DConditionModel.from_pretrained, model_id, allow_download, dtype=dtype_of(dtype), **kwargs)
    return unet.to(device).eval().requires_grad_(False)


def load_unet(model_id: str, subfolder: str | None = "unet", dtype: str = "float32", device: str = "cpu", allow_download: bool = False, what: str = "unet"):
    """A UNet2DConditionModel from a diffusers folder; one cached instance per (id, subfolder, dtype, device)."""
    with naming(what):
        return _unet(model_id, subfolder, dtype, device, allow_download)


def load_unet_file(base: str, repo_or_folder: str, filename: str, dtype: str, device: str, allow_download: bool, what: str):
    """A UNet with base's architecture and the weights of a raw state-dict file (.bin or .safetensors), as
    DMD2 and SDXL-Lightning distribute their UNets."""
    from diffusers import UNet2DConditionModel

    path = hub_file(repo_or_folder, filename, allow_download, what)
    with naming("base"):
        config = fetch(UNet2DConditionModel.load_config, base, allow_download, subfolder="unet")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    unet = UNet2DConditionModel.from_config(config)
    unet.load_state_dict(state, strict=True)
    return unet.to(device=device, dtype=dtype_of(dtype)).eval().requires_grad_(False)


@dataclass
class SDXLText:
    """The two SDXL text encoders and tokenizers; ``encode`` reproduces StableDiffusionXLPipeline.encode_prompt."""

    tokenizers: tuple
    encoders: tuple
    force_zeros_for_empty_prompt: bool = True

    @torch.no_grad()
    def _encode(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        hidden, pooled = [], None
        for tokenizer, encoder in zip(self.tokenizers, self.encoders):
            ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids
            out = encoder(ids.to(encoder.device), output_hidden_states=True)
            if pooled is None and out[0].ndim == 2:  # CLIPTextModelWithProjection: text_embeds
                pooled = out[0]
            hidden.append(out.hidden_states[-2])
        return torch.concat(hidden, dim=-1), pooled

    def encode(self, prompts: list[str], height: int, width: int, negative_prompt: str | None = None) -> Cond:
        """Cond for the SDXL UNet; ``negative`` is all zeros when no negative prompt is given (SDXL's default)."""
        embeds, pooled = self._encode(list(prompts))
        if negative_prompt is None and self.force_zeros_for_empty_prompt:
            neg_embeds, neg_pooled = torch.zeros_like(embeds), torch.zeros_like(pooled)
        else:
            neg_embeds, neg_pooled = self._encode([negative_prompt or ""] * len(prompts))
        # (original size, crop top-left, target size), as the pipeline's _get_add_time_ids.
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=embeds.dtype).repeat(len(prompts), 1)
        time_ids = time_ids.to(embeds.device)
        return Cond(
            {"encoder_hidden_states": embeds, "text_embeds": pooled, "time_ids": time_ids},
            negative={"encoder_hidden_states": neg_embeds, "text_embeds": neg_pooled, "time_ids": time_ids},
        )


@functools.lru_cache(maxsize=None)
def load_text(base: str, dtype: str = "float32", device: str = "cpu", allow_download: bool = False) -> SDXLText:
    """Tokenizers and text encoders from an SDXL base folder (cached: shared by every model)."""
    from diffusers import DiffusionPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    with naming("base"):
        tok = [fetch(CLIPTokenizer.from_pretrained, base, allow_download, subfolder=s) for s in ("tokenizer", "tokenizer_2")]
        enc = [
            fetch(cls.from_pretrained, base, allow_download, subfolder=s, dtype=dtype_of(dtype)).to(device).eval()
            for cls, s in ((CLIPTextModel, "text_encoder"), (CLIPTextModelWithProjection, "text_encoder_2"))
        ]
        config = fetch(DiffusionPipeline.load_config, base, allow_download)
    return SDXLText(tuple(tok), tuple(enc), bool(config.get("force_zeros_for_empty_prompt", True)))


@functools.lru_cache(maxsize=None)
def load_vae(model_id: str, subfolder: str | None = "vae", dtype: str = "float32", device: str = "cpu", allow_download: bool = False):
    """The VAE (``madebyollin/sdxl-vae-fp16-fix`` with subfolder null for the fp16-safe one)."""
    from diffusers import AutoencoderKL

    kwargs = {"subfolder": subfolder} if subfolder else {}
    with naming("vae"):
        vae = fetch(AutoencoderKL.from_pretrained, model_id, allow_download, dtype=dtype_of(dtype), **kwargs)
    if getattr(vae.config, "force_upcast", False):  # SDXL's own VAE overflows in fp16: keep it fp32, once, here
        vae = vae.to(torch.float32)
    return vae.to(device).eval().requires_grad_(False)


@torch.no_grad()
def decode(vae, latents: Tensor) -> Tensor:
    """Latents to images in [-1, 1], [B, 3, H, W], in the VAE's own dtype (see ``load_vae``)."""
    return vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample.clamp(-1, 1)


def guidance_scale_embedding(w: Tensor, dim: int) -> Tensor:
    """LCM-SDXL's w-embedding of (guidance - 1), as the SDXL pipeline's get_guidance_scale_embedding."""
    w = w * 1000.0
    half = dim // 2
    emb = torch.log(torch.tensor(10000.0)) / (half - 1)
    emb = torch.exp(torch.arange(half, dtype=torch.float32) * -emb)
    emb = w.to(torch.float32)[:, None] * emb[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    return nn.functional.pad(emb, (0, 1)) if dim % 2 == 1 else emb


class SDXLUNet(nn.Module):
    """``net(x, t, encoder_hidden_states, text_embeds, time_ids) -> UNet output`` for the denoiser adapters.

    adapters: run with the UNet's LoRA adapters on (a LoRA student) or off (the teacher sharing its UNet).
    guidance: LCM-SDXL's distilled guidance scale, passed as the w-embedding ``timestep_cond``.
    """

    def __init__(self, unet: nn.Module, adapters: bool = True, guidance: float | None = None):
        super().__init__()
        self.unet, self.adapters, self.guidance = unet, adapters, guidance
        self._w_cache: dict = {}

    def _w_embedding(self, batch: int, device, dtype) -> Tensor:
        """The w-embedding of the fixed guidance scale, computed once per (batch, device, dtype)."""
        key = (batch, device, dtype)
        if key not in self._w_cache:
            w = torch.tensor(self.guidance - 1).repeat(batch)
            self._w_cache[key] = guidance_scale_embedding(w, self.unet.config.time_cond_proj_dim).to(device, dtype)
        return self._w_cache[key]

    def forward(self, x: Tensor, t: Tensor, encoder_hidden_states: Tensor, text_embeds: Tensor, time_ids: Tensor) -> Tensor:
        timestep_cond = None if self.guidance is None else self._w_embedding(len(x), x.device, x.dtype)
        toggle = not self.adapters and getattr(self.unet, "_hf_peft_config_loaded", False)
        if toggle:
            self.unet.disable_lora()
        try:
            return self.unet(
                x.to(self.unet.dtype), t, encoder_hidden_states=encoder_hidden_states, timestep_cond=timestep_cond,
                added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}, return_dict=False,
            )[0].to(x.dtype)
        finally:
            if toggle:
                self.unet.enable_lora()


def load_teacher(schedule: NoiseSchedule, base: str, dtype: str = "float32", device: str = "cpu", allow_download: bool = False) -> EpsDenoiser:
    """SDXL-base's UNet with its weights (``from_pretrained``), adapters off: an eps-prediction teacher."""
    return EpsDenoiser(SDXLUNet(load_unet(base, "unet", dtype, device, allow_download, "teacher.base"), adapters=False), schedule)


def load_student(
    schedule: NoiseSchedule,
    base: str,
    unet: str | None = None,
    unet_subfolder: str | None = "unet",
    unet_file: str | None = None,
    lora: str | None = None,
    lora_weight_name: str | None = None,
    guidance: float | None = None,
    consistency: bool = True,
    dtype: str = "float32",
    device: str = "cpu",
    allow_download: bool = False,
):
    """An SDXL-family student: its own UNet (a diffusers folder ``unet``/``unet_subfolder``, or a raw state-dict
    ``unet_file`` inside ``unet``), or a ``lora`` on base's UNet (loaded unfused, sharing the UNet with the teacher).

    consistency: LCM-style boundary condition (LCM, LCM-LoRA, DMD2) or a plain eps-prediction (Euler students).
    guidance: LCM-SDXL's distilled guidance scale (its w-embedding).
    """
    if unet is not None and unet_file is not None:
        net = load_unet_file(base, unet, unet_file, dtype, device, allow_download, "student.unet")
    elif unet is not None:
        net = load_unet(unet, unet_subfolder, dtype, device, allow_download, "student.unet")
    else:
        net = load_unet(base, "unet", dtype, device, allow_download, "student.base")
    if lora is not None:
        _load_lora(net, lora, lora_weight_name, allow_download)
    adapter = ConsistencyDenoiser if consistency else EpsDenoiser
    return adapter(SDXLUNet(net, adapters=True, guidance=guidance), schedule)


def _load_lora(unet, lora: str, weight_name: str | None, allow_download: bool) -> None:
    """Load a LoRA into ``unet`` unfused (as StableDiffusionXLPipeline.load_lora_weights does for the UNet)
    under a name derived from its id, and make it the active adapter."""
    from diffusers import StableDiffusionXLPipeline

    name = "student_" + hashlib.sha1(f"{lora}|{weight_name}".encode()).hexdigest()[:8]
    if name not in (getattr(unet, "peft_config", None) or {}):
        kwargs = {"weight_name": weight_name} if weight_name else {}
        try:
            state_dict, alphas, metadata = StableDiffusionXLPipeline.lora_state_dict(
                lora, unet_config=unet.config, return_lora_metadata=True, local_files_only=not allow_download, **kwargs
            )
        except (OSError, ValueError):
            if Path(lora).exists():
                raise
            raise MissingModelError(
                f"student.lora: {lora!r} is not available offline; download it and set student.lora=<local folder>"
            ) from None
        StableDiffusionXLPipeline.load_lora_into_unet(state_dict, network_alphas=alphas, unet=unet, adapter_name=name, metadata=metadata)
    unet.set_adapters(name)


class PngWriter:
    """Writes each image as ``images/<method>/<seed>_<index>.png`` as it is generated (atomic per file)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def add(self, seed: int, indices, images: Tensor) -> None:
        from PIL import Image

        from itd.io import atomic_write
        from itd.metrics.images import to_uint8

        pixels = to_uint8(images)
        for i, array in zip(indices, pixels):
            if (self.folder / f"{seed}_{i:05d}.png").is_file():  # written by an earlier run of this job (atomic)
                continue
            atomic_write(self.folder / f"{seed}_{i:05d}.png", lambda p, a=array: Image.fromarray(a).save(p, format="PNG"))

    def close(self) -> None:
        pass


@dataclass
class SDXLWorld:
    """Conditioning, decoding and storage shared by every SDXL-family model: one text stack, one VAE.

    vae: null for base's own VAE, or e.g. ``madebyollin/sdxl-vae-fp16-fix`` (with vae_subfolder null);
    use the same VAE in every arm of a comparison.
    """

    base: str
    height: int = 1024
    width: int = 1024
    negative_prompt: str | None = None
    vae: str | None = None
    vae_subfolder: str | None = "vae"
    dtype: str = "float32"
    device: str = "cpu"
    allow_download: bool = False

    def __post_init__(self):
        self.text = load_text(self.base, self.dtype, self.device, self.allow_download)
        self.autoencoder = load_vae(self.vae or self.base, self.vae_subfolder if self.vae else "vae", self.dtype, self.device, self.allow_download)
        factor = 2 ** (len(self.autoencoder.config.block_out_channels) - 1)
        if self.height % factor or self.width % factor:
            raise ValueError(f"world.height/width must be multiples of the VAE's factor {factor}")
        self.shape = (self.autoencoder.config.latent_channels, self.height // factor, self.width // factor)

    def cond(self, prompts: list[str], device: torch.device | str = "cpu") -> Cond:
        return self.text.encode(prompts, self.height, self.width, self.negative_prompt)

    def decode(self, latents: Tensor) -> Tensor:
        return decode(self.autoencoder, latents)

    def to_store(self, images: Tensor):
        """Images as the sample store keeps them: the 8-bit pixels of the PNGs (what every metric scores)."""
        from itd.metrics.images import to_uint8

        return to_uint8(images)

    def from_store(self, array) -> Tensor:
        """8-bit [N, H, W, 3] -> [N, 3, H, W] in [-1, 1], which ``to_store`` maps back to the same pixels."""
        return torch.from_numpy(array).permute(0, 3, 1, 2).float().div(127.5).sub(1)

    def writer(self, out_dir: Path, method: str) -> PngWriter:
        return PngWriter(Path(out_dir) / "images" / method)

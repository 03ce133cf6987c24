"""Tiny random-weight SDXL-family models, saved offline in the layouts the real checkpoints use.

``build_tiny_models(root)`` writes, once, a stand-in for every checkpoint the SDXL experiments load:

- ``base``: a full ``StableDiffusionXLPipeline`` folder (the teacher, SDXL base 1.0);
- ``lcm_unet``: a UNet folder with a guidance embedding (``time_cond_proj_dim``), like LCM-SDXL;
- ``unet``: a plain UNet folder (SDXL-Lightning's / SDXL-Turbo's full UNet);
- ``dmd2_unet``: a raw ``torch.save``d UNet state dict file (what DMD2 ships);
- ``lora``: a folder with ``pytorch_lora_weights.safetensors``, a LoRA for base's UNet.

Every UNet shares base's architecture, so the real loaders (``from_pretrained``, ``load_lora_weights``,
``load_state_dict``) run unchanged against them. The VAE downsamples by 2 (not 8): 32x32 images have
16x16 latents.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

MARKER = "BUILT"
VERSION = "itd-tiny-sdxl-v1"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# A handful of BPE merges (enough to exercise merging); every other word falls back to single bytes.
MERGES = ["t h", "th e</w>", "a n", "an d</w>", "o f</w>", "o n", "i n", "e r", "c a", "ca t</w>"]

UNET_CONFIG = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    layers_per_block=1,
    block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(2, 4),  # diffusers reads this as the number of heads: head width 16 in both blocks
    use_linear_projection=True,
    transformer_layers_per_block=(1, 1),
    cross_attention_dim=64,  # text_encoder (32) + text_encoder_2 (32) penultimate hidden states
    addition_embed_type="text_time",
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=6 * 8 + 32,  # 6 size/crop time ids x 8 + pooled text_embeds (32)
    norm_num_groups=8,
)
VAE_CONFIG = dict(
    block_out_channels=(32, 64),
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2,
    latent_channels=4,
    sample_size=32,
    norm_num_groups=8,
    scaling_factor=0.13025,  # SDXL's VAE scaling factor
)
SCHEDULER_CONFIG = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    timestep_spacing="leading",
    steps_offset=1,
)
LCM_TIME_COND_PROJ_DIM = 16
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def build_tiny_models(root: str | Path, seed: int = 0) -> dict[str, Path]:
    """Build (once) and return paths of tiny random SDXL-family models under root. Idempotent, deterministic, atomic.

    The models are built in a temporary sibling folder that is renamed onto ``root`` when complete, the
    marker file ``root/BUILT`` (version and seed) written last inside it. A finished build with the same
    marker is reused as is; one with another marker (older version, other seed) is replaced. If another
    process publishes first, its build is used. A non-empty ``root`` without a marker is never touched.
    """
    root = Path(root)
    build_once(root, f"{VERSION} seed={seed}\n", lambda out: _build(out, seed))
    return {
        "base": root / "base",
        "lcm_unet": root / "lcm_unet",
        "unet": root / "unet",
        "dmd2_unet": root / "dmd2_unet.bin",
        "lora": root / "lora",
    }


def build_once(root: Path, marker: str, build) -> None:
    """Run ``build(tmp)`` in a temporary sibling of ``root`` and publish it as ``root`` (marker written last),
    unless ``root`` already holds a finished build with the same marker."""
    if _marker(root) == marker:
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.build-", dir=root.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the published folder should not be
    try:
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG state alone
            build(tmp)
        (tmp / MARKER).write_text(marker)
        _publish(tmp, root, marker)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _marker(root: Path) -> str | None:
    try:
        return (root / MARKER).read_text()
    except OSError:
        return None


def _publish(tmp: Path, root: Path, marker: str) -> None:
    """Rename the finished build ``tmp`` onto ``root``, moving a stale earlier build of ours out of the way."""
    old = _marker(root)
    if old is not None and old != marker:
        trash = Path(tempfile.mkdtemp(prefix=f".{root.name}.stale-", dir=root.parent))
        try:
            os.replace(root, trash)
        except FileNotFoundError:
            pass  # another process moved it first
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.replace(tmp, root)
    except OSError:
        if _marker(root) != marker:
            raise FileExistsError(f"{root} exists and is not a tiny-model build ({VERSION}); remove it") from None


def _build(out: Path, seed: int) -> None:
    """Write all five models into the empty folder ``out``; component k is initialised after manual_seed(seed + k)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = clip_tokenizer()
    text_config = CLIPTextConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        vocab_size=len(tokenizer),
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,  # transformers pools the hidden state at the first eos token
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=32,
        hidden_act="gelu",
    )

    def seeded(k, make):
        torch.manual_seed(seed + k)
        return make().eval()

    unet = seeded(3, lambda: UNet2DConditionModel(**UNET_CONFIG))
    pipe = StableDiffusionXLPipeline(
        vae=seeded(2, lambda: AutoencoderKL(**VAE_CONFIG)),
        text_encoder=seeded(0, lambda: CLIPTextModel(text_config)),
        text_encoder_2=seeded(1, lambda: CLIPTextModelWithProjection(text_config)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**SCHEDULER_CONFIG),
        force_zeros_for_empty_prompt=True,
    )
    pipe.save_pretrained(out / "base")

    seeded(4, lambda: UNet2DConditionModel(**UNET_CONFIG, time_cond_proj_dim=LCM_TIME_COND_PROJ_DIM)).save_pretrained(
        out / "lcm_unet"
    )
    seeded(5, lambda: UNet2DConditionModel(**UNET_CONFIG)).save_pretrained(out / "unet")
    torch.save(seeded(6, lambda: UNet2DConditionModel(**UNET_CONFIG)).state_dict(), out / "dmd2_unet.bin")

    # The LoRA only needs base's module names, so it is attached to base's UNet once that is saved.
    torch.manual_seed(seed + 7)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=LORA_TARGETS, init_lora_weights=False))
    StableDiffusionXLPipeline.save_lora_weights(out / "lora", unet_lora_layers=get_peft_model_state_dict(unet))


def clip_tokenizer():
    """A CLIP byte-level BPE tokenizer over a tiny hand-written vocabulary (every byte, with and without </w>)."""
    from transformers import CLIPTokenizer

    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in MERGES] + [BOS, EOS]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
        Path(tmp, "merges.txt").write_text("\n".join(["#version: 0.2", *MERGES]) + "\n")
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=77)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's reversible map from the 256 byte values to printable unicode characters."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]  # mapped to chr(256), chr(257), ...
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(others)}}

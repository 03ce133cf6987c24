"""Smoke mode: every model id under ``models:`` replaced by a tiny random-weight stand-in.

``smoke_models()`` builds the tiny models once (``itd.models.tiny``) and lays them out as the real
repositories are laid out, file names included, so the real loaders run unchanged. Configs reach it
through the ``${smoke:<key>}`` resolver (``debug=smoke``). The cache lives in ``$ITD_CACHE/smoke``
(default ``~/.cache/itd/smoke``).
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import torch
from omegaconf import OmegaConf

from itd.models.tiny import build_tiny_models

LIGHTNING_FILE = "sdxl_lightning_4step_unet.safetensors"
DMD2_FILE = "dmd2_sdxl_4step_unet_fp16.bin"


def cache_dir() -> Path:
    return Path(os.environ.get("ITD_CACHE", Path.home() / ".cache" / "itd")) / "smoke"


@functools.lru_cache(maxsize=None)
def smoke_models(root: str | None = None) -> dict[str, str]:
    """Stand-ins for the keys of ``conf/models/sdxl.yaml``: sdxl_base, lcm_lora, lcm_sdxl, lightning, dmd2, turbo."""
    from safetensors.torch import save_file

    root = Path(root) if root else cache_dir()
    tiny = build_tiny_models(root / "tiny")
    layout = {"lightning": (root / "lightning", LIGHTNING_FILE), "dmd2": (root / "dmd2", DMD2_FILE)}
    for folder, name in layout.values():
        if not (folder / name).is_file():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.tmp{os.getpid()}"
            if name.endswith(".safetensors"):
                state = torch.load(tiny["dmd2_unet"], map_location="cpu", weights_only=True)
                save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
            else:
                shutil.copyfile(tiny["dmd2_unet"], tmp)
            os.replace(tmp, folder / name)
    return {
        "sdxl_base": str(tiny["base"]),
        "lcm_lora": str(tiny["lora"]),
        "lcm_sdxl": str(tiny["lcm_unet"]),
        "lightning": str(root / "lightning"),
        "dmd2": str(root / "dmd2"),
        "turbo": str(tiny["base"]),  # a pipeline layout whose unet/ stands for sdxl-turbo's
    }


@functools.lru_cache(maxsize=None)
def smoke_metric_models(root: str | None = None) -> dict[str, str]:
    """Stand-ins for the metric networks and the FID reference: inception, fid_reference, image_reward,
    image_reward_tokenizer, pickscore, clip (``itd.models.tiny_metrics``)."""
    from itd.models.tiny_metrics import build_tiny_metric_models

    return {k: str(v) for k, v in build_tiny_metric_models((Path(root) if root else cache_dir()) / "tiny_metrics").items()}


def resolve(key: str) -> str:
    """``${smoke:<key>}``: an SDXL-family stand-in, or a metric one (built only when a config asks for it)."""
    models = smoke_models()
    return models[key] if key in models else smoke_metric_models()[key]


def register_resolver() -> None:
    if not OmegaConf.has_resolver("smoke"):
        OmegaConf.register_new_resolver("smoke", resolve)

"""Tiny random-weight stand-ins for the metric networks, saved in the layouts the real ones use.

``build_tiny_metric_models(root)`` writes, once (idempotent, atomic, deterministic):

- ``inception.pt``: a TorchScript network with Inception's interface (``.layers`` maps normalised
  299x299 pixels to pool features), loaded by FID's clean-mode loader;
- ``fid_reference/``: 16 seeded 32x32 PNG images, a reference folder for FID, and ``captions_tiny.json``,
  COCO-format captions of them;
- ``image_reward/``: ``ImageReward.pt`` in the released key layout, ``med_config.json``, and ``bert/``,
  a BERT WordPiece vocabulary, loaded by ``itd.metrics.image_reward``;
- ``pickscore/``, ``clip/``: ``CLIPModel`` folders with a tokenizer and a PIL image processor, loaded
  by ``itd.metrics.clip``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from itd.models.tiny import build_once, clip_tokenizer

VERSION = "itd-tiny-metrics-v3"
WORDS = "a an the of on in with and photo cat dog bus red blue green bowl horse moon man woman sitting riding rain street table".split()
IMAGE_REWARD_MED_CONFIG = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
    layer_norm_eps=1e-12,
    pad_token_id=0,
    type_vocab_size=2,
    add_cross_attention=True,
)


class InceptionStandIn(nn.Module):
    """Inception's TorchScript interface (``layers``: normalised pixels -> [N, 32, 1, 1]) at a tiny size."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, 16, 9, stride=8), nn.GELU(), nn.Conv2d(16, 32, 3, stride=2), nn.AdaptiveAvgPool2d(1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x - 128) / 128).flatten(1)


def build_tiny_metric_models(root: str | Path, seed: int = 0) -> dict[str, Path]:
    root = Path(root)
    build_once(root, f"{VERSION} seed={seed}\n", lambda out: _build(out, seed))
    return {
        "inception": root / "inception.pt",
        "fid_reference": root / "fid_reference",
        "image_reward": root / "image_reward",
        "image_reward_tokenizer": root / "image_reward" / "bert",
        "pickscore": root / "pickscore",
        "clip": root / "clip",
        "coco_annotations": root / "captions_tiny.json",
    }


def _build(out: Path, seed: int) -> None:
    from PIL import Image

    torch.manual_seed(seed)
    with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format clean-fid's Inception ships in
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(InceptionStandIn().eval()).save(str(out / "inception.pt"))

    rng = np.random.default_rng(seed)
    (out / "fid_reference").mkdir()
    for i in range(16):
        smooth = rng.normal(size=(4, 4, 3)).repeat(8, 0).repeat(8, 1) * 60 + rng.normal(size=(32, 32, 3)) * 20 + 128
        Image.fromarray(smooth.clip(0, 255).astype(np.uint8)).save(out / "fid_reference" / f"{i:03d}.png")

    captions = [" ".join(rng.choice(WORDS, size=6)) for _ in range(16)]  # COCO's captions file layout
    (out / "captions_tiny.json").write_text(json.dumps({
        "images": [{"id": i, "file_name": f"{i:03d}.png"} for i in range(16)],
        "annotations": [{"image_id": i, "id": 100 + i, "caption": c} for i, c in enumerate(captions)],
    }))

    _image_reward(out / "image_reward", seed + 1)
    _clip(out / "pickscore", seed + 2)
    _clip(out / "clip", seed + 3)


def _image_reward(folder: Path, seed: int) -> None:
    from transformers import BlipVisionConfig

    from itd.metrics.image_reward import ImageRewardModel, load_tokenizer, text_config, to_original_layout

    (folder / "bert").mkdir(parents=True)
    vocab = ["[PAD]", *(f"[unused{i}]" for i in range(3)), "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ing"]
    (folder / "bert" / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (folder / "bert" / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    tokenizer = load_tokenizer(str(folder / "bert"), False)
    med = {**IMAGE_REWARD_MED_CONFIG, "vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id, "sep_token_id": tokenizer.sep_token_id}
    (folder / "med_config.json").write_text(json.dumps(med, indent=2))

    # head width 64, as the released ViT-L/16's, so the loader's default head count applies
    vision = BlipVisionConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                              image_size=224, patch_size=16, layer_norm_eps=1e-6)
    torch.manual_seed(seed)
    model = ImageRewardModel(vision, text_config(med, vision.hidden_size))
    with torch.no_grad():  # weights large enough that scores differ between inputs
        for p in model.parameters():
            if p.ndim >= 2:
                p.normal_(std=0.2)
    torch.save(to_original_layout(model), folder / "ImageReward.pt")


def _clip(folder: Path, seed: int) -> None:
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    tokenizer = clip_tokenizer()
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, vocab_size=len(tokenizer),
                         max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)

"""ImageReward-v1.0 (Xu et al. 2023) on transformers' BLIP modules, without the ``image-reward`` package.

The released checkpoint (``ImageReward.pt`` in THUDM/ImageReward, with ``med_config.json`` beside it) is
BLIP's ViT-L/16 image encoder, BLIP's BERT-base text encoder with cross-attention to the image tokens, and
an MLP head on the text [CLS] output. It loads strictly into ``BlipVisionModel`` / ``BlipTextModel``
through the key mapping below. The score is the head's output normalised by the released mean and std.

Faithfulness is tested, not assumed: ``tests/golden/imagereward/`` holds a tiny random checkpoint in the
original key layout and the scores the original implementation gave it (``scripts/imagereward_golden.py``
says how they were produced); ``tests/test_metrics.py`` checks ours against them.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from itd.metrics.images import to_pil
from itd.models.hub import dtype_of, fetch, hub_file, naming, require

MEAN, STD = 0.16717362830052426, 1.0333394966054072  # the released score normalisation
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
MAX_TEXT_LENGTH = 35
HEAD_WIDTHS = (1024, 128, 64, 16, 1)  # Linear layers at indices 0, 2, 4, 6, 7 (dropouts between the first four)
UNUSED = ("blip.vision_proj.", "blip.text_proj.")  # in the checkpoint, not used by the score
VISION_RENAMES = [
    (r"^cls_token$", "embeddings.class_embedding"),
    (r"^pos_embed$", "embeddings.position_embedding"),
    (r"^patch_embed\.proj\.", "embeddings.patch_embedding."),
    (r"^blocks\.(\d+)\.norm1\.", r"encoder.layers.\1.layer_norm1."),
    (r"^blocks\.(\d+)\.norm2\.", r"encoder.layers.\1.layer_norm2."),
    (r"^blocks\.(\d+)\.attn\.qkv\.", r"encoder.layers.\1.self_attn.qkv."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"encoder.layers.\1.self_attn.projection."),
    (r"^blocks\.(\d+)\.mlp\.", r"encoder.layers.\1.mlp."),
    (r"^norm\.", "post_layernorm."),
]


def preprocess(image, size: int = 224) -> Tensor:
    """The released preprocessing, in PIL: short side to ``size`` (bicubic; long side truncated to int),
    central crop (offsets rounded half to even), RGB after resizing, CLIP mean/std. -> [3, size, size]."""
    from PIL import Image

    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    image = image.resize((size, new_long) if w <= h else (new_long, size), Image.BICUBIC)
    w, h = image.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    image = image.crop((left, top, left + size, top + size)).convert("RGB")
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - torch.tensor(CLIP_MEAN)[:, None, None]) / torch.tensor(CLIP_STD)[:, None, None]


def split_checkpoint(state: dict[str, Tensor]) -> tuple[dict, dict, dict]:
    """The released state dict -> (vision, text, head) state dicts in transformers' naming. Strict: an
    unexpected key is an error, so a changed checkpoint layout cannot load silently."""
    vision, text, head, unknown = {}, {}, {}, []
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith("blip.visual_encoder."):
            name = key.removeprefix("blip.visual_encoder.")
            for pattern, repl in VISION_RENAMES:
                name, n = re.subn(pattern, repl, name)
                if n:
                    break
            else:
                unknown.append(key)
            vision[name] = value
        elif key.startswith("blip.text_encoder."):
            name = key.removeprefix("blip.text_encoder.")
            if name != "embeddings.position_ids":
                text[name] = value
        elif key.startswith("mlp.layers."):
            head[key.removeprefix("mlp.layers.")] = value
        elif not key.startswith(UNUSED):
            unknown.append(key)
    if unknown:
        raise ValueError(f"ImageReward checkpoint has unexpected keys: {unknown[:5]}")
    return vision, text, head


class ImageRewardModel(nn.Module):
    """BLIP image encoder + cross-attending text encoder + MLP head; ``forward`` -> normalised scores [N]."""

    def __init__(self, vision_config, text_config):
        from transformers import BlipTextModel, BlipVisionModel

        super().__init__()
        self.vision = BlipVisionModel(vision_config)
        self.text = BlipTextModel(text_config, add_pooling_layer=False)
        widths = [text_config.hidden_size, *HEAD_WIDTHS]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < 3:
                layers.append(nn.Dropout(0.2 if i < 2 else 0.1))
        self.layers = nn.Sequential(*layers)  # state-dict names layers.{0,2,4,6,7}, as released

    def forward(self, pixel_values: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        image = self.vision(pixel_values=pixel_values).last_hidden_state
        text = self.text(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=image,
            encoder_attention_mask=torch.ones(image.shape[:-1], dtype=torch.long, device=image.device),
        ).last_hidden_state
        return ((self.layers(text[:, 0].float()) - MEAN) / STD)[:, 0]


def vision_config(vision: dict[str, Tensor], heads: int | None = None):
    """BLIP's ViT as a transformers config, from the checkpoint's shapes. The number of heads cannot be read
    from them: null means ViT's head width of 64 (16 heads for the released ViT-L/16)."""
    from transformers import BlipVisionConfig

    hidden = vision["embeddings.class_embedding"].shape[-1]
    patch = vision["embeddings.patch_embedding.weight"].shape[-1]
    tokens = vision["embeddings.position_embedding"].shape[1] - 1
    return BlipVisionConfig(
        hidden_size=hidden,
        intermediate_size=vision["encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=1 + max(int(k.split(".")[2]) for k in vision if k.startswith("encoder.layers.")),
        num_attention_heads=heads or hidden // 64,
        image_size=int(round(tokens**0.5)) * patch,
        patch_size=patch,
        layer_norm_eps=1e-6,  # timm's ViT in BLIP; transformers' default 1e-5 shifts embeddings by ~4e-5
    )


def text_config(med: dict, encoder_hidden_size: int):
    """BLIP's BERT with cross-attention, from its ``med_config.json``, attending to ``encoder_hidden_size``-wide image tokens."""
    from transformers import BlipTextConfig

    return BlipTextConfig(
        vocab_size=med["vocab_size"],
        hidden_size=med["hidden_size"],
        encoder_hidden_size=encoder_hidden_size,
        intermediate_size=med["intermediate_size"],
        num_hidden_layers=med["num_hidden_layers"],
        num_attention_heads=med["num_attention_heads"],  # BlipTextConfig's default (8) is not BERT-base's (12)
        max_position_embeddings=med["max_position_embeddings"],
        layer_norm_eps=med["layer_norm_eps"],
        pad_token_id=med.get("pad_token_id", 0),
        **{k: med[k] for k in ("bos_token_id", "sep_token_id") if k in med},
        is_decoder=True,  # in the config, this is what builds the cross-attention layers
    )


def load_tokenizer(tokenizer: str, allow_download: bool):
    """BLIP's tokenizer: bert-base-uncased with [DEC] as bos and [ENC] added (ids 30522, 30523 in BERT's vocab)."""
    from transformers import BertTokenizer

    tok = fetch(BertTokenizer.from_pretrained, tokenizer, allow_download)
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tok


@functools.lru_cache(maxsize=None)
def load_image_reward(checkpoint: str, tokenizer: str, vision_heads: int | None = None, dtype: str = "float32", device: str = "cpu", allow_download: bool = False):
    """(model, tokenizer, image size) from a folder or hub repo holding ``ImageReward.pt`` and ``med_config.json``
    (or the .pt file itself, with med_config.json beside it)."""
    with naming("image_reward"):
        if Path(checkpoint).is_file():
            weights, med = Path(checkpoint), Path(checkpoint).with_name("med_config.json")
        else:
            weights = hub_file(checkpoint, "ImageReward.pt", allow_download, "image_reward")
            med = hub_file(checkpoint, "med_config.json", allow_download, "image_reward")
        tok = load_tokenizer(tokenizer, allow_download)
    vision, text, head = split_checkpoint(torch.load(weights, map_location="cpu", weights_only=True))
    vision_cfg = vision_config(vision, vision_heads)
    med = {"bos_token_id": tok.bos_token_id, "sep_token_id": tok.sep_token_id, **json.loads(Path(med).read_text())}
    text_cfg = text_config(med, vision_cfg.hidden_size)
    if text_cfg.vocab_size != len(tok):
        raise ValueError(f"image_reward: tokenizer {tokenizer!r} has {len(tok)} tokens, the checkpoint's text encoder {text_cfg.vocab_size}")
    model = ImageRewardModel(vision_cfg, text_cfg)
    model.vision.load_state_dict(vision, strict=True)
    model.text.load_state_dict(text, strict=True)
    model.layers.load_state_dict(head, strict=True)
    return model.to(device=device, dtype=dtype_of(dtype)).eval().requires_grad_(False), tok, vision_cfg.image_size


class ImageReward:
    """Per-sample ImageReward-v1.0 score (column ``image_reward``); aggregate: its mean.

    checkpoint: a hub repo or folder with ImageReward.pt and med_config.json (THUDM/ImageReward).
    tokenizer: bert-base-uncased (hub id or folder). vision_heads: null for head width 64 (16 heads, as released).
    """

    text_to_image = True  # scores RGB images (of text prompts): see experiment.build

    def __init__(self, checkpoint: str = "THUDM/ImageReward", tokenizer: str = "bert-base-uncased", vision_heads: int | None = None,
                 batch_size: int = 16, dtype: str = "float32", device: str = "cpu", allow_download: bool = False):
        require(checkpoint, allow_download, "image_reward")
        require(tokenizer, allow_download, "image_reward.tokenizer")
        self.args = (checkpoint, tokenizer, vision_heads, dtype, device, allow_download)
        self.batch_size = batch_size

    @torch.no_grad()
    def score(self, images: list, prompts: list[str]) -> np.ndarray:
        """Scores of PIL images against their prompts (one prompt per image)."""
        model, tok, size = load_image_reward(*self.args)
        param = next(model.parameters())
        out = []
        for lo in range(0, len(images), self.batch_size):
            pixels = torch.stack([preprocess(im, size) for im in images[lo : lo + self.batch_size]])
            text = tok(list(prompts[lo : lo + self.batch_size]), padding="max_length", truncation=True, max_length=MAX_TEXT_LENGTH, return_tensors="pt")
            scores = model(pixels.to(param.device, param.dtype), text.input_ids.to(param.device), text.attention_mask.to(param.device))
            out.append(scores.float().cpu().numpy())
        return np.concatenate(out)

    def per_sample(self, images: Tensor, prompts) -> dict[str, np.ndarray]:
        return {"image_reward": self.score(to_pil(images), list(prompts))}

    def aggregate(self, columns: dict[str, np.ndarray]) -> dict[str, float]:
        return {"image_reward": float(np.mean(columns["image_reward"]))}


def to_original_layout(model: ImageRewardModel) -> dict[str, Tensor]:
    """The inverse of ``split_checkpoint``: our model's weights under the released checkpoint's key names
    (used to write tiny stand-in checkpoints for smoke runs)."""
    inverse = [
        ("embeddings.class_embedding", "cls_token"),
        ("embeddings.position_embedding", "pos_embed"),
        ("embeddings.patch_embedding.", "patch_embed.proj."),
        ("post_layernorm.", "norm."),
        (".layer_norm1.", ".norm1."),
        (".layer_norm2.", ".norm2."),
        (".self_attn.qkv.", ".attn.qkv."),
        (".self_attn.projection.", ".attn.proj."),
        ("encoder.layers.", "blocks."),
    ]
    state = {}
    for key, value in model.vision.state_dict().items():
        for ours, theirs in inverse:
            key = key.replace(ours, theirs)
        state[f"blip.visual_encoder.{key}"] = value
    state.update({f"blip.text_encoder.{k}": v for k, v in model.text.state_dict().items()})
    state.update({f"mlp.layers.{k}": v for k, v in model.layers.state_dict().items()})
    return state

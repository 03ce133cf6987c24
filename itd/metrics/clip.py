"""CLIP-based metrics: PickScore (raw score and the paired win-rate) and CLIP score.

Both embed the image (the model's own image processor, PIL backend as in transformers 4) and the prompt
(padded, truncated to 77 tokens) with a transformers ``CLIPModel`` and take the cosine of the projected
embeddings:

- PickScore_v1 (Kirstain et al. 2023, ``yuvalkirstain/PickScore_v1`` with the processor of
  ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``): raw score = logit_scale.exp() · cosine (~21-23 on real
  images). The paper's "PickScore" column is the pairwise win-rate: per prompt, the softmax over the
  (baseline, guided) pair of raw scores, averaged; ``paired`` gives it for each arm against the other.
- CLIP score (torchmetrics' definition): 100 · max(cosine, 0), with a configurable CLIP model.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from itd.metrics.images import to_pil
from itd.models.hub import dtype_of, fetch, naming, require


@functools.lru_cache(maxsize=None)
def load_clip(model: str, processor: str, dtype: str, device: str, allow_download: bool, what: str):
    """(CLIPModel, image processor, tokenizer); cached per (ids, dtype, device)."""
    from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

    with naming(what):
        net = fetch(CLIPModel.from_pretrained, model, allow_download, dtype=dtype_of(dtype))
        images = fetch(CLIPImageProcessorPil.from_pretrained, processor, allow_download)
        tokenizer = fetch(AutoTokenizer.from_pretrained, processor, allow_download)
    return net.to(device).eval().requires_grad_(False), images, tokenizer


class _Clip:
    """Cosine similarity of images and their prompts under one CLIP model, in batches."""

    text_to_image = True  # scores RGB images (of text prompts): see experiment.build

    name = "clip"

    def __init__(self, model: str, processor: str | None = None, batch_size: int = 16, dtype: str = "float32",
                 device: str = "cpu", allow_download: bool = False):
        processor = processor or model
        for key, model_id in ((self.name, model), (f"{self.name}.processor", processor)):
            require(model_id, allow_download, key)
        self.args = (model, processor, dtype, device, allow_download, self.name)
        self.batch_size = batch_size

    @torch.no_grad()
    def cosine_and_scale(self, images: list, prompts: list[str]) -> tuple[np.ndarray, float]:
        net, processor, tokenizer = load_clip(*self.args)
        param = next(net.parameters())
        out = []
        for lo in range(0, len(images), self.batch_size):
            pixels = processor(images=images[lo : lo + self.batch_size], return_tensors="pt").pixel_values
            text = tokenizer(list(prompts[lo : lo + self.batch_size]), padding=True, truncation=True, max_length=77, return_tensors="pt")
            image_emb = net.get_image_features(pixel_values=pixels.to(param.device, param.dtype)).pooler_output
            text_emb = net.get_text_features(input_ids=text.input_ids.to(param.device), attention_mask=text.attention_mask.to(param.device)).pooler_output
            cos = torch.nn.functional.cosine_similarity(image_emb.float(), text_emb.float(), dim=-1)
            out.append(cos.cpu().numpy())
        return np.concatenate(out), float(net.logit_scale.float().exp())


class PickScore(_Clip):
    """Per-sample raw PickScore (column ``pickscore``); aggregate: its mean; paired: ``pickscore_winrate``."""

    name = "pickscore"

    def __init__(self, model: str = "yuvalkirstain/PickScore_v1", processor: str | None = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", **kwargs):
        super().__init__(model, processor, **kwargs)

    def per_sample(self, images: Tensor, prompts) -> dict[str, np.ndarray]:
        cos, scale = self.cosine_and_scale(to_pil(images), list(prompts))
        return {"pickscore": scale * cos}

    def aggregate(self, columns: dict[str, np.ndarray]) -> dict[str, float]:
        return {"pickscore": float(np.mean(columns["pickscore"]))}

    @staticmethod
    def paired(other: dict[str, np.ndarray], this: dict[str, np.ndarray]) -> dict[str, float]:
        """Win-rate of ``this`` arm over ``other`` on the same prompts and seeds: mean over prompts of the
        softmax over the pair, i.e. sigmoid(score_this - score_other)."""
        diff = np.asarray(this["pickscore"], np.float64) - np.asarray(other["pickscore"], np.float64)
        return {"pickscore_winrate": float(np.mean(1.0 / (1.0 + np.exp(-diff))))}


class ClipScore(_Clip):
    """Per-sample CLIP score, 100 · max(cosine, 0) (column ``clip_score``); aggregate: its mean."""

    name = "clip_score"

    def __init__(self, model: str = "openai/clip-vit-large-patch14", processor: str | None = None, **kwargs):
        super().__init__(model, processor, **kwargs)

    def per_sample(self, images: Tensor, prompts) -> dict[str, np.ndarray]:
        cos, _ = self.cosine_and_scale(to_pil(images), list(prompts))
        return {"clip_score": 100.0 * np.maximum(cos, 0.0)}

    def aggregate(self, columns: dict[str, np.ndarray]) -> dict[str, float]:
        return {"clip_score": float(np.mean(columns["clip_score"]))}

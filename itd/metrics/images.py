"""Generated images as the metrics see them: quantised to 8 bits exactly as they are saved to PNG."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def to_uint8(images: Tensor) -> np.ndarray:
    """Images in [-1, 1], [N, 3, H, W] -> uint8 [N, H, W, 3] (the pixels written to ``images/*.png``)."""
    return images.float().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def to_pil(images: Tensor) -> list:
    from PIL import Image

    return [Image.fromarray(a) for a in to_uint8(images)]

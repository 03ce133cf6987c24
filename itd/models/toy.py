"""The embedded digits world: class-conditional MLP denoisers and a digit classifier (the judge).

Images are scikit-learn's 8x8 digits scaled to [-1, 1], shape [B, 8, 8]; the class label plays the
prompt and the label ``NULL_LABEL`` is the unconditional input for classifier-free guidance.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

from itd.denoisers import ConsistencyDenoiser, EpsDenoiser
from itd.schedule import NoiseSchedule

NUM_CLASSES = 10
NULL_LABEL = NUM_CLASSES
IMAGE_SHAPE = (8, 8)
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of integer timesteps (DDPM / transformer style), [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=-1)


class ResBlock(nn.Module):
    def __init__(self, width: int, mult: int = 2):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.emb = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, mult * width), nn.SiLU(), nn.Linear(mult * width, width))

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        return h + self.mlp(self.norm(h) + self.emb(emb))


class DigitsNet(nn.Module):
    """eps-prediction MLP: ``net(x [B, 8, 8], t [B], labels [B]) -> eps [B, 8, 8]``."""

    def __init__(self, width: int = 256, blocks: int = 3, temb_dim: int = 128):
        super().__init__()
        self.config = dict(width=width, blocks=blocks, temb_dim=temb_dim)
        self.temb_dim = temb_dim
        self.inp = nn.Linear(math.prod(IMAGE_SHAPE), width)
        self.temb = nn.Sequential(nn.Linear(temb_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.label = nn.Embedding(NUM_CLASSES + 1, width)
        self.blocks = nn.ModuleList(ResBlock(width) for _ in range(blocks))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, math.prod(IMAGE_SHAPE)))

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        emb = nn.functional.silu(self.temb(timestep_embedding(t, self.temb_dim)) + self.label(labels))
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h).view_as(x)


class DigitsJudge(nn.Module):
    """Digit classifier; ``features`` (penultimate layer) define the Frechet distance."""

    def __init__(self, width: int = 256, feature_dim: int = 64):
        super().__init__()
        self.config = dict(width=width, feature_dim=feature_dim)
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(IMAGE_SHAPE), width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(), nn.Linear(width, feature_dim), nn.SiLU(),
        )
        self.head = nn.Linear(feature_dim, NUM_CLASSES)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def save_checkpoint(model: nn.Module, path: str | Path, **meta) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"config": model.config, "state_dict": model.state_dict(), "meta": meta}, tmp)
    tmp.replace(path)


def load_checkpoint(cls: type[nn.Module], path: str | Path | None, default_name: str) -> nn.Module:
    """Build ``cls`` from a checkpoint (``None``: the shipped weights); eval mode, no grad."""
    path = Path(path) if path else WEIGHTS_DIR / default_name
    if not path.is_file():
        raise FileNotFoundError(
            f"digits checkpoint {path} not found; regenerate it with `python -m itd.train_digits all` "
            "or point the config's `checkpoint` at a copy"
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = cls(**ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval().requires_grad_(False)


def load_teacher(schedule: NoiseSchedule, checkpoint: str | None = None) -> EpsDenoiser:
    """The digits teacher: an eps-prediction network (wrap it in CFGDenoiser for guidance)."""
    return EpsDenoiser(load_checkpoint(DigitsNet, checkpoint, "digits_teacher.pt"), schedule)


def load_student(schedule: NoiseSchedule, checkpoint: str | None = None) -> ConsistencyDenoiser:
    """The digits student: a latent-consistency-distilled network with the LCM boundary condition."""
    return ConsistencyDenoiser(load_checkpoint(DigitsNet, checkpoint, "digits_student.pt"), schedule)


def load_judge(checkpoint: str | None = None) -> DigitsJudge:
    return load_checkpoint(DigitsJudge, checkpoint, "digits_judge.pt")

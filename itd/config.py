"""Dataclass schemas for the composed config: a misspelt key or a wrong type fails at compose time.

Registered in Hydra's ConfigStore as ``run_schema`` (the primary config's first default).
Nodes that are built with ``_target_`` keep their arguments open (``Any``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from itd.models.smoke import register_resolver


@dataclass
class StudentConf:
    name: str = MISSING
    space: str = MISSING  # the latent space it denoises (digits-8x8, sdxl-vae): must equal the teacher's
    num_steps: int = MISSING
    timesteps: Any = MISSING  # a partial recipe: (num_steps) -> list[int]
    model: Any = MISSING  # _target_ loader taking schedule=


@dataclass
class TeacherConf:
    name: str = MISSING
    space: str = MISSING
    cfg_scale: float = MISSING
    model: Any = MISSING


@dataclass
class RenoiserConf:
    _target_: str = "itd.renoise.Renoiser"
    timestep: Any = MISSING
    noise: Any = MISSING


@dataclass
class GuidanceConf:
    form: str = "eps"  # x0 | eps
    lam: Any = 0.2  # a number, or one per student step
    steps: Any = 1  # k (first k steps) or a list of step indices
    eps_rule: str = "rederive"  # x0-form: rederive | keep
    weights: Optional[List[float]] = None  # convex weights over [teacher, *extra_teachers]
    extra_teachers: List[TeacherConf] = field(default_factory=list)


@dataclass
class ShardConf:
    index: Optional[int] = None  # null: 0, or this task's index in a Slurm array (single runs only)
    count: Optional[int] = None  # null: 1, or the Slurm array's size


@dataclass
class RunConf:
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    batch_size: int = 1000
    device: str = "cpu"
    threads: int = 2  # torch CPU threads
    dtype: str = "float32"  # SDXL-family weights and activations (float16 / bfloat16 on CUDA)
    compile: bool = False  # torch.compile the networks (in place)
    allow_download: bool = False  # let loaders fetch missing models from the hub
    resolution: int = 1024  # SDXL-family image size (pixels, square)
    models: Dict[str, Optional[str]] = field(default_factory=dict)  # hub ids or local paths, one place
    coco_annotations: Optional[str] = None  # COCO captions json for data=coco
    fid_reference: Optional[str] = None  # a folder of reference images or an .npz with mu, sigma
    shard: ShardConf = field(default_factory=ShardConf)  # this job makes shard index of count (a block of samples)
    store: Optional[str] = None  # the sample store (finished batches, reused by reruns and sweeps); null: none
    schedule: Any = MISSING
    world: Any = MISSING
    student: StudentConf = MISSING
    teacher: TeacherConf = MISSING
    solver: Any = MISSING
    renoiser: RenoiserConf = MISSING
    guidance: GuidanceConf = MISSING
    data: Any = MISSING  # a prompt set (itd.data.*): keys vary, checked when built
    metrics: Any = MISSING
    logger: Any = MISSING


def register() -> None:
    ConfigStore.instance().store(name="run_schema", node=RunConf)
    register_resolver()


register()

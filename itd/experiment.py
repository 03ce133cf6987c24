"""One run: generate baseline (student alone) and guided samples on the same seeds, evaluate, save, log.

``build(cfg)`` turns a composed config into an ``Experiment`` (checking it before any model is built);
``run(experiment, out_dir)`` works without Hydra.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from itd.denoisers import CFGDenoiser, Denoiser
from itd.guidance import ConfigError, GuidancePlan, TeacherGuidance, check_weights
from itd.io import atomic_write, save_npz, write_json
from itd.logging import NullLogger
from itd.models.hub import MissingModelError, dtype_of
from itd.noise import NoiseStreams
from itd.sampling import NFECounter, Solver, sample
from itd.schedule import NoiseSchedule, check_timesteps
from itd.store import ArmStore, arm_spec, metrics_key

METHODS = ("baseline", "guided")


@dataclass
class Experiment:
    schedule: NoiseSchedule
    student: Denoiser
    timesteps: list[int]
    solver: Solver
    guidance: TeacherGuidance
    world: object  # shape, cond(prompts), decode(latents), writer(out_dir, method): itd.data.digits, itd.models.sdxl
    data: object  # the prompt set: num_samples, prompts_at(indices), describe(indices)
    metrics: object  # per_sample(images, prompts) -> columns, aggregate(columns) -> numbers
    seeds: Sequence[int] = (0,)
    batch_size: int = 1000
    device: str = "cpu"
    logger: object = None
    config: dict = field(default_factory=dict)
    dtype: torch.dtype = torch.float32  # the latents' dtype in the loop (the networks' own: fp16 / bf16 on GPU)
    shard: tuple[int, int] = (0, 1)  # (index, count): this job makes the samples of shard_range(...)
    store: str | None = None  # the sample store's folder; None: nothing is stored or reused
    stores: dict = field(init=False, default=None)  # guided (bool) -> ArmStore
    warmed: bool = field(init=False, default=False)  # one untimed guided batch has run (see generate)
    metrics_key: str = field(init=False, default="")

    def __post_init__(self):
        self.indices = shard_range(self.data.num_samples, *self.shard)
        if self.store:
            self.stores = {guided: ArmStore(self.store, arm_spec(self.config, guided)) for guided in (False, True)}
            self.metrics_key = "metrics-" + metrics_key(self.config)


def _build(node, what: str, **kwargs):
    """``instantiate``, with the failing constructor's own message as one ConfigError line."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        raise ConfigError(str(cause) if isinstance(cause, MissingModelError) else f"{what}: {cause}") from err


@dataclass(frozen=True)
class Checked:
    """What ``check`` built on the way (cheap, model-free), reused by ``build``."""

    plan: GuidancePlan
    timesteps: list[int]
    renoiser: object
    data: object
    shard: tuple[int, int]


def shard_of(cfg: DictConfig, num_samples: int) -> tuple[int, int]:
    """(index, count) from ``shard.index`` / ``shard.count``. Left null, they come from a Slurm array
    (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT) when a single run is one task of it;
    in a Hydra multirun, array tasks are the sweep's jobs, not shards, so null means (0, 1) there."""
    index, count = cfg.shard.index, cfg.shard.count
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    if index is None and task is not None and not _multirun():
        index = int(task) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", 0))
        count = count if count is not None else int(os.environ.get("SLURM_ARRAY_TASK_COUNT", 1))
    index, count = index or 0, count or 1
    if not 0 <= index < count:
        raise ConfigError(f"shard.index={index} must be in [0, shard.count={count})")
    if count > num_samples:
        raise ConfigError(f"shard.count={count} exceeds data.num_samples={num_samples}: some shards would be empty")
    return index, count


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check(cfg: DictConfig) -> Checked:
    """Everything that can be checked without a model; raises ConfigError with one line."""
    for teacher in [cfg.teacher, *cfg.guidance.extra_teachers]:
        if teacher.space != cfg.student.space:
            raise ConfigError(
                f"student {cfg.student.name} denoises {cfg.student.space} latents but teacher {teacher.name} denoises "
                f"{teacher.space}: pick a teacher of the same latent space"
            )
    g = OmegaConf.to_container(cfg.guidance, resolve=True)
    plan = GuidancePlan(form=g["form"], lam=g["lam"], steps=g["steps"], eps_rule=g["eps_rule"])
    try:
        timesteps = check_timesteps(_build(cfg.student.timesteps, "student.timesteps")(cfg.student.num_steps))
    except ValueError as err:
        raise ConfigError(f"student.timesteps: {err}") from None
    renoiser = _build(cfg.renoiser, "renoiser")
    plan.validate(len(timesteps), renoiser)
    check_weights(g["weights"], 1 + len(g["extra_teachers"]))
    data = _build(cfg.data, "data")
    if _scores_text_to_image(cfg.metrics) and not isinstance(data.prompts_at([0])[0], str):
        raise ConfigError(
            f"these metrics score RGB images against text prompts, but student {cfg.student.name} makes {cfg.student.space} "
            "samples of class labels: use its own metrics (metrics=digits) or an SDXL student (e.g. student=dmd2)"
        )
    if not cfg.seeds:
        raise ConfigError("seeds is empty; give at least one, e.g. seeds=[0]")
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size={cfg.batch_size} must be >= 1")
    return Checked(plan, timesteps, renoiser, data, shard_of(cfg, data.num_samples))


def _scores_text_to_image(metrics: DictConfig) -> bool:
    """Whether the metrics node, or one of the metrics it combines, is a text-to-image metric (FID, ImageReward, ...)."""
    nodes = [metrics, *(v for v in metrics.values() if isinstance(v, DictConfig))]
    return any(getattr(get_object(n._target_), "text_to_image", False) for n in nodes if n.get("_target_"))


def build(cfg: DictConfig) -> Experiment:
    """Check ``cfg``, then load the models and build everything a run needs."""
    checked = check(cfg)
    metrics = _build(cfg.metrics, "metrics")  # checks its files now; loads its networks on first use
    schedule = _build(cfg.schedule, "schedule")
    teachers = [
        CFGDenoiser(_build(t.model, f"teacher {t.name}", schedule=schedule), t.cfg_scale, schedule)
        for t in [cfg.teacher, *cfg.guidance.extra_teachers]
    ]
    weights = None if cfg.guidance.weights is None else list(cfg.guidance.weights)
    student = _build(cfg.student.model, f"student {cfg.student.name}", schedule=schedule)
    if cfg.compile:
        compile_networks([student, *(t.denoiser for t in teachers)])
    return Experiment(
        schedule=schedule,
        student=student,
        timesteps=checked.timesteps,
        solver=_build(cfg.solver, "solver"),
        guidance=TeacherGuidance(checked.plan, teachers, checked.renoiser, schedule, weights),
        world=_build(cfg.world, "world"),
        data=checked.data,
        metrics=metrics,
        seeds=list(cfg.seeds),
        batch_size=cfg.batch_size,
        device=cfg.device,
        logger=_build(cfg.logger, "logger"),
        config=OmegaConf.to_container(cfg, resolve=True),
        dtype=dtype_of(cfg.dtype),
        shard=checked.shard,
        store=cfg.store,
    )


def shard_range(num_samples: int, index: int, count: int) -> range:
    """The contiguous block of sample indices that shard ``index`` of ``count`` owns."""
    return range(num_samples * index // count, num_samples * (index + 1) // count)


def batches(indices: range, batch_size: int) -> list[range]:
    """``indices`` cut on the global grid of ``batch_size`` (so a shard's batches are the unsharded run's)."""
    out, lo = [], indices.start
    while lo < indices.stop:
        hi = min((lo // batch_size + 1) * batch_size, indices.stop)
        out.append(range(lo, hi))
        lo = hi
    return out


@dataclass
class Arm:
    """One arm's samples of one seed: per-sample metric columns, NFE per sample, seconds to sample and decode,
    and how many batches were generated now or found in the store."""

    columns: dict[str, np.ndarray]
    nfe: int  # network calls per sample (a teacher call with its CFG branches batched counts once)
    forwards: int  # forward passes per sample
    seconds: float
    generated: int = 0
    reused: int = 0
    kept: torch.Tensor | None = None


def compile_networks(denoisers) -> list:
    """``torch.compile`` (in place) each distinct network behind ``denoisers``: the UNet itself where the
    network wraps one (so the LoRA toggle stays outside the graph), once for a UNet the student and the
    teacher share. Returns the compiled modules."""
    compiled = {}
    for d in denoisers:
        net = getattr(d, "net", None)
        net = getattr(net, "unet", net)
        if isinstance(net, torch.nn.Module) and id(net) not in compiled:
            net.compile()
            compiled[id(net)] = net
    return list(compiled.values())


def generate(exp: Experiment, seed: int, guided: bool, writer=None, keep: int = 0, desc: str = "") -> Arm:
    """All samples of one seed in this shard, batch by batch: found in the store, or sampled, decoded and
    stored; then scored (or the stored scores reused) and handed to ``writer``."""
    store = exp.stores[guided] if exp.stores else None
    columns, kept, seconds, generated, reused = [], [], 0.0, 0, 0
    for batch in tqdm(batches(exp.indices, exp.batch_size), desc=desc, leave=False):
        prompts = exp.data.prompts_at(batch)
        stored = store.load(seed, batch) if store else None
        if stored is None and not exp.warmed:  # one untimed guided batch first: `seconds` is the steady state
            sample(exp.student, exp.solver, exp.timesteps, exp.schedule, exp.world.cond(prompts, exp.device),
                   NoiseStreams(seed, list(batch), exp.device), exp.world.shape, guidance=exp.guidance, dtype=exp.dtype)
            exp.warmed = True
        if stored is None:
            start, counter = time.perf_counter(), NFECounter()
            cond = exp.world.cond(prompts, exp.device)
            x = sample(
                exp.student, exp.solver, exp.timesteps, exp.schedule, cond, NoiseStreams(seed, list(batch), exp.device),
                exp.world.shape, guidance=exp.guidance if guided else None, callback=counter, dtype=exp.dtype,
            )
            stored = {"images": exp.world.to_store(exp.world.decode(x)),
                      "nfe": np.array([counter.student_calls, counter.teacher_calls, counter.forwards]),
                      "seconds": np.array(time.perf_counter() - start)}
            if store:
                store.save(seed, batch, **stored)
            generated += 1
        else:
            reused += 1
        images = exp.world.from_store(stored["images"])
        seconds += float(stored["seconds"])
        student_calls, teacher_calls, forwards = stored["nfe"].tolist()
        scores = store.load(seed, batch, exp.metrics_key) if store else None
        if scores is None:
            scores = exp.metrics.per_sample(images, prompts)
            if store and scores:
                store.save(seed, batch, exp.metrics_key, **scores)
        scores.pop("indices", None)
        columns.append(scores)
        if writer is not None:
            writer.add(seed, batch, images)
        if sum(len(k) for k in kept) < keep:
            kept.append(images[: keep - sum(len(k) for k in kept)])
    merged = {k: np.concatenate([c[k] for c in columns]) for k in columns[0]}
    return Arm(merged, student_calls + teacher_calls, forwards, seconds, generated, reused, torch.cat(kept) if kept else None)


def _summary(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Mean over seeds of every metric, plus ``<name>_std`` (population std, 0 for one seed)."""
    out = {}
    for key in per_seed[0]:
        values = np.array([r[key] for r in per_seed], dtype=np.float64)
        out[key] = float(values.mean())
        if key not in ("nfe", "forwards", "steps"):
            out[f"{key}_std"] = float(values.std())
    return out


def summarize(metrics, arms: dict[tuple[str, int], Arm], seeds: Sequence[int]) -> dict:
    """results.json from every (method, seed) arm: aggregates, paired metrics (arm vs arm on the same prompts
    and noise: PickScore's win-rate), cost; mean ± std over seeds and the guided / baseline ratio per seed.
    Used by ``run`` and, on merged shards, by ``itd.merge``."""
    per_seed = {m: [] for m in METHODS}
    for seed in seeds:
        for method in METHODS:
            arm = arms[method, seed]
            per_seed[method].append({**metrics.aggregate(arm.columns), "nfe": arm.nfe, "forwards": arm.forwards, "seconds": arm.seconds})
        if hasattr(metrics, "paired"):
            for this, other in (("baseline", "guided"), ("guided", "baseline")):
                per_seed[this][-1].update(metrics.paired(arms[other, seed].columns, arms[this, seed].columns))
    results = {m: _summary(per_seed[m]) for m in METHODS}
    ratios = [{k: g[k] / b[k] for k in b if b[k]} for b, g in zip(per_seed["baseline"], per_seed["guided"])]
    results["ratio"] = _summary(ratios)
    results["per_seed"] = per_seed
    return results


def run(exp: Experiment, out_dir: str | Path) -> dict:
    """Generate, evaluate and save; returns the results mapping that results.json holds. The logger's run
    is finished when this returns or raises."""
    out_dir = Path(out_dir)
    with (exp.logger or NullLogger()).session(exp.config, out_dir) as log:
        writers = {m: exp.world.writer(out_dir, m) for m in METHODS}
        arms, rows, grid = {}, [], {}
        indices = list(exp.indices)
        for seed in exp.seeds:
            for method in tqdm(METHODS, desc=f"seed {seed}: generate + evaluate"):
                keep = 40 if seed == exp.seeds[0] else 0
                arm = arms[method, seed] = generate(exp, seed, method == "guided", writers[method], keep, desc=f"seed {seed} {method}")
                grid.setdefault(method, arm.kept)
                save_features(out_dir, method, seed, arm.columns)
                scalar_cols = {k: v for k, v in arm.columns.items() if np.ndim(v) == 1}
                rows.append(pd.DataFrame({"method": method, "seed": seed, "index": indices, **exp.data.describe(indices), **scalar_cols}))
        for writer in writers.values():
            writer.close()
        results = summarize(exp.metrics, arms, exp.seeds)
        results["timesteps"] = exp.timesteps
        results["seeds"] = list(exp.seeds)
        results["shard"] = {"index": exp.shard[0], "count": exp.shard[1], "samples": [exp.indices.start, exp.indices.stop]}
        results["batches"] = {m: {k: sum(getattr(arms[m, s], k) for s in exp.seeds) for k in ("generated", "reused")} for m in METHODS}

        frame = pd.concat(rows, ignore_index=True).sort_values(["method", "seed", "index"], kind="stable", ignore_index=True)
        atomic_write(out_dir / "samples.parquet", lambda p: frame.to_parquet(p, index=False))
        grid_png = save_grid(out_dir / "grid.png", grid["baseline"], grid["guided"])
        write_json(out_dir / "results.json", results)
        shown = indices[: len(grid["baseline"])]
        log(results, grid_png, {"prompt": _prompt_texts(exp.data, shown), "baseline": grid["baseline"], "guided": grid["guided"]})
    return results


def _prompt_texts(data, indices: list[int]) -> list[str]:
    prompts = data.prompts_at(indices)
    return [str(p) for p in (prompts.tolist() if hasattr(prompts, "tolist") else prompts)]


def save_features(out_dir: Path, method: str, seed: int, columns: dict[str, np.ndarray]) -> Path | None:
    """Per-sample arrays with more than one value per sample (FID features) -> ``features/<method>_seed<seed>.npz``,
    rows in sample-index order, so FID over several runs is computed from merged features."""
    arrays = {k: v for k, v in columns.items() if np.ndim(v) > 1}
    if not arrays:
        return None
    return atomic_write(out_dir / "features" / f"{method}_seed{seed}.npz", lambda p: save_npz(p, **arrays))


def save_grid(path: Path, baseline: torch.Tensor, guided: torch.Tensor, per_row: int = 10) -> Path:
    """Baseline (left) and guided (right) images of the same seeds and indices, side by side.

    Images in [-1, 1], [N, H, W] (grey) or [N, 3, H, W]; small ones are upscaled to be visible.
    """
    from PIL import Image

    def tile(x: torch.Tensor) -> torch.Tensor:
        x = x if x.ndim == 4 else x[:, None]
        x = x.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).expand(-1, 3, -1, -1)
        x = torch.nn.functional.pad(x, (1, 1, 1, 1), value=255)  # 1-px white border per image
        cols = min(per_row, len(x))
        rows = -(-len(x) // cols)
        x = torch.cat([x, x.new_full((rows * cols - len(x), *x.shape[1:]), 255)])
        n, c, h, w = x.shape
        return x.view(rows, cols, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)

    left, right = tile(baseline), tile(guided)
    gap = left.new_full((left.shape[0], 4, 3), 255)
    canvas = torch.cat([left, gap, right], dim=1).numpy()
    scale = max(1, 256 // canvas.shape[0])
    image = Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
    return atomic_write(path, lambda p: image.save(p, format="PNG"))


def format_table(results: dict) -> str:
    """The console table: every metric's mean ± std over seeds, and the guided/baseline ratios."""
    keys = [k for k in results["baseline"] if not k.endswith("_std")]
    cells = {}
    for method in (*METHODS, "ratio"):
        for k in keys:
            value, std = results[method].get(k), results[method].get(f"{k}_std")
            cells[method, k] = "-" if value is None else f"{value:.4g}" + (f" ± {std:.2g}" if std is not None else "")
    widths = {k: 2 + max(len(k), *(len(cells[m, k]) for m in (*METHODS, "ratio"))) for k in keys}
    lines = [f"{'method':<10}" + "".join(f"{k:>{widths[k]}}" for k in keys)]
    lines += [f"{m:<10}" + "".join(f"{cells[m, k]:>{widths[k]}}" for k in keys) for m in (*METHODS, "ratio")]
    return "\n".join(lines)

"""Run loggers: W&B (offline by default: nothing leaves the machine unless ``logger.mode=online``).

A logger opens one run per job with ``session(config, out_dir)``; what the job logs goes through the
function it yields, and the run is finished when the job ends, with a failure exit code if it raised.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested mappings to one level with dotted keys."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def job_identity() -> tuple[str | None, str | None]:
    """(group, name) of this Hydra job: the sweep dir and the job's overrides in a multirun, else (None, None)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None, None
    hc = HydraConfig.get()
    return str(hc.sweep.dir), hc.job.override_dirname or str(hc.job.num)


class NullLogger:
    @contextlib.contextmanager
    def session(self, config: dict, out_dir: Path):
        yield lambda results, grid=None, examples=None: None


class WandbLogger:
    """One W&B run per job, its files under the job's output dir, grouped by sweep (``group`` null: the sweep
    dir in a multirun), the resolved config logged flat so a dashboard can group and filter by any key.
    Logs a results Table (one row per method), the per-seed numbers, the grid and an image Table
    (prompt, baseline, guided) of the first samples."""

    def __init__(self, project: str = "itd", mode: str = "offline", group: str | None = None, dir: str | None = None, examples: int = 8):
        if mode not in ("offline", "online", "disabled"):
            raise ValueError(f"logger.mode={mode!r} must be offline, online or disabled")
        self.project, self.mode, self.group, self.dir, self.examples = project, mode, group, dir, examples

    @contextlib.contextmanager
    def session(self, config: dict, out_dir: Path):
        import wandb

        run_dir = Path(self.dir or out_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        # W&B's own files land in the run dir unless the user pointed them elsewhere; restored afterwards.
        unset = [v for v in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR") if v not in os.environ]
        os.environ.update({v: str(run_dir) for v in unset})
        group, name = job_identity()
        run = wandb.init(project=self.project, mode=self.mode, group=self.group or group, name=name, dir=str(run_dir),
                         config=flatten(config), reinit="finish_previous")
        try:
            yield lambda results, grid=None, examples=None: self._log(run, results, grid, examples)
        except BaseException:
            run.finish(exit_code=1)
            raise
        else:
            run.finish()
        finally:
            for var in unset:
                os.environ.pop(var, None)

    def _log(self, run, results: dict, grid: Path | None, examples: dict | None) -> None:
        import wandb

        keys = sorted({k for m in ("baseline", "guided") for k in results[m]})
        table = wandb.Table(columns=["method", *keys])
        for method in ("baseline", "guided"):
            table.add_data(method, *[results[method].get(k) for k in keys])
        payload = {"results": table, **{f"{m}/{k}": v for m in ("baseline", "guided", "ratio") for k, v in results[m].items()}}
        if grid is not None:
            payload["grid"] = wandb.Image(str(grid), caption="baseline (left) vs guided (right), same seeds")
        if examples:
            from itd.metrics.images import to_uint8

            pictures = {}
            for m in ("baseline", "guided"):
                x = examples[m][: self.examples]
                pictures[m] = to_uint8(x if x.ndim == 4 else x[:, None].expand(-1, 3, -1, -1))
            images = wandb.Table(columns=["prompt", "baseline", "guided"])
            for prompt, b, g in zip(examples["prompt"], pictures["baseline"], pictures["guided"]):
                images.add_data(str(prompt), wandb.Image(b), wandb.Image(g))
            payload["samples"] = images
        run.log(payload)

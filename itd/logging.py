"""Run loggers: W&B (offline by default: nothing leaves the machine unless ``logger.mode=online``)."""

from __future__ import annotations

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


class NullLogger:
    def log(self, results: dict, config: dict, grid: Path | None = None) -> None:
        pass


class WandbLogger:
    """One W&B run per job, written under the job's output dir; the config is logged flat."""

    def __init__(self, project: str = "itd", mode: str = "offline", group: str | None = None, dir: str | None = None):
        if mode not in ("offline", "online", "disabled"):
            raise ValueError(f"logger.mode={mode!r} must be offline, online or disabled")
        self.project, self.mode, self.group, self.dir = project, mode, group, dir

    def log(self, results: dict, config: dict, grid: Path | None = None) -> None:
        import wandb

        run_dir = Path(self.dir or (grid.parent if grid else "."))
        # W&B's own files land in the run dir unless the user pointed them elsewhere; restored afterwards.
        unset = [v for v in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR") if v not in os.environ]
        os.environ.update({v: str(run_dir) for v in unset})
        run = wandb.init(project=self.project, mode=self.mode, group=self.group, dir=str(run_dir), config=flatten(config))
        try:
            keys = sorted({k for m in ("baseline", "guided") for k in results[m]})
            table = wandb.Table(columns=["method", *keys])
            for method in ("baseline", "guided"):
                table.add_data(method, *[results[method].get(k) for k in keys])
            payload = {"results": table, **{f"{m}/{k}": v for m in ("baseline", "guided", "ratio") for k, v in results[m].items()}}
            if grid is not None:
                payload["grid"] = wandb.Image(str(grid), caption="baseline (left) vs guided (right), same seeds")
            run.log(payload)
        finally:
            run.finish()
            for var in unset:
                os.environ.pop(var, None)

"""Read a sweep back: one row per job, with its config choices, its flat config and its results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from itd.logging import flatten


def collect(sweep_dir: str | Path) -> pd.DataFrame:
    """Every ``results.json`` below ``sweep_dir`` (a run or multirun dir) as one row.

    Columns: ``choice.<group>`` (Hydra's chosen option per group), ``cfg.<key>`` (the resolved config,
    flat) and ``<method>.<metric>`` (baseline, guided, ratio).
    """
    rows = []
    for path in sorted(Path(sweep_dir).rglob("results.json")):
        job = path.parent
        row = {"job": str(job.relative_to(sweep_dir)) if job != Path(sweep_dir) else "."}
        hydra_file, cfg_file = job / ".hydra" / "hydra.yaml", job / ".hydra" / "config.yaml"
        if hydra_file.exists():
            choices = OmegaConf.load(hydra_file).hydra.runtime.choices
            row.update({f"choice.{k}": v for k, v in choices.items() if not k.startswith("hydra/")})
        if cfg_file.exists():
            row.update(flatten(OmegaConf.to_container(OmegaConf.load(cfg_file)), "cfg."))
        results = json.loads(path.read_text())
        for method in ("baseline", "guided", "ratio"):
            row.update({f"{method}.{k}": v for k, v in results.get(method, {}).items()})
        rows.append(row)
    if not rows:
        raise FileNotFoundError(f"no results.json below {sweep_dir}; is it a run or multirun output dir?")
    return pd.DataFrame(rows)

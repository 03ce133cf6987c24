"""Read a sweep back: one row per configuration, with its config choices, its flat config and its results.

Every job of a multirun rewrites ``<sweep dir>/results.parquet`` when it finishes, so the table never
depends on W&B; ``python -m itd.merge <sweep dir>`` merges sharded configurations first and rewrites it
once more, complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from itd.io import atomic_write
from itd.logging import flatten

TABLE = "results.parquet"


def job_row(job: Path, root: Path) -> dict:
    """``job``'s results.json and .hydra files as one flat row."""
    row = {"job": str(job.relative_to(root)) if job != root else "."}
    hydra_file, cfg_file = job / ".hydra" / "hydra.yaml", job / ".hydra" / "config.yaml"
    if hydra_file.exists():
        choices = OmegaConf.load(hydra_file).hydra.runtime.choices
        row.update({f"choice.{k}": v for k, v in choices.items() if not k.startswith("hydra/")})
    if cfg_file.exists():
        row.update(flatten(OmegaConf.to_container(OmegaConf.load(cfg_file)), "cfg."))
    results = json.loads((job / "results.json").read_text())
    for method in ("baseline", "guided", "ratio"):
        row.update({f"{method}.{k}": v for k, v in results.get(method, {}).items()})
    shard = results.get("shard") or {}
    row["shards"] = shard.get("count", 1)
    return row


def collect(sweep_dir: str | Path, partial: bool = False) -> pd.DataFrame:
    """Every ``results.json`` below ``sweep_dir`` (a run or multirun dir) as one row.

    Columns: ``choice.<group>`` (Hydra's chosen option per group), ``cfg.<key>`` (the resolved config,
    flat) and ``<method>.<metric>`` (baseline, guided, ratio). The results of single shards are left out
    (``partial=True`` keeps them); merged ones (``merged/``, written by ``itd.merge``) are in.
    """
    root = Path(sweep_dir)
    rows = []
    for path in sorted(root.rglob("results.json")):
        if ".submitit" in path.parts:
            continue
        row = job_row(path.parent, root)
        if partial or row["shards"] == 1 or path.parent.parent.name == "merged":
            rows.append(row)
    if not rows:
        raise FileNotFoundError(f"no results.json below {sweep_dir}; is it a run or multirun output dir?")
    return pd.DataFrame(rows)


def write_table(sweep_dir: str | Path) -> Path | None:
    """``<sweep_dir>/results.parquet``: ``collect(sweep_dir)``, written atomically (None while no
    configuration is complete, e.g. only shards so far)."""
    try:
        frame = parquet_safe(collect(sweep_dir))
    except FileNotFoundError:
        return None
    return atomic_write(Path(sweep_dir) / TABLE, lambda p: frame.to_parquet(p, index=False))


def parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns parquet cannot type (lists, or numbers mixed with text, as config values across jobs may be) as JSON text."""
    out = frame.copy()
    for col in out.columns:
        values = [v for v in out[col] if v is not None and not (isinstance(v, float) and pd.isna(v))]
        kinds = {type(v) for v in values}
        if any(k in (list, dict, tuple) for k in kinds) or (len(kinds) > 1 and not kinds <= {int, float, bool}):
            out[col] = [None if v is None or (isinstance(v, float) and pd.isna(v)) else json.dumps(v) for v in out[col]]
    return out

"""Merge the shards of a sweep: one results row per configuration, FID over all shards' features.

    python -m itd.merge outputs/multirun/<date>/<time>

Jobs whose configs differ only in ``shard.index`` are one configuration. For each, with every shard
present, the per-sample columns (``samples.parquet``) and features (``features/``) are concatenated in
sample order and summarised by the same code as a single run (``itd.experiment.summarize``), so FID is
computed from the merged features and is the unsharded run's FID. The merged run lands in
``merged/<name>/`` (results.json, samples.parquet, features/, .hydra/), and ``results.parquet`` of the
sweep is rewritten with one row per configuration. Nothing is regenerated; the metrics' networks are not
loaded (only FID's reference statistics, cached).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import OmegaConf

import itd.config  # noqa: F401  (the ${smoke:...} resolver a config may use)
from itd.experiment import METHODS, Arm, save_features, summarize
from itd.io import atomic_write, write_json
from itd.store import digest
from itd.sweep import write_table


def shard_groups(sweep_dir: Path) -> dict[str, list[Path]]:
    """Sharded jobs below ``sweep_dir`` grouped by their config without ``shard``."""
    groups = defaultdict(list)
    for path in sorted(sweep_dir.rglob("results.json")):
        job = path.parent
        if job.parent.name == "merged" or not (job / ".hydra" / "config.yaml").is_file():
            continue
        shard = json.loads(path.read_text()).get("shard") or {}
        if shard.get("count", 1) > 1:
            cfg = OmegaConf.to_container(OmegaConf.load(job / ".hydra" / "config.yaml"))
            cfg.pop("shard", None)
            groups[digest(cfg)].append(job)
    return groups


def merge_group(jobs: list[Path], out: Path) -> dict:
    """Merge the shard jobs of one configuration into ``out``; raises ValueError if a shard is missing."""
    results = {job: json.loads((job / "results.json").read_text()) for job in jobs}
    count = next(iter(results.values()))["shard"]["count"]
    by_index = {r["shard"]["index"]: job for job, r in results.items()}
    missing = sorted(set(range(count)) - set(by_index))
    if missing:
        raise ValueError(f"{jobs[0].parent}: shards {missing} of {count} have no results.json yet; run them first")
    ordered = [by_index[i] for i in range(count)]
    cfg = OmegaConf.load(ordered[0] / ".hydra" / "config.yaml")
    metrics = instantiate(cfg.metrics)
    seeds = results[ordered[0]]["seeds"]
    frame = pd.concat([pd.read_parquet(job / "samples.parquet") for job in ordered], ignore_index=True)
    frame = frame.sort_values(["method", "seed", "index"], kind="stable", ignore_index=True)
    arms = {}
    for method in METHODS:
        for k, seed in enumerate(seeds):
            rows = frame[(frame.method == method) & (frame.seed == seed)]
            columns = {c: rows[c].to_numpy() for c in rows.columns if c not in ("method", "seed", "index")}
            features = [np.load(job / "features" / f"{method}_seed{seed}.npz") for job in ordered if (job / "features").is_dir()]
            for key in features[0].files if features else []:
                columns[key] = np.concatenate([f[key] for f in features])
            per_shard = [results[job]["per_seed"][method][k] for job in ordered]
            arms[method, seed] = Arm(columns, per_shard[0]["nfe"], per_shard[0]["forwards"], sum(p["seconds"] for p in per_shard))
            save_features(out, method, seed, columns)
    merged = summarize(metrics, arms, seeds)
    first = results[ordered[0]]
    merged.update(timesteps=first["timesteps"], seeds=seeds, shard={"index": None, "count": count, "samples": [0, len(frame) // (2 * len(seeds))]},
                  shards=[str(job) for job in ordered])
    atomic_write(out / "samples.parquet", lambda p: frame.to_parquet(p, index=False))
    shutil.copytree(ordered[0] / ".hydra", out / ".hydra", dirs_exist_ok=True)
    write_json(out / "results.json", merged)
    return merged


def merge(sweep_dir: str | Path) -> Path:
    """Merge every sharded configuration of ``sweep_dir``, then rewrite its results.parquet."""
    sweep_dir = Path(sweep_dir)
    for key, jobs in shard_groups(sweep_dir).items():
        merge_group(jobs, sweep_dir / "merged" / key)
    table = write_table(sweep_dir)
    if table is None:
        raise FileNotFoundError(f"no results.json below {sweep_dir}; is it a run or multirun output dir?")
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir")
    args = parser.parse_args(argv)
    try:
        table = merge(args.sweep_dir)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"{table} ({len(pd.read_parquet(table))} configurations)")


if __name__ == "__main__":
    main()

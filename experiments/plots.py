"""Figures from sweep directories (PNG).

    python experiments/plots.py lambda SWEEP_DIR [--metric fid] [--out lambda.png]   # experiment=*lambda_sweep
    python experiments/plots.py nfe SWEEP_DIR [--metric fd] [--out nfe.png]          # experiment=*cost
    python experiments/plots.py grid SWEEP_DIR [--out grid.png]                      # every job's samples

``lambda``: the guided arm's metric against λ (mean ± std over seeds), one curve per student and renoiser,
the unguided baseline as a dashed line. ``nfe``: the metric against network calls per sample, the student
at each step count and the guided student (4 + 1). ``grid``: each job's baseline | guided grid, one row
per job, labelled by its overrides. The metric defaults to FID (SDXL sweeps) or FD (digits).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments.make_tables import load  # noqa: E402


def default_metric(frame) -> str:
    return "fd" if "baseline.fd" in frame.columns else "fid"


def lambda_curves(frame, metric: str, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    keys = [c for c in ("cfg.student.name", "choice.renoiser") if c in frame.columns]
    for name, group in frame.groupby(keys):
        group = group.sort_values("cfg.guidance.lam")
        label = " / ".join(map(str, name if isinstance(name, tuple) else (name,)))
        line = ax.errorbar(group["cfg.guidance.lam"], group[f"guided.{metric}"], yerr=group.get(f"guided.{metric}_std"), marker="o", capsize=3, label=label)
        ax.axhline(group[f"baseline.{metric}"].iloc[0], ls="--", color=line[0].get_color(), lw=1)
    ax.set(xscale="log", xlabel="λ", ylabel=f"{metric} (guided; dashed: student alone)")
    ax.legend(fontsize=8)
    return save(fig, out)


def nfe_curve(frame, metric: str, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    base = frame.sort_values("baseline.nfe")
    ax.errorbar(base["baseline.nfe"], base[f"baseline.{metric}"], yerr=base.get(f"baseline.{metric}_std"), marker="o", capsize=3, label="student")
    guided = frame[frame["cfg.student.num_steps"] == frame["cfg.student.num_steps"].min()]
    ax.errorbar(guided["guided.nfe"], guided[f"guided.{metric}"], yerr=guided.get(f"guided.{metric}_std"), marker="*", ms=12, ls="none", capsize=3,
                label=f"student + teacher ({int(guided['cfg.student.num_steps'].iloc[0])} + 1)")
    ax.set(xlabel="network calls per sample (NFE)", ylabel=metric)
    ax.legend(fontsize=8)
    return save(fig, out)


def sample_grid(sweep_dir: Path, frame, out: Path) -> Path:
    from PIL import Image

    jobs = [(Path(sweep_dir) / job / "grid.png", job) for job in frame["job"]]
    jobs = [(p, j) for p, j in jobs if p.is_file()]
    if not jobs:
        raise SystemExit(f"error: no grid.png in the jobs of {sweep_dir}")
    fig, axes = plt.subplots(len(jobs), 1, figsize=(8, 2.2 * len(jobs)), squeeze=False)
    for ax, (path, job) in zip(axes[:, 0], jobs):
        ax.imshow(Image.open(path))
        overrides = Path(sweep_dir) / job / ".hydra" / "overrides.yaml"
        ax.set_title(overrides.read_text().replace("\n", " ").replace("- ", "") if overrides.is_file() else job, fontsize=8)
        ax.axis("off")
    fig.suptitle("baseline (left) | guided (right), same seeds", fontsize=9)
    return save(fig, out)


def save(fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("figure", choices=["lambda", "nfe", "grid"])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--metric", help="fid, fd, image_reward, ... (default: fid, or fd on digits)")
    parser.add_argument("--out", type=Path, help="PNG path (default: <sweep_dir>/<figure>.png)")
    args = parser.parse_args(argv)
    frame = load(args.sweep_dir)
    metric = args.metric or default_metric(frame)
    out = args.out or args.sweep_dir / f"{args.figure}.png"
    if args.figure == "lambda":
        path = lambda_curves(frame, metric, out)
    elif args.figure == "nfe":
        path = nfe_curve(frame, metric, out)
    else:
        path = sample_grid(args.sweep_dir, frame, out)
    print(path)


if __name__ == "__main__":
    main()

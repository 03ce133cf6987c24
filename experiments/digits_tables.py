"""Markdown tables of digits sweeps, as they appear in README.md.

    python experiments/digits_tables.py ablation outputs/multirun/<stamp>   # experiment=digits_ablation
    python experiments/digits_tables.py cost outputs/multirun/<stamp>       # experiment=digits_cost
    python experiments/digits_tables.py runs DIR [DIR ...]                  # any runs, one row each
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from itd.sweep import collect  # noqa: E402


def pm(mean: float, std: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def steps_label(steps) -> str:
    return f"k={steps}" if isinstance(steps, int) else "steps " + ",".join(map(str, steps))


def ablation(frame: pd.DataFrame) -> str:
    """Guided/baseline FD ratio (mean ± std over seeds): renoiser x noise rule x guided steps (rows), lam (columns)."""
    frame = frame.assign(
        renoiser=frame["choice.renoiser"],
        noise=frame["choice.renoiser/noise"],
        steps=frame["cfg.guidance.steps"].map(steps_label),
        lam=frame["cfg.guidance.lam"],
    )
    lams = sorted(frame.lam.unique())
    lines = ["| renoiser | noise | guided | " + " | ".join(f"λ={lam:g}" for lam in lams) + " |", "|---|---|---|" + "---|" * len(lams)]
    for (renoiser, noise, steps), group in frame.groupby(["renoiser", "noise", "steps"], sort=True):
        cells = []
        for lam in lams:
            row = group[group.lam == lam]
            cells.append(pm(row["ratio.fd"].iloc[0], row["ratio.fd_std"].iloc[0]) if len(row) else "")
        lines.append(f"| {renoiser} | {noise} | {steps} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost(frame: pd.DataFrame) -> str:
    """The student at N steps against 4 steps + 1 guided teacher call."""
    frame = frame.sort_values("cfg.student.num_steps")
    lines = ["| sampler | NFE (calls) | forward passes | FD ↓ | accuracy ↑ | seconds / 2k samples |", "|---|---|---|---|---|---|"]

    def line(name, r, m):
        lines.append(
            f"| {name} | {r[f'{m}.nfe']:.0f} | {r[f'{m}.forwards']:.0f} | {pm(r[f'{m}.fd'], r[f'{m}.fd_std'])} | "
            f"{pm(r[f'{m}.accuracy'], r[f'{m}.accuracy_std'], 4)} | {r[f'{m}.seconds']:.2f} |"
        )

    for _, r in frame.iterrows():
        line(f"student, {r['cfg.student.num_steps']} steps", r, "baseline")
    for _, r in frame[frame["cfg.student.num_steps"] == 4].iterrows():
        line(f"student, 4 steps + teacher (guidance.steps={r['cfg.guidance.steps']}, λ={r['cfg.guidance.lam']:g})", r, "guided")
    return "\n".join(lines)


def runs(frame: pd.DataFrame) -> str:
    lines = ["| job | baseline FD | guided FD | FD ratio | baseline acc. | guided acc. |", "|---|---|---|---|---|---|"]
    for _, r in frame.iterrows():
        lines.append(
            f"| {r['job']} | {pm(r['baseline.fd'], r['baseline.fd_std'])} | {pm(r['guided.fd'], r['guided.fd_std'])} | "
            f"{pm(r['ratio.fd'], r['ratio.fd_std'])} | {r['baseline.accuracy']:.4f} | {r['guided.accuracy']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=["ablation", "cost", "runs"])
    parser.add_argument("dirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    frame = pd.concat([collect(d) for d in args.dirs], ignore_index=True)
    print({"ablation": ablation, "cost": cost, "runs": runs}[args.table](frame))


if __name__ == "__main__":
    main()

"""The paper's tables from our results, in Markdown or LaTeX, with its published numbers beside ours.

    python experiments/make_tables.py table1 SWEEP_DIR      # experiment=paper_table1 (or digits_table1)
    python experiments/make_tables.py table3 SWEEP_DIR      # experiment=paper_table3 (or digits_table3)
    python experiments/make_tables.py cost SWEEP_DIR        # experiment=paper_cost (or digits_cost)
    python experiments/make_tables.py ablation SWEEP_DIR    # experiment=digits_ablation
    python experiments/make_tables.py digits --run DIR      # run digits_table1, digits_table3, digits_cost
                                                             # into DIR, then print the three tables
    ... --format latex                                       # LaTeX instead of Markdown
    ... --wandb ENTITY/PROJECT --group SWEEP_DIR             # read the runs of a sweep from W&B (online)

Local results are the sweep's ``results.parquet`` (``python -m itd.merge`` writes it, merging shards) or,
without it, its ``results.json`` files. SDXL sweeps report FID, ImageReward and the PickScore win-rate;
digits sweeps FD and accuracy. The paper's columns are its published numbers ("as reported": Park, Lee
& Ye, arXiv 2412.08871, Tables 1 and 3 and its cost comparison, taken from a third-party summary of the
paper), for comparison only: digits is another world, and the paper's baseline and guided images do not
share noise while ours do.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from itd.sweep import TABLE, collect  # noqa: E402

SOURCE = "as reported in arXiv 2412.08871 (third-party summary)"
# student -> ((FID, ImageReward, PickScore win-rate) alone, (same) with one teacher step), paper Table 1.
PAPER_TABLE1 = {
    "lcm": ("LCM", (20.674, 0.561, 0.494), (20.149, 0.597, 0.505)),
    "lcm_lora": ("LCM-LoRA", (20.300, 0.494, 0.490), (19.815, 0.522, 0.510)),
    "lightning": ("SDXL-Lightning", (24.506, 0.787, 0.496), (23.876, 0.820, 0.503)),
    "dmd2": ("DMD2", (21.238, 0.777, 0.490), (20.937, 0.797, 0.510)),
    "turbo": ("SDXL-Turbo", (18.612, 0.296, 0.499), (18.481, 0.310, 0.501)),
    "digits_lcm": ("LCM", (20.674, 0.561, 0.494), (20.149, 0.597, 0.505)),  # digits: compared with LCM's row
}
PAPER_TABLE3 = {"none": (21.238, 0.777), "random": (21.105, 0.771), "same": (21.342, 0.777), "next": (20.937, 0.797)}  # DMD2
PAPER_COST = {"4 + 1": (20.149, 0.597, 1.987), 5: (20.732, 0.593, 1.996), 6: (21.540, 0.585, 2.250)}  # LCM: FID, IR, s/image
DIGITS_PRESETS = ("digits_table1", "digits_table3", "digits_cost")


def load(sweep_dir: str | Path) -> pd.DataFrame:
    table = Path(sweep_dir) / TABLE
    return pd.read_parquet(table) if table.is_file() else collect(sweep_dir)


def load_wandb(path: str, group: str) -> pd.DataFrame:
    """The runs of one sweep (W&B group) as the same columns ``collect`` gives: ``cfg.*`` and ``<method>.<metric>``."""
    import wandb

    rows = []
    for run in wandb.Api().runs(path, filters={"group": group}):
        row = {"job": run.name, **{f"cfg.{k}": v for k, v in run.config.items()}}
        row.update({k.replace("/", ".", 1): v for k, v in run.summary.items() if k.split("/")[0] in ("baseline", "guided", "ratio")})
        rows.append(row)
    if not rows:
        raise SystemExit(f"error: no W&B runs in {path} with group {group!r}")
    return pd.DataFrame(rows)


def is_digits(frame: pd.DataFrame) -> bool:
    return "baseline.fd" in frame.columns


def cell(row, key: str, digits: int = 3) -> str:
    if key not in row or pd.isna(row[key]):
        return "–"
    std = row.get(f"{key}_std")
    return f"{row[key]:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None and not pd.isna(std) and std > 0 else "")


def ours_metrics(frame: pd.DataFrame) -> list[tuple[str, str]]:
    if is_digits(frame):
        return [("fd", "FD ↓"), ("accuracy", "accuracy ↑")]
    return [("fid", "FID ↓"), ("image_reward", "ImageReward ↑"), ("pickscore_winrate", "PickScore win-rate ↑")]


def table1(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Per student: alone and ++ (ours, mean ± std over seeds), then the paper's FID / ImageReward / PickScore."""
    metrics = ours_metrics(frame)
    header = ["model", *(f"{label} (ours)" for _, label in metrics), "FID (paper)", "ImageReward (paper)", "PickScore (paper)"]
    rows = []
    for _, r in frame.sort_values("cfg.student.name", key=lambda s: s.map(list(PAPER_TABLE1).index)).iterrows():
        name, alone, plus = PAPER_TABLE1.get(r["cfg.student.name"], (r["cfg.student.name"], (None,) * 3, (None,) * 3))
        label = f"{name} (digits)" if is_digits(frame) else name
        for suffix, method, paper in (("", "baseline", alone), ("++", "guided", plus)):
            rows.append([label + suffix, *(cell(r, f"{method}.{k}") for k, _ in metrics), *(f"{v:.3f}" if v is not None else "–" for v in paper)])
    return header, rows


RULES = {"NextTimestep": "next", "RandomTimestep": "random", "same_timestep": "same"}


def renoise_rule(frame: pd.DataFrame) -> pd.Series:
    """next / random / same per row, from the chosen renoiser option or (W&B rows) its class."""
    if "choice.renoiser" in frame:
        return frame["choice.renoiser"]
    return frame["cfg.renoiser.timestep._target_"].map(lambda t: RULES[t.rsplit(".", 1)[-1]])


def table3(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The renoising timestep: no teacher (the baseline every job shares), random, same, next."""
    metrics = ours_metrics(frame)
    header = ["renoise timestep s", *(f"{label} (ours)" for _, label in metrics), "FID (paper, DMD2)", "ImageReward (paper, DMD2)"]
    frame = frame.assign(rule=renoise_rule(frame))
    names = {"none": "no teacher", "random": "random", "same": "s = t (same)", "next": "s = t − Δt (decreasing, next)"}
    first = frame.iloc[0]
    rows = [[names["none"], *(cell(first, f"baseline.{k}") for k, _ in metrics), *(f"{v:.3f}" for v in PAPER_TABLE3["none"])]]
    for rule in ("random", "same", "next"):
        for _, r in frame[frame.rule == rule].iterrows():
            rows.append([names[rule], *(cell(r, f"guided.{k}") for k, _ in metrics), *(f"{v:.3f}" for v in PAPER_TABLE3[rule])])
    return header, rows


def cost(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """4 steps + 1 teacher call against the student at 4, 5, 6 steps; NFE, forward passes, seconds per sample."""
    metrics = ours_metrics(frame)
    header = ["sampler", "NFE", "forward passes", *(f"{label} (ours)" for _, label in metrics), "ms / sample (ours)",
              "FID (paper, LCM)", "ImageReward (paper, LCM)", "s / image (paper)"]
    frame = frame.sort_values("cfg.student.num_steps")
    per_sample = frame["cfg.data.num_samples"].astype(float)

    def line(label, r, method, paper, n):
        ms = 1000 * r[f"{method}.seconds"] / n
        rows.append([label, f"{r[f'{method}.nfe']:.0f}", f"{r[f'{method}.forwards']:.0f}", *(cell(r, f"{method}.{k}") for k, _ in metrics),
                     f"{ms:.4g}", *([f"{v:.3f}" for v in paper] if paper else ["–"] * 3)])

    rows: list[list[str]] = []
    for (_, r), n in zip(frame.iterrows(), per_sample):
        steps = int(r["cfg.student.num_steps"])
        line(f"student, {steps} steps", r, "baseline", PAPER_COST.get(steps), n)
    for (_, r), n in zip(frame.iterrows(), per_sample):
        if int(r["cfg.student.num_steps"]) == 4:
            line("student, 4 steps + 1 teacher step", r, "guided", PAPER_COST["4 + 1"], n)
    return header, rows


def ablation(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Guided / baseline FD ratio: renoiser x noise rule x guided steps (rows), lam (columns)."""
    steps = frame["cfg.guidance.steps"].map(lambda s: json.loads(s) if isinstance(s, str) else s)
    frame = frame.assign(renoiser=renoise_rule(frame), noise=frame["cfg.renoiser.noise._target_"].map(lambda t: t.rsplit(".", 1)[-1].removesuffix("_noise")), lam=frame["cfg.guidance.lam"],
                         steps=steps.map(lambda s: f"k={s}" if isinstance(s, int) else "steps " + ",".join(map(str, s))))
    lams = sorted(frame.lam.unique())
    header = ["renoiser", "noise", "guided", *(f"λ={lam:g}" for lam in lams)]
    rows = []
    for (renoiser, noise, k), group in frame.groupby(["renoiser", "noise", "steps"], sort=True):
        cells = [cell(group[group.lam == lam].iloc[0], "ratio.fd") if (group.lam == lam).any() else "" for lam in lams]
        rows.append([renoiser, noise, k, *cells])
    return header, rows


def render(header: list[str], rows: list[list[str]], fmt: str, caption: str) -> str:
    if fmt == "latex":
        esc = lambda s: str(s).replace("±", r"$\pm$").replace("↓", r"$\downarrow$").replace("↑", r"$\uparrow$").replace("λ", r"$\lambda$").replace("−", "-").replace("Δ", r"$\Delta$").replace("_", r"\_")  # noqa: E731
        lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}", r"\toprule",
                 " & ".join(map(esc, header)) + r" \\", r"\midrule", *(" & ".join(map(esc, r)) + r" \\" for r in rows),
                 r"\bottomrule", r"\end{tabular}", rf"\caption{{{esc(caption)}}}", r"\end{table}"]
        return "\n".join(lines)
    return "\n".join([f"| {' | '.join(header)} |", "|" + "---|" * len(header), *(f"| {' | '.join(r)} |" for r in rows), "", f"*{caption}*"])


TABLES = {
    "table1": (table1, "Table 1: 4 steps alone and ++ (one teacher-guided step); paper columns " + SOURCE),
    "table3": (table3, "Table 3: renoising timestep; paper columns (DMD2) " + SOURCE),
    "cost": (cost, "Cost: 4 + 1 against 5 and 6 student steps; paper columns (LCM) " + SOURCE),
    "ablation": (ablation, "Ablation: guided / baseline FD ratio, mean ± std over seeds"),
}


def run_digits(out: Path) -> dict[str, Path]:
    """Run the three digits presets into ``out/<preset>`` (skipping finished ones) and merge each."""
    dirs = {}
    for preset in DIGITS_PRESETS:
        sweep = out / preset
        if not (sweep / TABLE).is_file():
            subprocess.run([sys.executable, str(ROOT / "run.py"), f"experiment={preset}", "logger=none", f"hydra.sweep.dir={sweep}"], check=True, cwd=ROOT)
        subprocess.run([sys.executable, "-m", "itd.merge", str(sweep)], check=True, cwd=ROOT)
        dirs[preset] = sweep
    return dirs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", choices=[*TABLES, "digits"])
    parser.add_argument("sweep_dir", nargs="?", help="a sweep dir (not with --wandb)")
    parser.add_argument("--run", metavar="DIR", help="digits: run the presets into DIR first")
    parser.add_argument("--format", choices=["md", "latex"], default="md")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read the sweep from W&B (needs logger.mode=online runs)")
    parser.add_argument("--group", help="with --wandb: the sweep's W&B group (its sweep dir)")
    args = parser.parse_args(argv)
    if args.table == "digits":
        if not (args.run or args.sweep_dir):
            parser.error("digits needs --run DIR (or a DIR holding digits_table1/, digits_table3/, digits_cost/)")
        out = Path(args.run or args.sweep_dir)
        dirs = run_digits(out) if args.run else {p: out / p for p in DIGITS_PRESETS}
        for name, preset in zip(("table1", "table3", "cost"), DIGITS_PRESETS):
            make, caption = TABLES[name]
            print(render(*make(load(dirs[preset])), args.format, f"digits {caption}"), end="\n\n")
        return
    if args.wandb:
        frame = load_wandb(args.wandb, args.group or args.sweep_dir)
    elif args.sweep_dir:
        frame = load(args.sweep_dir)
    else:
        parser.error("give a sweep dir, or --wandb ENTITY/PROJECT --group SWEEP")
    make, caption = TABLES[args.table]
    print(render(*make(frame), args.format, caption))


if __name__ == "__main__":
    main()

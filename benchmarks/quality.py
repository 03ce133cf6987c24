"""Benchmark 4, quality per compute on digits: FD against NFE for three samplers, 3 seeds with spread.

- the student alone, 1-8 steps (LCM timesteps, as ``student.num_steps=N``);
- the guided student: ``python run.py``'s default guidance (the third step guided, eps-form, lam = 1,
  deterministic renoising, teacher CFG 2.5), at 4 steps where it was tuned, and at 5, 6 and 8 steps
  with the same settings (step index 2 guided; not re-tuned there);
- the teacher alone with classifier-free guidance at its configured scale (``teacher.cfg_scale``, 2.5)
  and DDIM (eta = 0) on trailing timesteps, 4-50 steps.

Every point is ``itd.experiment.generate`` on the run's default prompt set (2,000 samples per seed) for
seeds 0, 1, 2, evaluated by the digits judge (FD to the 1,797 real digits, accuracy); mean ± std over
seeds. NFE counts network calls per sample (a teacher call with both CFG branches in one batch counts
once, as in the README); forward passes count CFG's branches twice. Writes ``quality.png`` (FD against
NFE and against forward passes) and ``quality.md``.

    python -m benchmarks.quality [--quick] [--threads 1]
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, Result, cli, compose, row, table

STUDENT_STEPS = range(1, 9)
GUIDED_STEPS = (4, 5, 6, 8)
TEACHER_STEPS = (4, 6, 10, 20, 50)


def points(cfg, exp, quick: bool):
    """(sampler, steps, experiment variant, guided) for every point of the plot."""
    from hydra.utils import instantiate

    from itd import solvers
    from itd.guidance import ConfigError
    from itd.schedule import trailing_timesteps

    recipe = instantiate(cfg.student.timesteps)
    teacher = exp.guidance.teachers[0]  # the teacher with its CFG wrapper, as guidance queries it
    for n in (1, 2, 4, 8) if quick else STUDENT_STEPS:
        yield "student", n, replace(exp, timesteps=recipe(n)), False
    for n in (4,) if quick else GUIDED_STEPS:
        try:
            exp.guidance.plan.validate(n, exp.guidance.renoiser)
        except ConfigError:
            continue
        yield "student + teacher", n, replace(exp, timesteps=recipe(n)), True
    for n in (4, 20) if quick else TEACHER_STEPS:
        yield "teacher (DDIM, CFG)", n, replace(exp, student=teacher, solver=solvers.ddim, timesteps=trailing_timesteps(n)), False


def evaluate(exp, seeds, guided: bool) -> dict:
    """FD and accuracy per seed, NFE and forward passes per sample, seconds per seed."""
    from itd import experiment

    per_seed = []
    for seed in seeds:
        arm = experiment.generate(exp, seed, guided)
        per_seed.append({**exp.metrics.aggregate(arm.columns), "seconds": arm.seconds, "nfe": arm.nfe, "forwards": arm.forwards})
    out = {"per_seed": per_seed}
    for key in ("fd", "accuracy", "seconds"):
        values = np.array([p[key] for p in per_seed])
        out[key], out[f"{key}_std"] = float(values.mean()), float(values.std())
    out["nfe"], out["forwards"] = per_seed[0]["nfe"], per_seed[0]["forwards"]
    return out


def plot(results: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    axes_spec = ((axes[0], "nfe", "NFE (network calls per sample; CFG batch = 1)"), (axes[1], "forwards", "forward passes per sample (CFG = 2)"))
    for ax, x_key, label in axes_spec:
        for sampler, marker in (("student", "o"), ("student + teacher", "s"), ("teacher (DDIM, CFG)", "^")):
            pts = [r for r in results if r["sampler"] == sampler]
            if pts:
                ax.errorbar([p[x_key] for p in pts], [p["fd"] for p in pts], yerr=[p["fd_std"] for p in pts], marker=marker, capsize=3, label=sampler)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("FD to real digits (lower is better)")
    axes[0].legend()
    fig.suptitle("Digits: quality per compute (mean ± std over seeds)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(quick: bool = False, threads: int = 1, out_dir: Path = RESULTS) -> Result:
    """Every point in this process (``threads`` unused); writes quality.png and quality.md into ``out_dir``."""
    from itd import experiment

    overrides = ["logger=none", *(["data.num_samples=200", "seeds=[0]"] if quick else [])]
    cfg = compose(overrides)
    exp = experiment.build(cfg)
    results = []
    for sampler, n, variant, guided in points(cfg, exp, quick):
        results.append({"sampler": sampler, "steps": n, **evaluate(variant, exp.seeds, guided)})
    png = plot(results, out_dir / "quality.png")
    lines = [
        [r["sampler"], r["steps"], r["nfe"], r["forwards"], f"{r['fd']:.3f} ± {r['fd_std']:.3f}", f"{r['accuracy']:.4f}", f"{r['seconds']:.2f}"]
        for r in results
    ]
    md = (
        f"### 4. Quality per compute on digits ({exp.data.num_samples} samples per seed, seeds {list(exp.seeds)}, mean ± std)\n\n"
        + table(["sampler", "steps", "NFE", "forward passes", "FD ↓", "accuracy", "seconds / seed"], lines)
        + f"\n\nPlot: `{png.name}`"
    )
    (out_dir / "quality.md").write_text(md + "\n")

    rows = []
    guided = next((r for r in results if r["sampler"] == "student + teacher" and r["steps"] == 4), None)
    if guided:  # the paper's equal-compute claim: 4 + 1 beats the student at as many calls, and at as many forward passes
        for budget in ("nfe", "forwards"):
            student = min((r for r in results if r["sampler"] == "student" and r[budget] <= guided[budget]), key=lambda r: r["fd"])
            rows.append(row(
                "4 quality / compute", f"FD: guided 4+1 vs best student with <= {guided[budget]} {budget} ({student['steps']} steps)",
                f"{guided['fd']:.3f} ± {guided['fd_std']:.3f} vs {student['fd']:.3f} ± {student['fd_std']:.3f}", "guided lower (paper)",
                guided["fd"] < student["fd"],
            ))
        teacher = min((r for r in results if r["sampler"].startswith("teacher")), key=lambda r: r["fd"])
        rows.append(row(
            "4 quality / compute", f"FD: guided 4+1 vs best teacher ({teacher['steps']} steps, {teacher['nfe']} NFE)",
            f"{guided['fd']:.3f} vs {teacher['fd']:.3f}", "(reported)", None,
        ))
    data = {"num_samples": exp.data.num_samples, "seeds": list(exp.seeds), "points": results, "png": png.name}
    return Result("quality", rows, md, data)


if __name__ == "__main__":
    cli(run, __doc__)

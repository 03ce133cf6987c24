"""Benchmark 2, guidance cost: guided / unguided wall time against the NFE-ideal ratio.

Each arm is ``itd.experiment.generate`` (prompts -> conditioning -> sampling -> VAE decode, per batch,
with the per-sample ``NoiseStreams``: exactly what ``run.py`` times), for every SDXL-family student on the
tiny models (``debug=smoke``, its authors' guidance: ``guidance=paper``, k = 1) and for the digits world
(``python run.py``'s default: 2,000 samples in batches of 1,000, the third step guided).

How the ideal is counted. Unguided: N student calls of batch B. Guided: the same N, plus k teacher calls,
each with both CFG branches in one batch of 2B. A batch-2B call costs c batch-B calls, where

    c = t(teacher CFG call, batch B -> 2B forward) / t(student call, batch B)

is measured here, in isolation, on the same models and inputs (c = 2 when the network is compute bound,
c -> 1 when per-call overhead dominates). NFE-ideal = (N + k*c) / N. The two counting conventions of the
README bracket it: calls (N + k) / N, forward passes (N + 2k) / N. Goal: measured <= 1.05 * NFE-ideal.
The "additive" ideal (T_unguided + k * t_teacher) / T_unguided also counts the text encoding, noise draws
and decode both arms share; what the guided run costs beyond it is the guidance machinery itself
(renoising, its noise draws, the combination, the LoRA toggle), reported per guided step.

    python -m benchmarks.guidance_cost [--quick] [--threads 1]
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.common import RESULTS, SDXL_STUDENTS, Result, cli, compose, fmt_ratio, fresh_sdxl_models, measure, ratio, row, smoke, table

SEED = 0


def network_costs(exp, batch: int, repeats: int) -> dict:
    """Median seconds of one student call (batch B) and one teacher CFG call (batch 2B), interleaved."""
    prompts = exp.data.prompts_at(range(batch))
    cond = exp.world.cond(prompts, exp.device)
    x = torch.randn(batch, *exp.world.shape, generator=torch.Generator().manual_seed(SEED)).to(exp.device)
    t = torch.full((batch,), exp.timesteps[0], dtype=torch.long, device=exp.device)
    s = torch.full((batch,), exp.timesteps[min(1, len(exp.timesteps) - 1)], dtype=torch.long, device=exp.device)
    teacher = exp.guidance.teachers[0]
    with torch.no_grad():
        timings = measure({"student": lambda: exp.student(x, t, cond), "teacher": lambda: teacher(x, s, cond)}, repeats)
    return {"student_s": timings["student"].median, "teacher_s": timings["teacher"].median, "teacher_forwards": teacher.forwards}


def bench(name: str, cfg, repeats: int) -> dict:
    from itd import experiment

    exp = experiment.build(cfg)
    arms = {
        "unguided": lambda: experiment.generate(exp, SEED, guided=False),
        "guided": lambda: experiment.generate(exp, SEED, guided=True),
    }
    timings = measure(arms, repeats)
    n, k = len(exp.timesteps), sum(exp.guidance.active(i) for i in range(len(exp.timesteps)))
    batch = min(exp.batch_size, exp.data.num_samples)
    costs = network_costs(exp, batch, repeats)
    c = costs["teacher_s"] / costs["student_s"]
    batches = -(-exp.data.num_samples // exp.batch_size)
    t_u, t_g = timings["unguided"].median, timings["guided"].median
    teacher_total = k * batches * costs["teacher_s"]
    return {
        "case": name,
        "num_samples": exp.data.num_samples,
        "batch": batch,
        "steps": n,
        "guided_steps": k,
        "timings": {a: t.to_dict() for a, t in timings.items()},
        "ratio": ratio(timings, "guided", "unguided"),
        **costs,
        "c": c,
        "ideal_nfe": (n + k * c) / n,
        "ideal_calls": (n + k) / n,
        "ideal_forwards": (n + 2 * k) / n,
        "ideal_additive": (t_u + teacher_total) / t_u,
        "machinery_ms_per_guided_step": (t_g - t_u - teacher_total) / (k * batches) * 1e3,
    }


def run(quick: bool = False, threads: int = 1, out_dir: Path = RESULTS) -> Result:
    """Digits and every student (quick: DMD2 only), in this process; ``threads`` and ``out_dir`` are unused."""
    repeats = 3 if quick else 15
    digits = ["logger=none", "metrics=none", *(["data.num_samples=500", "batch_size=250"] if quick else [])]
    cases = [("digits (run.py default)", compose(digits))]
    for student in ("dmd2",) if quick else SDXL_STUDENTS:
        cases.append((student, smoke(student, "data.num_samples=4", "batch_size=4")))
    results = []
    for name, cfg in cases:
        fresh_sdxl_models()
        results.append(bench(name, cfg, repeats))
    rows, lines = [], []
    for r in results:
        measured, ideal = r["ratio"]["ratio"], r["ideal_nfe"]
        rows.append(row(
            "2 guidance cost", f"{r['case']}: guided / unguided vs NFE-ideal", f"{measured:.3f} vs {ideal:.3f} ({measured / ideal - 1:+.1%})",
            "<= ideal + 5 %", measured <= 1.05 * ideal,
        ))
        lines.append([
            r["case"], f"{r['num_samples']} / {r['batch']}", f"{r['steps']} + {r['guided_steps']}",
            f"{r['timings']['unguided']['median_s'] * 1e3:.1f}", f"{r['timings']['guided']['median_s'] * 1e3:.1f}", fmt_ratio(r["ratio"]),
            f"{r['c']:.2f}", f"{r['ideal_nfe']:.3f}", f"{r['ideal_calls']:.3f} / {r['ideal_forwards']:.3f}", f"{r['ideal_additive']:.3f}",
            f"{r['ratio']['ratio'] / r['ideal_nfe'] - 1:+.1%}", f"{r['machinery_ms_per_guided_step']:+.2f}",
        ])
    md = (
        f"### 2. Guidance cost (itd.experiment.generate: conditioning + sampling + decode; {repeats} interleaved rounds: "
        "times are medians, ratios the median of per-round ratios [IQR])\n\n"
        "c = t(teacher CFG call, 2B) / t(student call, B), measured; NFE-ideal = (N + k c) / N; "
        "bounds: calls (N + k) / N, forward passes (N + 2k) / N; additive = (T_unguided + k t_teacher) / T_unguided.\n\n"
        + table(
            ["case", "samples / batch", "N + k", "unguided ms", "guided ms", "guided / unguided [IQR]", "c", "NFE-ideal",
             "calls / forwards bound", "additive ideal", "vs NFE-ideal", "machinery ms / guided step"],
            lines,
        )
    )
    return Result("guidance_cost", rows, md, {"repeats": repeats, "cases": results})


if __name__ == "__main__":
    cli(run, __doc__)

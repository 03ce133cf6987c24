"""Benchmark 5, scaling: time and memory against batch size and against the number of samples.

Each sweep runs in a fresh child process (``common.run_child``) through ``itd.experiment.generate`` (conditioning,
sampling, decode per batch; per-sample metric columns off with ``metrics=none``). One pass in ascending
order reads the peak RSS after each point (``ru_maxrss`` never decreases, so it is that point's peak);
the points are then timed interleaved, median of ``repeats`` rounds:

- batch: a fixed number of samples in batches of B, unguided and guided: time per sample and peak RSS
  against B (memory should grow with B: activations);
- samples: a fixed batch, n samples, guided: time and peak RSS against n. Goals: the cost grows linearly
  in n (time per sample at the largest n within 10 % of that at the smallest) and memory does not grow
  with n (peak RSS at the largest n within 5 MiB of that at the smallest).

Worlds: the tiny SDXL models (``student=lcm_lora debug=smoke``, its authors' guidance) and digits
(``python run.py``'s default).

    python -m benchmarks.scaling [--quick] [--threads 1]
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, Result, cli, compose, fmt_ratio, measure, paired, peak_rss_mb, row, run_child, smoke, table, warm_imports

SIZES = {  # world -> (batch sweep: total samples, batch sizes), (samples sweep: batch, sample counts)
    "sdxl": ((8, (1, 2, 4, 8)), (4, (4, 8, 16, 32))),
    "digits": ((2000, (250, 500, 1000, 2000)), (1000, (1000, 2000, 4000, 8000))),
}
QUICK_SIZES = {"sdxl": ((4, (1, 4)), (2, (2, 4, 8)))}
GROWTH_MIB = 5.0
LINEARITY = 0.10


def config(world: str):
    return smoke("lcm_lora") if world == "sdxl" else compose(["logger=none", "metrics=none"])


def child(world: str, sweep: str, quick: bool, repeats: int) -> dict:
    """One sweep in this (fresh) process: one pass in ascending order reading the peak RSS after each point,
    then the timing, all points interleaved (``measure``) so that load drift hits every point alike."""
    warm_imports()
    from itd import experiment

    rss_imports = peak_rss_mb()
    exp = experiment.build(config(world))
    (total, batches), (batch, counts) = (QUICK_SIZES if quick else SIZES)[world]
    if sweep == "batch":
        points = [{"batch": b, "samples": total} for b in batches]
        arms = ("unguided", "guided")
    else:
        points = [{"batch": batch, "samples": n} for n in counts]
        arms = ("guided",)
    runs = {}
    for p in points:
        e = replace(exp, batch_size=p["batch"], data=replace(exp.data, num_samples=p["samples"]))
        for arm in arms:
            runs[(p["batch"], p["samples"], arm)] = run = (lambda e=e, guided=(arm == "guided"): experiment.generate(e, 0, guided))
            run()
        p["rss_peak_mb"] = peak_rss_mb()
    timings = measure(runs, repeats, warmup=0)
    for p in points:
        for arm in arms:
            timing = timings[(p["batch"], p["samples"], arm)]
            p[f"{arm}_s"], p[f"{arm}_rounds"] = timing.median, timing.seconds
    return {"world": world, "sweep": sweep, "rss_imports_mb": rss_imports, "points": points}


def linear_fit(points: list[dict]) -> dict:
    """Guided seconds = a + b * n by least squares over the medians, R^2; and the time per sample at the
    largest n over that at the smallest (median of the paired per-round ratios, with quartiles)."""
    n, y = np.array([p["samples"] for p in points], dtype=float), np.array([p["guided_s"] for p in points])
    b, a = np.polyfit(n, y, 1)
    ss_res, ss_tot = float(((y - (a + b * n)) ** 2).sum()), float(((y - y.mean()) ** 2).sum())
    first, last = points[0], points[-1]
    per_sample = paired([s / last["samples"] for s in last["guided_rounds"]], [s / first["samples"] for s in first["guided_rounds"]])
    return {"intercept_s": float(a), "slope_s_per_sample": float(b), "r2": 1 - ss_res / ss_tot if ss_tot else 1.0, "per_sample": per_sample}


def run(quick: bool = False, threads: int = 1, out_dir: Path = RESULTS) -> Result:
    """Two worlds (quick: SDXL only) x two sweeps, one child process each with ``threads``; ``out_dir`` is unused."""
    repeats = 2 if quick else 5
    worlds = ("sdxl",) if quick else ("sdxl", "digits")
    sweeps = {(w, s): run_child(child, w, s, quick, repeats, threads=threads) for w in worlds for s in ("batch", "samples")}
    rows, batch_lines, sample_lines, fits = [], [], [], {}
    for w in worlds:
        res = sweeps[(w, "batch")]
        for p in res["points"]:
            per_sample = {arm: p[f"{arm}_s"] / p["samples"] * 1e3 for arm in ("unguided", "guided")}
            batch_lines.append([
                w, p["batch"], p["samples"], f"{per_sample['unguided']:.2f}", f"{per_sample['guided']:.2f}",
                fmt_ratio(paired(p["guided_rounds"], p["unguided_rounds"])),
                f"{p['rss_peak_mb']:.0f}", f"{p['rss_peak_mb'] - res['rss_imports_mb']:.1f}",
            ])
        res = sweeps[(w, "samples")]
        pts = res["points"]
        fit = fits[w] = linear_fit(pts)
        fit["rss_growth_mb"] = growth = pts[-1]["rss_peak_mb"] - pts[0]["rss_peak_mb"]
        for p in pts:
            sample_lines.append([
                w, p["batch"], p["samples"], f"{p['guided_s']:.3f}", f"{p['guided_s'] / p['samples'] * 1e3:.2f}",
                f"{p['rss_peak_mb']:.0f}", f"{p['rss_peak_mb'] - res['rss_imports_mb']:.1f}",
            ])
        span = f"n = {pts[0]['samples']} -> {pts[-1]['samples']}"
        rows.append(row(
            "5 scaling", f"{w}: time per sample, {span} (ratio [IQR]; R^2 of a line)", f"{fmt_ratio(fit['per_sample'])}; {fit['r2']:.4f}",
            f"linear: ratio within {LINEARITY:.0%} of 1", abs(fit["per_sample"]["ratio"] - 1) <= LINEARITY,
        ))
        rows.append(row("5 scaling", f"{w}: peak RSS growth, {span}", f"{growth:+.1f} MiB", f"none (< {GROWTH_MIB:g} MiB)", growth < GROWTH_MIB))
    fit_lines = [
        [w, f"{f['intercept_s']:+.4f}", f"{f['slope_s_per_sample'] * 1e3:.3f}", f"{f['r2']:.4f}", fmt_ratio(f["per_sample"]),
         f"{f['rss_growth_mb']:+.1f}"]
        for w, f in fits.items()
    ]
    md = (
        f"### 5. Scaling (fresh process per sweep; median of {repeats} interleaved rounds per point; "
        "guided = each world's default guidance)\n\nAgainst batch size (fixed number of samples):\n\n"
        + table(
            ["world", "batch", "samples", "unguided ms / sample", "guided ms / sample", "guided / unguided [IQR]", "peak RSS MiB",
             "net of imports MiB"],
            batch_lines,
        )
        + "\n\nAgainst number of samples (fixed batch, guided):\n\n"
        + table(["world", "batch", "samples", "seconds", "ms / sample", "peak RSS MiB", "net of imports MiB"], sample_lines)
        + "\n\n"
        + table(
            ["world", "fit: intercept s", "slope ms / sample", "R^2", "per-sample time, largest / smallest n [IQR]", "peak RSS growth MiB"],
            fit_lines,
        )
    )
    return Result("scaling", rows, md, {"repeats": repeats, "sweeps": {f"{w}/{s}": v for (w, s), v in sweeps.items()}, "fits": fits})


if __name__ == "__main__":
    cli(run, __doc__)

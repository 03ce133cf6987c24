"""Benchmark 1, framework overhead: our sampler with guidance off against diffusers' own pipeline.

For every SDXL-family student (LCM-LoRA, LCM-SDXL, SDXL-Lightning, DMD2, SDXL-Turbo), on the tiny
random-weight SDXL-architecture models of ``debug=smoke``, the same prompts, seed, resolution, step
count and scheduler, three arms are timed from prompts to final latents (text encoding included, VAE
decode excluded, fp32):

- ``diffusers``: ``StableDiffusionXLPipeline(..., output_type="latent")`` built by ``benchmarks.reference``;
- ``ours``: ``world.cond`` + ``itd.sampling.sample`` with ``SequentialNoise`` (the pipeline's own draws:
  its latents must be equal to diffusers', and are compared);
- ``ours, streams``: the same with ``NoiseStreams``, the per-sample seeded noise ``run.py`` uses (its
  latents differ by design; its extra cost is the price of batch-independent noise).

Ratios are ours / diffusers (goal: <= 1.00 with equal latents).

    python -m benchmarks.overhead [--quick] [--threads 1]
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.common import RESULTS, SDXL_STUDENTS, Result, cli, fmt_ratio, fresh_sdxl_models, measure, ratio, row, smoke, table

SEED = 3


def bench_student(student: str, batch: int, repeats: int) -> dict:
    """Time the three arms for one student; check that ours reproduces diffusers' latents."""
    from benchmarks import reference
    from itd import experiment
    from itd.noise import NoiseStreams, SequentialNoise
    from itd.sampling import sample

    fresh_sdxl_models()
    cfg = smoke(student, f"data.num_samples={batch}", f"batch_size={batch}")
    exp = experiment.build(cfg)
    pipe, call = reference.student_pipeline(cfg)
    prompts = exp.data.prompts_at(range(batch))
    size = (exp.world.height, exp.world.width)

    def ours(streams):
        cond = exp.world.cond(prompts, exp.device)
        return sample(exp.student, exp.solver, exp.timesteps, exp.schedule, cond, streams, exp.world.shape)

    arms = {
        "diffusers": lambda: reference.latents_from(pipe, call, prompts, size, SEED),
        "ours": lambda: ours(SequentialNoise(SEED, batch, exp.device)),
        "ours, streams": lambda: ours(NoiseStreams(SEED, range(batch), exp.device)),
    }
    theirs, mine = arms["diffusers"](), arms["ours"]()
    timings = measure(arms, repeats)
    return {
        "student": student,
        "steps": len(exp.timesteps),
        "timesteps": exp.timesteps,
        "batch": batch,
        "resolution": size,
        "latents_equal": bool(torch.equal(mine, theirs)),
        "max_abs_diff": float((mine - theirs).abs().max()),
        "timings": {k: t.to_dict() for k, t in timings.items()},
        "ratio": ratio(timings, "ours", "diffusers"),
        "ratio_streams": ratio(timings, "ours, streams", "diffusers"),
    }


def run(quick: bool = False, threads: int = 1, out_dir: Path = RESULTS, batch: int = 4) -> Result:
    """All students (quick: two), in this process; ``threads`` and ``out_dir`` are unused (no children, no files)."""
    students = ("lcm_lora", "turbo") if quick else SDXL_STUDENTS
    repeats = 3 if quick else 15
    per_student = [bench_student(s, batch, repeats) for s in students]
    rows, lines = [], []
    for r in per_student:
        rows.append(row(
            "1 overhead", f"{r['student']}: ours / diffusers time", f"{r['ratio']['ratio']:.3f}, latents equal: {r['latents_equal']}",
            "<= 1.00, equal", r["ratio"]["ratio"] <= 1.0 and r["latents_equal"],
        ))
        t = r["timings"]
        lines.append([
            r["student"], r["steps"], f"{t['diffusers']['median_s'] * 1e3:.1f}", f"{t['ours']['median_s'] * 1e3:.1f}",
            f"{t['ours, streams']['median_s'] * 1e3:.1f}", fmt_ratio(r["ratio"]), fmt_ratio(r["ratio_streams"]),
            "yes" if r["latents_equal"] else f"no ({r['max_abs_diff']:.2e})",
        ])
    md = (
        f"### 1. Framework overhead (tiny SDXL-architecture models, batch {batch}, "
        f"{per_student[0]['resolution'][0]} px, fp32, prompts -> latents, {repeats} interleaved rounds: "
        "times are medians, ratios the median of per-round ratios [IQR])\n\n"
        + table(
            ["student", "steps", "diffusers ms", "ours ms", "ours (NoiseStreams) ms", "ours / diffusers [IQR]",
             "ours (NoiseStreams) / diffusers [IQR]", "latents equal"],
            lines,
        )
    )
    return Result("overhead", rows, md, {"repeats": repeats, "batch": batch, "students": per_student})


if __name__ == "__main__":
    cli(run, __doc__)

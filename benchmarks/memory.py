"""Benchmark 3, memory: peak memory guided / unguided.

Each arm runs in a fresh child process (``common.run_child``: forked from a server that has only done the
imports) that runs one op of each kind, reads its peak RSS (``ru_maxrss``), builds what the arm needs
through the project's loaders (the unguided arm: the student and the world's text encoders and VAE; the
guided arm: those and the teacher with its CFG wrapper), samples one batch and decodes it, and reads the
peak RSS again. Three readings per arm, each a guided / unguided ratio:

- process peak RSS (runtime included: for tiny models it is mostly the Python + torch runtime);
- net peak RSS: the peak minus the reading after imports (models, activations and allocator slack);
- held bytes: the distinct parameter and buffer storages of the modules the arm holds (a UNet shared
  by the LoRA student and the teacher counts once), with the number of UNets, text encoders and VAEs.

Goals: LCM-LoRA holds one UNet for student and teacher (adapter toggled), guided / unguided <= 1.10;
a student with its own UNet shares the text encoders and the VAE with the teacher (one of each held).
The held bytes are also projected onto SDXL's full-size architecture (``benchmarks.sdxl_architecture``,
parameters counted on the meta device, fp16; the LoRA's own weights are in both arms and left out): one
UNet per arm for a LoRA student, a second one in the guided arm for a student with its own UNet (as its
config loads it: in smoke mode SDXL-Turbo's stand-in is base's own ``unet/`` folder, so there the two
share one cached UNet). That projection is what the ratio becomes on a GPU.

    python -m benchmarks.memory [--quick] [--threads 1]
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import RESULTS, SDXL_STUDENTS, Result, cli, compose, held_bytes, peak_rss_mb, row, run_child, smoke, table, warm_imports

DIGITS = "digits_lcm"


def config(student: str):
    if student == DIGITS:  # run.py's default world: 1,000 samples per batch
        return compose(["logger=none", "metrics=none"])
    return smoke(student, "data.num_samples=4", "batch_size=4")


def world_modules(world) -> list:
    """The world's networks: the SDXL text encoders and VAE (the digits world has none)."""
    text = getattr(world, "text", None)
    return [*(text.encoders if text is not None else ()), *([world.autoencoder] if hasattr(world, "autoencoder") else [])]


def count_kinds(modules: list) -> dict[str, int]:
    """How many distinct UNets, text encoders and VAEs ``modules`` hold (outermost instances only: CLIP's
    projection model wraps a CLIPTextModel of its own)."""
    kinds = {
        "UNet2DConditionModel": "unets",
        "CLIPTextModel": "text_encoders",
        "CLIPTextModelWithProjection": "text_encoders",
        "AutoencoderKL": "vaes",
    }
    seen = {kind: set() for kind in ("unets", "text_encoders", "vaes")}

    def walk(module):
        kind = kinds.get(type(module).__name__)
        if kind:
            seen[kind].add(id(module))
            return
        for sub in module.children():
            walk(sub)

    for module in modules:
        walk(module)
    return {kind: len(ids) for kind, ids in seen.items()}


def child(student: str, guided: bool) -> dict:
    """One arm in this (fresh) process; returns the readings."""
    warm_imports()
    import torch
    from hydra.utils import instantiate

    from itd import experiment
    from itd.denoisers import CFGDenoiser
    from itd.guidance import TeacherGuidance
    from itd.noise import NoiseStreams
    from itd.sampling import sample

    rss_imports = peak_rss_mb()
    cfg = config(student)
    checked = experiment.check(cfg)
    schedule = instantiate(cfg.schedule)
    # experiment.build always loads the teacher; the unguided arm must hold only what the student needs.
    model = instantiate(cfg.student.model, schedule=schedule)
    world = instantiate(cfg.world)
    held, guidance = [model, *world_modules(world)], None
    if guided:
        teacher = CFGDenoiser(instantiate(cfg.teacher.model, schedule=schedule), cfg.teacher.cfg_scale, schedule)
        guidance = TeacherGuidance(checked.plan, [teacher], checked.renoiser, schedule)
        held.append(teacher.denoiser)
    rss_loaded = peak_rss_mb()
    indices = list(range(min(cfg.batch_size, checked.data.num_samples)))
    streams = NoiseStreams(0, indices, cfg.device)
    with torch.no_grad():
        cond = world.cond(checked.data.prompts_at(indices), cfg.device)
        world.decode(sample(model, instantiate(cfg.solver), checked.timesteps, schedule, cond, streams, world.shape, guidance=guidance))
    return {
        "student": student,
        "arm": "guided" if guided else "unguided",
        "batch": len(indices),
        "rss_imports_mb": rss_imports,
        "rss_loaded_mb": rss_loaded,
        "rss_peak_mb": peak_rss_mb(),
        "held_bytes": held_bytes(held),
        **count_kinds(held),
    }


def projection(students: list[str]) -> dict:
    """Full-size SDXL fp16 weight bytes per arm: text encoders, VAE, the student's UNet, and in the guided arm
    base's UNet unless the student is a LoRA on it."""
    from benchmarks.sdxl_architecture import full_configs, parameter_counts

    params = parameter_counts(full_configs())
    out = {}
    for student in students:
        model = config(student).student.model
        unguided = params["text"] + params["text_2"] + params["vae"] + (params["lcm_unet"] if model.get("guidance") else params["unet"])
        guided = unguided + (0 if model.get("lora") else params["unet"])
        out[student] = {"unguided_gib": 2 * unguided / 2**30, "guided_gib": 2 * guided / 2**30, "ratio": guided / unguided}
    return out


def run(quick: bool = False, threads: int = 1, out_dir: Path = RESULTS) -> Result:
    """Digits and every student (quick: two), two child processes each with ``threads``; ``out_dir`` is unused."""
    students = ["lcm_lora", "dmd2"] if quick else [DIGITS, *SDXL_STUDENTS]
    results = []
    for student in students:
        arms = {arm: run_child(child, student, arm == "guided", threads=threads) for arm in ("unguided", "guided")}
        u, g = arms["unguided"], arms["guided"]
        net = {a: arms[a]["rss_peak_mb"] - arms[a]["rss_imports_mb"] for a in arms}
        results.append({
            "student": student, **arms,
            "ratio_rss": g["rss_peak_mb"] / u["rss_peak_mb"],
            "ratio_net_rss": net["guided"] / net["unguided"],
            "ratio_held": g["held_bytes"] / u["held_bytes"],
        })
    full = projection([s for s in students if s != DIGITS])
    rows, lines = [], []
    for r in results:
        u, g, name = r["unguided"], r["guided"], r["student"]
        if name == "lcm_lora":
            rows.append(row(
                "3 memory", "lcm_lora: guided / unguided (net peak RSS, held bytes)",
                f"{r['ratio_net_rss']:.3f}, {r['ratio_held']:.3f}; UNets held: {g['unets']}", "<= 1.10, one UNet",
                g["unets"] == 1 and r["ratio_held"] <= 1.10 and r["ratio_net_rss"] <= 1.10,
            ))
        elif name != DIGITS:
            rows.append(row(
                "3 memory", f"{name}: text encoders / VAEs held when guided",
                f"{g['text_encoders']} / {g['vaes']} (held bytes x{r['ratio_held']:.2f}, full size x{full[name]['ratio']:.2f})",
                "2 / 1 (shared)", g["text_encoders"] == 2 and g["vaes"] == 1,
            ))
        lines.append([
            name, f"{u['rss_peak_mb']:.0f} / {g['rss_peak_mb']:.0f}", f"{r['ratio_rss']:.3f}",
            f"{u['rss_peak_mb'] - u['rss_imports_mb']:.1f} / {g['rss_peak_mb'] - g['rss_imports_mb']:.1f}", f"{r['ratio_net_rss']:.3f}",
            f"{u['held_bytes'] / 2**20:.2f} / {g['held_bytes'] / 2**20:.2f}", f"{r['ratio_held']:.3f}",
            f"{u['unets']} / {g['unets']}", f"{g['text_encoders']} / {g['vaes']}",
            f"{full[name]['unguided_gib']:.2f} / {full[name]['guided_gib']:.2f} ({full[name]['ratio']:.3f})" if name in full else "-",
        ])
    md = (
        "### 3. Memory (fresh process per arm, one batch sampled and decoded; tiny SDXL models: batch 4; digits: batch 1,000)\n\n"
        + table(
            ["student", "peak RSS MiB (unguided / guided)", "ratio", "net peak MiB", "ratio", "held MiB", "ratio",
             "UNets held", "text encoders / VAEs (guided)", "full-size SDXL fp16 weights GiB (ratio)"],
            lines,
        )
    )
    return Result("memory", rows, md, {"students": results, "full_size_projection": full})


if __name__ == "__main__":
    cli(run, __doc__)

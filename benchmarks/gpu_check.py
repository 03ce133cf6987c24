"""GPU check: images/s and peak GPU memory of diffusers' student pipeline, ours unguided and ours guided.

Full-size SDXL-architecture models with random weights, built from the configs written out by hand in
``benchmarks.sdxl_architecture`` (no hub access): UNet, the two CLIP text encoders and the VAE, in fp16
(the VAE as the fp16-fix one: no upcast), on the GPU. Everything else comes from the project's config
for ``--student`` (default ``dmd2``: its own UNet; ``lcm_lora``: a random LoRA on the teacher's UNet,
toggled; ``lcm``, ``lightning``, ``turbo`` work too): timesteps, solver, guidance plan (the authors' k = 1,
lam, form), renoiser, teacher CFG scale, prompts, resolution. Three arms, prompts to decoded images:

- ``diffusers``: ``StableDiffusionXLPipeline`` over the same modules, the scheduler of ``benchmarks.reference``;
- ``ours unguided``: ``SDXLText.encode`` + ``itd.sampling.sample`` (NoiseStreams) + ``itd.models.sdxl.decode``;
- ``ours guided``: the same with ``TeacherGuidance`` (4 + 1: one teacher call, both CFG branches batched).

Peak memory is ``torch.cuda.max_memory_allocated`` over one run of each arm after a warm-up, measured
while only the modules that arm needs are resident (the teacher's UNet is built after the unguided arms
are measured). Images/s: batch / median wall time of ``--repeats`` interleaved rounds. A parity line
compares our latents (SequentialNoise) with the pipeline's. Writes a JSON (``--out``) from which the
README table is built, and prints the table. Under 5 minutes on one H100.

    python -m benchmarks.gpu_check                        # GPU: full size, fp16 -> benchmarks/results/gpu.json
    python -m benchmarks.gpu_check --tiny                 # CPU: the tiny architecture, fp32, same logic
    python -m benchmarks.gpu_check --student lcm_lora --batch 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS, environment, held_bytes, measure, setup, table


def gib(n: float | None) -> float | None:
    return None if n is None else n / 2**30


def cuda_peak(device: str, fn) -> float | None:
    """Peak bytes allocated during ``fn()`` (None off CUDA)."""
    if not device.startswith("cuda"):
        fn()
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tiny architecture of debug=smoke, fp32 (runs on CPU)")
    parser.add_argument("--student", default="dmd2", choices=["lcm_lora", "lcm", "lightning", "dmd2", "turbo"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default: results/gpu.json, results/gpu_tiny.json with --tiny)")
    args = parser.parse_args()
    setup(args.threads)
    result = check(args.student, args.device, args.tiny, args.batch, args.repeats)
    result["environment"] = environment(args.threads)
    out = args.out or RESULTS / ("gpu_tiny.json" if args.tiny else "gpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nwritten: {out}")


def check(student: str, device: str, tiny: bool, batch: int, repeats: int) -> dict:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from hydra.utils import instantiate
    from transformers import CLIPTokenizer

    from benchmarks import reference
    from benchmarks.common import compose
    from benchmarks.sdxl_architecture import SDXL_SCHEDULER, build, build_unet, full_configs, tiny_configs
    from itd import experiment
    from itd.denoisers import CFGDenoiser, ConsistencyDenoiser, EpsDenoiser
    from itd.guidance import TeacherGuidance
    from itd.models.sdxl import SDXLText, SDXLUNet, decode
    from itd.models.smoke import smoke_models
    from itd.noise import NoiseStreams, SequentialNoise
    from itd.sampling import sample

    start = time.perf_counter()
    cfg = compose([f"student={student}", f"device={device}", "logger=none", "metrics=none"])
    checked = experiment.check(cfg)  # no model is loaded: timesteps, guidance plan, renoiser, prompts
    schedule, solver = instantiate(cfg.schedule), instantiate(cfg.solver)
    smoke_base = smoke_models()["sdxl_base"]  # tiny local models: the tokenizer (any CLIP BPE drives random encoders)
    configs = tiny_configs(smoke_base) if tiny else full_configs()
    dtype = torch.float32 if tiny or not device.startswith("cuda") else torch.float16
    size = configs.resolution or cfg.resolution
    prompts = checked.data.prompts_at(range(batch))
    model_cfg = cfg.student.model
    tokenizer = CLIPTokenizer.from_pretrained(smoke_base, subfolder="tokenizer")

    # Phase 1: the student's modules only (LCM-SDXL: its UNet has the guidance embedding).
    modules = build(configs, device, dtype, tokenizer, time_cond_proj_dim=configs.time_cond_proj_dim if model_cfg.get("guidance") else None)
    unet = modules.unet
    if model_cfg.get("lora"):  # LCM-LoRA: a random (non-zero) adapter on base's UNet, active for the student
        from peft import LoraConfig

        torch.manual_seed(3)
        unet.add_adapter(LoraConfig(**configs.lora, init_lora_weights=False), adapter_name="student")
        unet.to(device)
    adapter = ConsistencyDenoiser if model_cfg.get("consistency", True) else EpsDenoiser
    student_model = adapter(SDXLUNet(unet, adapters=True, guidance=model_cfg.get("guidance")), schedule)
    text = SDXLText((tokenizer, tokenizer), (modules.text, modules.text_2), force_zeros_for_empty_prompt=True)
    factor = 2 ** (len(modules.vae.config.block_out_channels) - 1)
    shape = (modules.vae.config.latent_channels, size // factor, size // factor)
    pipe = StableDiffusionXLPipeline(
        vae=modules.vae, text_encoder=modules.text, text_encoder_2=modules.text_2, tokenizer=tokenizer, tokenizer_2=tokenizer,
        unet=unet, scheduler=reference.scheduler_for(cfg, EulerDiscreteScheduler(**SDXL_SCHEDULER).config),
        force_zeros_for_empty_prompt=True, add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    call = reference.call_kwargs(cfg)

    def theirs():
        return pipe(prompts, height=size, width=size, generator=torch.Generator().manual_seed(0), output_type="pt", **call).images

    def ours(guidance=None):
        with torch.no_grad():
            cond = text.encode(prompts, size, size)
            x = sample(student_model, solver, checked.timesteps, schedule, cond, NoiseStreams(0, range(batch), device), shape, guidance=guidance)
            return decode(modules.vae, x)

    student_held = [unet, modules.vae, modules.text, modules.text_2]
    peaks = {}
    for name, fn in (("diffusers", theirs), ("ours unguided", ours)):
        fn()  # warm-up
        peaks[name] = cuda_peak(device, fn)

    # Parity: our latents with the pipeline's own draws against the pipeline's latents.
    with torch.no_grad():
        mine = sample(student_model, solver, checked.timesteps, schedule, text.encode(prompts, size, size), SequentialNoise(0, batch, device), shape)
    their_latents = reference.latents_from(pipe, call, prompts, (size, size), 0)
    parity = {"equal": bool(torch.equal(mine.to(their_latents.dtype), their_latents)), "max_abs_diff": reference.max_abs_diff(mine, their_latents)}

    # Phase 2: the teacher (LoRA students: the same UNet, adapter off; others: base's UNet, a second one).
    teacher_unet = unet if model_cfg.get("lora") else build_unet(configs, device, dtype, seed=1)
    teacher = CFGDenoiser(EpsDenoiser(SDXLUNet(teacher_unet, adapters=False), schedule), cfg.teacher.cfg_scale, schedule)
    guidance = TeacherGuidance(checked.plan, [teacher], checked.renoiser, schedule)
    guided = lambda: ours(guidance)  # noqa: E731
    guided()
    peaks["ours guided"] = cuda_peak(device, guided)

    timings = measure({"diffusers": theirs, "ours unguided": ours, "ours guided": guided}, repeats, warmup=0)
    n, k = len(checked.timesteps), sum(guidance.active(i) for i in range(len(checked.timesteps)))
    arms = {
        name: {
            "images_per_s": batch / t.median, "median_s": t.median, "seconds": t.seconds, "peak_gib": gib(peaks[name]),
            "held_gib": gib(held_bytes(student_held + ([teacher_unet] if name == "ours guided" else []))),
        }
        for name, t in timings.items()
    }
    return {
        "student": student, "tiny": tiny, "device": device, "dtype": str(dtype).removeprefix("torch."), "resolution": size,
        "batch": batch, "steps": n, "guided_steps": k, "timesteps": checked.timesteps, "repeats": repeats,
        "guidance": {"form": checked.plan.form, "lam": checked.plan.lam, "steps": checked.plan.steps, "teacher_cfg": cfg.teacher.cfg_scale},
        "teacher_shares_unet": teacher_unet is unet,
        "arms": arms,
        "ratios": {
            "ours_unguided_over_diffusers_time": timings["ours unguided"].median / timings["diffusers"].median,
            "guided_over_unguided_time": timings["ours guided"].median / timings["ours unguided"].median,
            "ideal_calls": (n + k) / n, "ideal_forwards": (n + 2 * k) / n,
            "guided_over_unguided_peak": (peaks["ours guided"] / peaks["ours unguided"]) if peaks["ours unguided"] else None,
        },
        "parity": parity,
        "wall_s": time.perf_counter() - start,
    }


def markdown(r: dict) -> str:
    head = (
        f"GPU check: {r['student']} on {'tiny' if r['tiny'] else 'full-size'} SDXL architecture, random weights, {r['dtype']}, "
        f"{r['resolution']} px, batch {r['batch']}, {r['steps']} steps (+{r['guided_steps']} teacher call), device {r['device']}\n\n"
    )
    rows = [
        [name, f"{a['images_per_s']:.3f}", f"{a['median_s'] * 1e3:.1f}", "-" if a["peak_gib"] is None else f"{a['peak_gib']:.2f}",
         f"{a['held_gib']:.3f}"]
        for name, a in r["arms"].items()
    ]
    q = r["ratios"]
    tail = (
        f"\n\nours unguided / diffusers time: {q['ours_unguided_over_diffusers_time']:.3f}; guided / unguided time: "
        f"{q['guided_over_unguided_time']:.3f} (ideal: calls {q['ideal_calls']:.3f}, forward passes {q['ideal_forwards']:.3f}); "
        f"guided / unguided peak memory: {'-' if q['guided_over_unguided_peak'] is None else format(q['guided_over_unguided_peak'], '.3f')}; "
        f"latents equal to diffusers': {r['parity']['equal']} (max |diff| {r['parity']['max_abs_diff']:.3g}); wall {r['wall_s']:.0f} s"
    )
    return head + table(["arm", "images/s", "ms / batch", "peak GPU GiB", "weights held GiB"], rows) + tail


if __name__ == "__main__":
    main()

"""Shared machinery of the benchmarks: threads, configs, interleaved timing, memory readings, tables.

Timing (``measure``): every configuration runs ``warmup`` times first, then ``repeats`` rounds in which
each configuration runs once, the order rotated every round (A B C, B C A, C A B, ...) so that drift in
the machine's load hits every configuration alike. A configuration's time is its median over rounds.
A ratio is the median of the per-round (paired) ratios, with their interquartile range as its spread:
pairing within a round cancels the slow load drift of a shared machine that a ratio of medians keeps.

Memory: peak resident set size (``ru_maxrss``, ``peak_rss_mb``) of a fresh child process, read after its
imports and again at the end. Children (``run_child``) are forked from a server process that has done
the heavy imports and nothing else, so each starts in about a second with none of the parent's models
or allocations. Also the bytes of the distinct parameter and buffer storages a set of modules holds
(``held_bytes``: a UNet shared by student and teacher counts once).
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
RESULTS = Path(__file__).resolve().parent / "results"
SDXL_STUDENTS = ("lcm_lora", "lcm", "lightning", "dmd2", "turbo")

if str(ROOT) not in sys.path:  # ``python benchmarks/<module>.py`` as well as ``python -m benchmarks.<module>``
    sys.path.insert(0, str(ROOT))


def setup(threads: int) -> None:
    """Fix torch's CPU threads (intra- and inter-op) and silence progress bars and library chatter.

    Set before torch does any parallel work; children started by ``run_child`` inherit the same settings.
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set in this process (it can be set once)
        pass
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def compose(overrides: Sequence[str] = ()):
    """The project's config, composed as ``python run.py <overrides>`` would compose it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import itd.config  # noqa: F401  (registers the schemas and the ${smoke:...} resolver)

    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides))
    if "store" in cfg:  # a sample store would hand back finished batches instead of sampling them: time nothing
        cfg.store = None
    return cfg


def smoke(student: str, *overrides: str):
    """An SDXL-family student on the tiny random-weight models (``debug=smoke``), cost only."""
    return compose([f"student={student}", "debug=smoke", "logger=none", "metrics=none", *overrides])


def fresh_sdxl_models() -> None:
    """Forget the SDXL loaders' module caches, so that each student family loads its own models.

    The caches make a LoRA student and the teacher share one UNet within a run (as intended); across
    families they would also hand the next family's teacher a UNet that still carries the LoRA layers.
    """
    from itd.models import sdxl

    for obj in vars(sdxl).values():  # every functools cache of the module (UNets, text stack, VAE)
        if callable(getattr(obj, "cache_clear", None)):
            obj.cache_clear()


# --- timing --------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Seconds per run of one configuration, one entry per round."""

    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def to_dict(self) -> dict:
        return {"median_s": self.median, "seconds": self.seconds}


def _sync() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def measure(configs: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, Timing]:
    """Time each zero-argument callable: ``warmup`` untimed runs each, then ``repeats`` interleaved rounds."""
    names = list(configs)
    for _ in range(warmup):
        for name in names:
            configs[name]()
    timings = {name: Timing() for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            _sync()
            start = time.perf_counter()
            configs[name]()
            _sync()
            timings[name].seconds.append(time.perf_counter() - start)
    return timings


def paired(num: Sequence[float], den: Sequence[float]) -> dict:
    """Median and quartiles of the per-round ratios num[r] / den[r]."""
    ratios = [a / b for a, b in zip(num, den, strict=True)]
    q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 3
    return {"ratio": statistics.median(ratios), "q1": q[0], "q3": q[2], "of_medians": statistics.median(num) / statistics.median(den)}


def ratio(timings: dict[str, Timing], num: str, den: str) -> dict:
    """num / den: the median of the paired per-round ratios, their quartiles, and the ratio of medians."""
    return paired(timings[num].seconds, timings[den].seconds)


def fmt_ratio(r: dict) -> str:
    return f"{r['ratio']:.3f} [{r['q1']:.3f}, {r['q3']:.3f}]"


# --- memory --------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def held_bytes(modules: Iterable) -> int:
    """Bytes of the distinct parameter and buffer storages held by ``modules`` (shared tensors count once)."""
    seen, total = set(), 0
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            storage = tensor.untyped_storage()
            key = (storage.data_ptr(), str(tensor.device)) if storage.data_ptr() else id(tensor)  # meta: no data
            if key not in seen:
                seen.add(key)
                total += storage.nbytes() if storage.data_ptr() else tensor.numel() * tensor.element_size()
    return total


# The heavy imports, done once in the fork server that every child process is forked from.
PRELOAD = [
    "torch",
    "diffusers.models.unets.unet_2d_condition",
    "diffusers.models.autoencoders.autoencoder_kl",
    "diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl",
    "transformers.models.clip.modeling_clip",
    "peft",
    "hydra.utils",
    "itd.experiment",
    "itd.models.sdxl",
    "itd.models.toy",
    "benchmarks.common",
]


def warm_imports() -> None:
    """Import what loading and running the models will import, and run one op of each kind, so that a child's
    reading after imports holds the runtime and the reading at the end holds only models and activations."""
    import importlib

    import torch

    for name in PRELOAD:
        importlib.import_module(name)
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    with torch.no_grad():
        conv(torch.randn(1, 4, 8, 8))
        torch.nn.functional.scaled_dot_product_attention(*(torch.randn(1, 2, 4, 8),) * 3)


_SERVER = None


def _child_main(target: Callable, args: tuple, threads: int, conn) -> None:
    try:
        setup(threads)
        conn.send(target(*args))
    except BaseException:  # handed to the parent, which raises it
        import traceback

        conn.send(RuntimeError(f"{target.__module__}.{target.__name__}{args} failed:\n{traceback.format_exc()}"))
        raise
    finally:
        conn.close()


def _server():
    global _SERVER
    if _SERVER is None:
        import multiprocessing

        _SERVER = multiprocessing.get_context("forkserver")
        _SERVER.set_forkserver_preload(PRELOAD)
    return _SERVER


def start_child_server() -> None:
    """Start the fork server now: its imports then run alongside this process's work (use only when that work
    is not being timed)."""
    from multiprocessing import forkserver

    _server()
    forkserver.ensure_running()


def run_child(target: Callable, *args, threads: int) -> dict:
    """``target(*args)`` in a fresh child process: forked from a server that has only imported ``PRELOAD``
    (so it starts in a second, not fifteen), holding nothing of this process's models or allocations."""
    server = _server()
    receive, send = server.Pipe(duplex=False)
    proc = server.Process(target=_child_main, args=(target, args, threads, send))
    proc.start()
    send.close()
    try:
        result = receive.recv()
    except EOFError:  # it died without a word (killed, out of memory)
        result = None
    proc.join()
    if result is None:
        result = RuntimeError(f"child {target.__module__}.{target.__name__}{args} died (exit code {proc.exitcode})")
    if isinstance(result, BaseException):
        raise result
    return result


# --- reporting -----------------------------------------------------------------------------------


@dataclass
class Result:
    """What one benchmark hands to run_all: summary rows, detail tables (Markdown) and all measurements."""

    name: str
    rows: list[dict]  # {"benchmark", "case", "measured", "goal", "met"}
    markdown: str
    data: dict


def row(benchmark: str, case: str, measured: str, goal: str, met: bool | None) -> dict:
    return {"benchmark": benchmark, "case": case, "measured": measured, "goal": goal, "met": met}


def table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def cli(run: Callable[..., Result], doc: str) -> None:
    """``python -m benchmarks.<name> [--quick] [--threads N] [--out DIR]``: one benchmark alone, its tables printed."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke sizes")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, default 1")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for files a benchmark writes (quality: its plot)")
    args = parser.parse_args()
    setup(args.threads)
    print(run(quick=args.quick, threads=args.threads, out_dir=args.out).markdown)


def environment(threads: int) -> dict:
    """Versions and the machine, stated next to every number."""
    import diffusers
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }

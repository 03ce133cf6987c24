"""Benchmarks 1-5 on CPU in one command: prints a Markdown table of measured ratios against their goals,
then each benchmark's detail table, and writes ``benchmarks/results/``:

- ``cpu.json``: the environment (versions, CPU, torch threads), every measurement, the summary rows;
- ``cpu.md``: the tables as printed;
- ``quality.png``, ``quality.md``: benchmark 4's plot and table.

    python -m benchmarks.run_all                 # 5-8 minutes on two cores (8 with a test suite running beside it)
    python -m benchmarks.run_all --quick         # the same code paths at smoke sizes, < 1 minute (results/quick/)
    python -m benchmarks.run_all --only overhead,memory --threads 2

Every configuration is timed in the same process run as the one it is compared with, interleaved,
after a warm-up, median of several rounds, with torch's CPU threads fixed (``--threads``, default 1:
ratios on a shared two-core machine are steadier single-threaded). Memory is read in fresh child
processes. The benchmarks: 1 ``overhead`` (ours vs diffusers' pipeline), 2 ``guidance_cost`` (guided /
unguided vs NFE-ideal), 3 ``memory`` (guided / unguided), 4 ``quality`` (FD against NFE on digits),
5 ``scaling`` (time and memory against batch size and number of samples). GPU: ``benchmarks.gpu_check``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # ``python benchmarks/run_all.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "benchmarks"

from benchmarks.common import RESULTS, environment, setup, start_child_server, table  # noqa: E402

BENCHMARKS = ("overhead", "guidance_cost", "memory", "quality", "scaling")


def summary(rows: list[dict]) -> str:
    verdict = {True: "met", False: "**missed**", None: "-"}
    cells = [[r["benchmark"], r["case"], r["measured"], r["goal"], verdict[r["met"]]] for r in rows]
    return table(["benchmark", "case", "measured", "goal", "verdict"], cells)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke sizes, fewer students and repeats (< 1 minute)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (intra- and inter-op), default 1")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results, or its quick/ with --quick)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    out_dir = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    setup(args.threads)
    if args.quick and {"memory", "scaling"} & set(names):
        start_child_server()  # its imports overlap the in-process benchmarks, whose quick timings are not for reporting
    results, seconds = [], {}
    for name in names:
        t0 = time.perf_counter()
        print(f"[{time.perf_counter() - start:6.1f} s] {name} ...", file=sys.stderr, flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        results.append(module.run(quick=args.quick, threads=args.threads, out_dir=out_dir))
        seconds[name] = time.perf_counter() - t0
    wall = time.perf_counter() - start

    env = environment(args.threads)
    rows = [r for res in results for r in res.rows]
    report = (
        f"## Benchmarks ({'quick' if args.quick else 'full'}; CPU: {env['cpu']}, {env['cpu_count']} cores; torch {env['torch']} with "
        f"{args.threads} thread(s); diffusers {env['diffusers']}; wall {wall:.0f} s)\n\n"
        + summary(rows)
        + "\n\n"
        + "\n\n".join(res.markdown for res in results)
        + "\n"
    )
    print(report)
    (out_dir / "cpu.md").write_text(report)
    command = "python -m benchmarks.run_all " + " ".join(sys.argv[1:] if argv is None else argv)
    record = {
        "command": command.strip(),
        "quick": args.quick,
        "environment": env,
        "wall_s": wall,
        "seconds": seconds,
        "summary": rows,
        "benchmarks": {res.name: res.data for res in results},
    }
    (out_dir / "cpu.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"written: {out_dir / 'cpu.json'}, {out_dir / 'cpu.md'}; wall {wall:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

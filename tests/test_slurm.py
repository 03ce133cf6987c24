"""hydra/launcher=submitit_slurm end to end: a two-job sweep as a Slurm job array on a one-node cluster
started on this machine (tests/slurm_cluster.py). Skipped, with the reason, where that cluster cannot
start (not root, slurm-wlm or munge not installed, a daemon that exits)."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from slurm_cluster import SlurmCluster, SlurmUnavailable

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def slurm():
    try:
        cluster = SlurmCluster().start()
    except SlurmUnavailable as err:
        pytest.skip(f"no local Slurm cluster: {err}")
    yield cluster
    cluster.stop()


def test_sweep_runs_as_a_slurm_job_array(slurm, tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        "-m", "hydra/launcher=submitit_slurm", f"hydra.launcher.partition={slurm.partition}",
        "hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
        "hydra.launcher.gpus_per_node=null",  # the test node has no GPUs (the preset asks for one)
        "debug=tiny", "logger=none", "threads=1", "guidance.lam=0.1,0.2", f"hydra.sweep.dir={sweep}",
    ]
    env = slurm.environ({**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "1"})
    # run.py submits the array and blocks until both jobs have written their results
    try:
        out = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:  # e.g. a job that died without a result (no sacct to tell submitit)
        pytest.fail(f"the sweep did not finish in 300 s\n{slurm.run('squeue', check=False)}\n{slurm.logs()}")
    assert out.returncode == 0, f"{out.stdout[-2000:]}\n{out.stderr[-3000:]}\n{slurm.logs()}"

    # both jobs ran the method: baseline and guided, the same baseline, a guided result per lambda
    results = {}
    for path in sorted(sweep.glob("*/results.json")):
        overrides = OmegaConf.load(path.parent / ".hydra" / "overrides.yaml")
        lam = next(float(o.split("=", 1)[1]) for o in overrides if o.startswith("guidance.lam="))
        results[lam] = json.loads(path.read_text())
        assert {"baseline", "guided"} <= set(results[lam])
    assert sorted(results) == [0.1, 0.2]
    assert results[0.1]["baseline"]["fd"] == pytest.approx(results[0.2]["baseline"]["fd"])
    assert results[0.1]["guided"]["fd"] != results[0.2]["guided"]["fd"]

    # ... and ran as the two tasks of one Slurm array: submitit's <array>_<task> folders, Hydra's job id,
    # and slurmctld's own record of the array
    folders = sorted(p.name for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name))
    assert len(folders) == 2 and len({f.split("_")[0] for f in folders}) == 1, folders
    array = folders[0].split("_")[0]
    assert [f.split("_")[1] for f in folders] == ["0", "1"]
    for num, folder in enumerate(folders):
        log = (sweep / ".submitit" / folder / f"{folder}_0_log.out").read_text()
        assert f"job_id={folder}" in log and "Job completed successfully" in log, log
        hydra_cfg = OmegaConf.load(sweep / str(num) / ".hydra" / "hydra.yaml").hydra
        assert hydra_cfg.job.id == folder
    deadline = time.monotonic() + 30  # the result pickle is written a moment before the task ends
    while True:
        record = slurm.run("scontrol", "show", "job", array)
        states = sorted(re.findall(r"ArrayTaskId=(\d+) .*?JobState=(\w+)", record, flags=re.DOTALL))
        if states == [("0", "COMPLETED"), ("1", "COMPLETED")] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert states == [("0", "COMPLETED"), ("1", "COMPLETED")], record
    assert f"Partition={slurm.partition}" in record

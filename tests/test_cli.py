"""Config tier: every config composes and builds; presets and the main job run through the real CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import itd.config  # noqa: F401
from itd import experiment
from itd.guidance import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
DATA = ROOT / "tests" / "data"
GROUPS = ["world", "data", "student", "teacher", "solver", "renoiser", "renoiser/noise", "guidance", "metrics", "logger"]
SDXL_STUDENTS = ["lcm_lora", "lcm", "lightning", "dmd2", "turbo"]


def _compose(overrides=()):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def cli(*args, cwd=ROOT, timeout=600):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("group, option", [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))])
def test_every_option_composes_and_builds(group, option):
    files = {"coco": ["data.annotations=" + str(DATA / "captions_tiny.json"), "data.num_samples=2"], "parti": ["data.file=" + str(DATA / "parti_tiny.tsv")]}
    cfg = _compose([f"{group}={option}", "debug=smoke", *(files.get(option, []) if group == "data" else [])])  # smoke: tiny local models
    node = cfg
    for part in group.split("/"):
        node = node[part]
    if group in ("student", "teacher"):
        instantiate(node.model, schedule=instantiate(cfg.schedule))
    elif group != "guidance":
        assert instantiate(node) is not None
    if cfg.student.space == cfg.teacher.space:
        experiment.check(cfg)
    else:  # e.g. the SDXL teacher beside the default digits student
        with pytest.raises(ConfigError, match="same latent space"):
            experiment.check(cfg)


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml") if not p.stem.startswith("paper_")))
def test_every_experiment_preset_runs_through_the_cli(preset, tmp_path):
    """Digits-sized (debug=tiny); the paper_* presets run in smoke mode in test_scale.py."""
    out = cli(f"experiment={preset}", "debug=tiny", f"hydra.sweep.dir={tmp_path}/sweep", f"hydra.run.dir={tmp_path}/run")
    assert out.returncode == 0, out.stderr[-3000:]
    results = list(tmp_path.rglob("results.json"))
    assert results, out.stdout
    for r in results:
        assert {"baseline", "guided"} <= set(json.loads(r.read_text()))


def test_main_job_writes_every_output(tmp_path):
    out = cli("debug=tiny", "logger=wandb", "seeds=[0,1]", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ratio" in out.stdout and "fd" in out.stdout
    res = json.loads((tmp_path / "results.json").read_text())
    for method in ("baseline", "guided"):
        assert {"fd", "accuracy", "nfe", "seconds"} <= set(res[method])
        assert all(isinstance(v, float) for v in res[method].values())
    assert (res["baseline"]["nfe"], res["guided"]["nfe"]) == (4, 5)
    frame = pd.read_parquet(tmp_path / "samples.parquet")
    assert len(frame) == 2 * 2 * 40 and set(frame.method) == {"baseline", "guided"}
    for method in ("baseline", "guided"):
        arr = np.load(tmp_path / f"{method}.npy")
        rows = frame[frame.method == method]
        assert arr.shape == (len(rows), 8, 8) and arr.min() >= -1 and arr.max() <= 1
        assert rows[["seed", "index"]].values.tolist() == sorted(rows[["seed", "index"]].values.tolist())
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    (table_file,) = (tmp_path / "wandb").glob("offline-run-*/files/media/table/results_*.table.json")
    table = json.loads(table_file.read_text())
    for row in table["data"]:
        logged = dict(zip(table["columns"], row))
        assert logged["fd"] == pytest.approx(res[logged["method"]]["fd"])
    assert not list(tmp_path.rglob("*.tmp*"))


def test_guidance_off_gives_the_baseline_bit_for_bit(tmp_path):
    out = cli("debug=tiny", "guidance=off", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert np.array_equal(np.load(tmp_path / "baseline.npy"), np.load(tmp_path / "guided.npy"))


def test_multirun_sweeps_renoiser_and_lam(tmp_path):
    out = cli("-m", "debug=tiny", "renoiser=next,random", "guidance.lam=0.05,0.2", f"hydra.sweep.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(list(tmp_path.glob("*/results.json"))) == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["renoiser=nxt"], "Could not find 'renoiser/nxt'"),
        (["guidance.lamm=0.1"], "lamm"),
        (["guidance.lam=1.5"], "guidance.lam=1.5"),
        (["guidance.form=x0", "guidance.lam=-0.2"], "x0-form"),
        (["guidance.steps=9"], "guidance.steps=9"),
        (["renoiser=next", "guidance.steps=4"], "renoiser=next"),
        (["student.num_steps=0"], "student.timesteps"),
        (["data.num_samples=abc"], "num_samples"),
        (["data.num_samples=0"], "data.num_samples=0 "),
        (["renoiser=random", "renoiser.timestep.low=900", "renoiser.timestep.high=10"], "low <= high"),
        (["guidance.weights=[0.5,0.6]"], "guidance.weights"),
        (["student.model.checkpoint=/nonexistent/student.pt"], "/nonexistent/student.pt not found"),
        (["student=dmd2", "teacher=digits"], "same latent space"),
        (["student=dmd2", "metrics=paper", "fid_reference=null"], "metrics.fid.reference is not set"),
        (["metrics=paper"], "score RGB images against text prompts"),
        (["student=dmd2", "data=coco"], "data.annotations is not set"),
        (["student=dmd2", "data=coco", f"data.annotations={DATA / 'captions_tiny.json'}"], "holds only 4 prompts"),
    ],
)
def test_bad_input_fails_with_one_clear_line(args, message, tmp_path):
    out = cli("debug=tiny", *args, f"hydra.run.dir={tmp_path}/run")
    assert out.returncode != 0
    assert message in out.stderr and "Traceback" not in out.stderr
    if out.returncode == 2:  # our own check: exactly one line
        assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("error: ")
    assert not (tmp_path / "run" / "results.json").exists()


def test_every_sdxl_student_runs_offline_in_smoke_mode(tmp_path):
    """The users' command plus the profile, for every student: images, results and samples for both arms."""
    out = cli("-m", f"student={','.join(SDXL_STUDENTS)}", "renoiser=random", "debug=smoke", f"hydra.sweep.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = sorted(p.parent for p in tmp_path.glob("*/results.json"))
    assert len(jobs) == len(SDXL_STUDENTS)
    for job in jobs:
        res = json.loads((job / "results.json").read_text())
        assert res["baseline"]["nfe"] == res["baseline"]["forwards"] == 4 and res["guided"]["nfe"] == 5
        frame = pd.read_parquet(job / "samples.parquet")
        assert len(frame) == 8 and set(frame.prompt) <= set(_compose(["student=dmd2"]).data.prompts)
        for method in ("baseline", "guided"):
            assert len(list((job / "images" / method).glob("0_*.png"))) == 4


def test_missing_weights_fail_fast_with_one_line(tmp_path):
    out = cli("student=dmd2", "logger=none", f"hydra.run.dir={tmp_path}/run")
    assert out.returncode == 2
    line = out.stderr.strip()
    assert line.count("\n") == 0 and "stabilityai/stable-diffusion-xl-base-1.0" in line and "models.sdxl_base=" in line


def test_paper_metrics_run_end_to_end_offline_in_smoke_mode(tmp_path):
    """FID, ImageReward, PickScore (raw + win-rate) and CLIP score on tiny networks, COCO-format prompts."""
    out = cli("debug=smoke", "metrics=paper", "data=coco", f"data.annotations={DATA / 'captions_tiny.json'}",
              "data.num_samples=4", "seeds=[0,1]", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    for method in ("baseline", "guided"):
        assert {"fid", "image_reward", "pickscore", "pickscore_winrate", "clip_score"} <= set(res[method])
        assert all(np.isfinite(v) for v in res[method].values())
    for b, g in zip(res["per_seed"]["baseline"], res["per_seed"]["guided"]):
        assert b["pickscore_winrate"] + g["pickscore_winrate"] == pytest.approx(1.0)
    frame = pd.read_parquet(tmp_path / "samples.parquet")
    assert {"prompt", "image_id", "file_name", "image_reward", "pickscore", "clip_score"} <= set(frame.columns) and len(frame) == 16
    for method in ("baseline", "guided"):  # the means of the per-sample values are the reported aggregates
        rows = frame[frame.method == method]
        assert rows.groupby("seed").image_reward.mean().mean() == pytest.approx(res[method]["image_reward"], rel=1e-6)
    # FID recomputed from the saved features alone equals the reported one
    from itd.metrics.fid import frechet

    with np.load(next(Path(os.environ["ITD_CACHE"]).glob("fid_stats/*.npz"))) as stats:
        reference = stats["mu"], stats["sigma"]
    for seed, reported in zip((0, 1), res["per_seed"]["guided"]):
        with np.load(tmp_path / "features" / f"guided_seed{seed}.npz") as f:
            assert frechet(f["fid_features"].astype(np.float64), reference) == pytest.approx(reported["fid"], rel=1e-9)
    assert "pickscore_winrate" in out.stdout and not list(tmp_path.rglob("*.tmp*"))

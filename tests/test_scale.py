"""Scale-out: shards and their merge, resume after SIGKILL, baseline reuse across a sweep, the sweep's table,
W&B runs grouped and always finished, the paper-table presets."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from itd import logging as itd_logging
from itd.experiment import batches, shard_range
from itd.merge import main as merge_main

from test_cli import CONF, ROOT, cli


def results(path: Path) -> dict:
    return json.loads((path / "results.json").read_text())


def test_shards_split_the_prompt_set_on_the_batch_grid():
    parts = [shard_range(10, i, 3) for i in range(3)]
    assert [list(p) for p in parts] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    assert [list(b) for b in batches(parts[1], 2)] == [[3], [4, 5]]  # the unsharded run's batches [2, 3], [4, 5], cut
    assert sum(len(b) for p in parts for b in batches(p, 4)) == 10


def test_merged_shards_equal_the_unsharded_run(tmp_path):
    common = ["debug=tiny", "data.num_samples=40", "batch_size=10", "seeds=[0,1]"]
    sharded = cli("-m", *common, "shard.count=2", "shard.index=0,1", f"store={tmp_path}/store_a", f"hydra.sweep.dir={tmp_path}/sweep")
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    whole = cli(*common, f"store={tmp_path}/store_b", f"hydra.run.dir={tmp_path}/whole")  # its own store: really regenerated
    assert whole.returncode == 0, whole.stderr[-3000:]
    merge_main([str(tmp_path / "sweep")])

    (merged,) = (tmp_path / "sweep" / "merged").iterdir()
    ours, reference = results(merged), results(tmp_path / "whole")
    for method in ("baseline", "guided"):
        for key in ("fd", "accuracy", "nfe", "forwards"):
            assert ours[method][key] == reference[method][key], (method, key)
    merged_rows = pd.read_parquet(merged / "samples.parquet")
    pd.testing.assert_frame_equal(merged_rows, pd.read_parquet(tmp_path / "whole" / "samples.parquet"))
    for name in ("baseline_seed0.npz", "guided_seed1.npz"):
        assert np.array_equal(np.load(merged / "features" / name)["features"], np.load(tmp_path / "whole" / "features" / name)["features"])
    table = pd.read_parquet(tmp_path / "sweep" / "results.parquet")
    assert len(table) == 1 and table["shards"].iloc[0] == 2 and table["guided.fd"].iloc[0] == reference["guided"]["fd"]


def test_merge_refuses_a_missing_shard(tmp_path, capsys):
    out = cli("-m", "debug=tiny", "shard.count=3", "shard.index=0,2", f"hydra.sweep.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    with pytest.raises(SystemExit) as exit_:
        merge_main([str(tmp_path)])
    assert exit_.value.code == 2 and "shards [1] of 3" in capsys.readouterr().err


def _chunks(store: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(store)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in store.rglob("*.npz") if not p.name.startswith(".")}


def test_a_killed_run_resumes_without_regenerating_finished_batches(tmp_path):
    args = [sys.executable, str(ROOT / "run.py"), "debug=tiny", "data.num_samples=2000", "batch_size=10", "seeds=[0]",
            f"store={tmp_path}/store", f"hydra.run.dir={tmp_path}/run"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = tmp_path / "store"
    deadline = time.monotonic() + 300
    while len(_chunks(store) if store.exists() else {}) < 20 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _chunks(store)
    assert 20 <= len(before) < 2 * 2 * 200  # images + scores files of 200 batches per arm, part done
    for name in before:  # whatever has a real name is complete
        np.load(store / name).files
    assert not (tmp_path / "run" / "results.json").exists()

    rerun = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = _chunks(store)
    assert all(after[name] == stat for name, stat in before.items()), "a finished batch was rewritten"
    done = results(tmp_path / "run")["batches"]
    finished_images = sum(1 for n in before if n.count(".") == 1)
    assert done["baseline"]["reused"] + done["guided"]["reused"] == finished_images
    assert sum(done[m]["generated"] + done[m]["reused"] for m in done) == 2 * 200
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name], "a temporary file survived"

    clean = cli("debug=tiny", "data.num_samples=2000", "batch_size=10", "seeds=[0]", f"store={tmp_path}/fresh", f"hydra.run.dir={tmp_path}/clean")
    assert clean.returncode == 0, clean.stderr[-3000:]
    for method in ("baseline", "guided"):
        assert results(tmp_path / "run")[method]["fd"] == results(tmp_path / "clean")[method]["fd"]


def test_a_lambda_sweep_reuses_the_baseline_and_tables_every_job(tmp_path):
    out = cli("-m", "debug=tiny", "guidance.lam=0.1,0.3", f"store={tmp_path}/store", f"hydra.sweep.dir={tmp_path}/sweep")
    assert out.returncode == 0, out.stderr[-3000:]
    first, second = results(tmp_path / "sweep" / "0"), results(tmp_path / "sweep" / "1")
    assert first["batches"]["baseline"]["generated"] == 3 and second["batches"]["baseline"] == {"generated": 0, "reused": 3}
    assert second["batches"]["guided"]["generated"] == 3
    assert first["baseline"]["fd"] == second["baseline"]["fd"] and first["guided"]["fd"] != second["guided"]["fd"]
    table = pd.read_parquet(tmp_path / "sweep" / "results.parquet")
    assert sorted(table["cfg.guidance.lam"]) == [0.1, 0.3] and set(table["guided.fd"]) == {first["guided"]["fd"], second["guided"]["fd"]}


def test_wandb_runs_are_grouped_by_sweep_and_named_by_overrides(tmp_path):
    out = cli("-m", "debug=tiny", "logger=wandb", "guidance.lam=0.1,0.3", f"hydra.sweep.dir={tmp_path}/sweep")
    assert out.returncode == 0, out.stderr[-3000:]
    for job, lam in (("0", "0.1"), ("1", "0.3")):
        (record,) = (tmp_path / "sweep" / job / "wandb").glob("offline-run-*/run-*.wandb")
        data = record.read_bytes()
        assert str(tmp_path / "sweep").encode() in data and f"guidance.lam={lam}".encode() in data


class _Run:
    """Records how W&B's run is finished."""

    def __init__(self, calls):
        self.calls = calls

    def finish(self, exit_code=0):
        self.calls.append(("finish", exit_code))


def test_the_wandb_run_is_finished_even_when_the_job_fails(tmp_path, monkeypatch):
    import wandb

    calls = []
    monkeypatch.setattr(wandb, "init", lambda **kwargs: calls.append(("init", kwargs["group"], kwargs["config"]["a.b"])) or _Run(calls))
    logger = itd_logging.WandbLogger(group="my-sweep")
    with pytest.raises(RuntimeError, match="boom"):
        with logger.session({"a": {"b": 1}}, tmp_path):
            raise RuntimeError("boom")
    assert calls == [("init", "my-sweep", 1), ("finish", 1)]
    with logger.session({"a": {"b": 2}}, tmp_path):
        pass
    assert calls[-1] == ("finish", 0)


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONF / "experiment").glob("paper_*.yaml")))
def test_paper_presets_run_end_to_end_offline_in_smoke_mode(preset, tmp_path):
    out = cli("-m", f"experiment={preset}", "debug=smoke", f"hydra.sweep.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    table = pd.read_parquet(tmp_path / "results.parquet")
    expected = {"paper_table1": 5, "paper_table3": 3, "paper_cost": 3}[preset]
    assert len(table) == expected and {"baseline.fid", "guided.image_reward", "guided.pickscore_winrate"} <= set(table.columns)
    tables = subprocess.run([sys.executable, str(ROOT / "experiments" / "make_tables.py"), preset.removeprefix("paper_"), str(tmp_path)],
                            capture_output=True, text=True)
    assert tables.returncode == 0, tables.stderr[-3000:]
    assert "(paper" in tables.stdout and "2412.08871" in tables.stdout


def test_merged_fid_of_two_shards_equals_the_unsharded_fid(tmp_path):
    """The paper's metrics on tiny networks: FID from merged per-shard features, ImageReward and the
    PickScore win-rate from merged per-sample columns, each equal to the unsharded run's."""
    common = ["debug=smoke", "metrics=paper", "data.num_samples=6", "batch_size=3", "seeds=[0]"]
    sharded = cli("-m", *common, "shard.count=2", "shard.index=0,1", f"store={tmp_path}/a", f"hydra.sweep.dir={tmp_path}/sweep")
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    whole = cli(*common, f"store={tmp_path}/b", f"hydra.run.dir={tmp_path}/whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    merge_main([str(tmp_path / "sweep")])
    (merged,) = (tmp_path / "sweep" / "merged").iterdir()
    for method in ("baseline", "guided"):
        for key in ("fid", "image_reward", "pickscore", "pickscore_winrate", "clip_score"):
            assert results(merged)[method][key] == pytest.approx(results(tmp_path / "whole")[method][key], rel=1e-6, abs=1e-9), (method, key)

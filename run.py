"""Entry point: compose the config, check it, build the experiment, run it.

    python run.py                                    # digits: student vs student + teacher guidance
    python run.py -m renoiser=next,same,random guidance.lam=0.05,0.1,0.2
    python run.py experiment=digits_ablation         # a preset sweep
"""

from __future__ import annotations

import sys
import warnings

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import itd.config  # noqa: F401  (registers the schemas)
from itd import experiment
from itd.guidance import ConfigError
from itd.sweep import write_table

# conf/hydra/launcher/submitit_{local,slurm}.yaml carry the names of the submitit plugin's schemas, so
# Hydra validates them against those schemas (typed fields, misspelt keys rejected) and warns that this
# name matching is deprecated. The files list every field, so they stay valid once the matching goes.
warnings.filterwarnings("ignore", r"\s*'hydra/launcher/submitit_(local|slurm)' is validated against", UserWarning)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    torch.set_num_threads(cfg.threads)
    try:
        exp = experiment.build(cfg)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    hydra_cfg = HydraConfig.get()
    out_dir = hydra_cfg.runtime.output_dir
    results = experiment.run(exp, out_dir)
    print(experiment.format_table(results))
    print(f"outputs: {out_dir}")
    if hydra_cfg.mode == RunMode.MULTIRUN:  # the sweep's table, one row per finished job (itd.merge completes it)
        write_table(hydra_cfg.sweep.dir)
    return results


if __name__ == "__main__":
    main()

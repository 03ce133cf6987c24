"""Entry point: compose the config, check it, build the experiment, run it.

    python run.py                                    # digits: student vs student + teacher guidance
    python run.py -m renoiser=next,same,random guidance.lam=0.05,0.1,0.2
    python run.py experiment=digits_ablation         # a preset sweep
"""

from __future__ import annotations

import sys

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import itd.config  # noqa: F401  (registers the schemas)
from itd import experiment
from itd.guidance import ConfigError


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    torch.set_num_threads(cfg.threads)
    try:
        exp = experiment.build(cfg)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    out_dir = HydraConfig.get().runtime.output_dir
    results = experiment.run(exp, out_dir)
    print(experiment.format_table(results))
    print(f"outputs: {out_dir}")
    return results


if __name__ == "__main__":
    main()

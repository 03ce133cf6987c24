"""Seeded golden values of one short guided run with the shipped weights.

Regenerate (only after retraining the shipped weights, and say so in the commit):
    python tests/test_golden.py
"""

import json
from pathlib import Path

import torch

from itd import solvers
from itd.data.digits import DigitsPrompts, DigitsWorld
from itd.denoisers import CFGDenoiser
from itd.guidance import GuidancePlan, TeacherGuidance
from itd.models.toy import load_student, load_teacher
from itd.noise import NoiseStreams
from itd.renoise import Renoiser, fresh_noise, next_timestep
from itd.sampling import sample
from itd.schedule import NoiseSchedule, lcm_timesteps

GOLDEN = Path(__file__).with_name("golden") / "digits_short_run.json"


def short_run() -> dict[str, list[float]]:
    schedule = NoiseSchedule.scaled_linear()
    teacher = CFGDenoiser(load_teacher(schedule), 1.5, schedule)
    guidance = TeacherGuidance(GuidancePlan("eps", 0.2, 1), [teacher], Renoiser(next_timestep, fresh_noise), schedule)
    data, indices = DigitsPrompts(8), list(range(8))
    out = {}
    for name, g in (("baseline", None), ("guided", guidance)):
        x = sample(load_student(schedule), solvers.lcm, lcm_timesteps(4), schedule, DigitsWorld().cond(data.prompts_at(indices)), NoiseStreams(0, indices), (8, 8), g)
        out[name] = x.flatten(1)[:, :4].flatten().tolist()
        out[f"{name}_sum"] = x.sum(dim=(1, 2)).tolist()
    return out


def test_short_run_matches_golden_values():
    golden = json.loads(GOLDEN.read_text())
    got = short_run()
    for key, values in golden.items():
        torch.testing.assert_close(torch.tensor(got[key]), torch.tensor(values), atol=1e-4, rtol=1e-5, msg=key)


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(short_run(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")

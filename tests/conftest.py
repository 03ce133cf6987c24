import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("ITD_CACHE", __import__("tempfile").mkdtemp(prefix="itd-cache-"))  # smoke models, per session
os.environ.setdefault("ITD_STORE", __import__("tempfile").mkdtemp(prefix="itd-store-"))  # sample store, per session

import pytest  # noqa: E402
import torch  # noqa: E402

from itd.denoisers import Cond, Prediction, append_dims  # noqa: E402
from itd.schedule import NoiseSchedule  # noqa: E402

torch.set_num_threads(1)


class GaussianDenoiser:
    """The ideal denoiser for data x0 ~ N(mu, std^2 I): E[x0 | x_t] in closed form."""

    forwards = 1

    def __init__(self, mu: float, std: float, schedule: NoiseSchedule):
        self.mu, self.std, self.schedule = mu, std, schedule

    def __call__(self, x, t, cond=None):
        a = append_dims(self.schedule.alpha(t), x).double()
        x = x.double()
        gain = a.sqrt() * self.std**2 / (a * self.std**2 + 1 - a)
        x0 = self.mu + gain * (x - a.sqrt() * self.mu)
        eps = (x - a.sqrt() * x0) / (1 - a).clamp(min=1e-12).sqrt()
        return Prediction(x0.float(), eps.float())


@pytest.fixture(scope="session")
def schedule():
    return NoiseSchedule.scaled_linear()


@pytest.fixture
def label_cond():
    def make(n, label=3):
        y = torch.full((n,), label)
        return Cond({"labels": y}, negative={"labels": torch.full_like(y, 10)})

    return make

"""Training recipes that regenerate the shipped digits weights: teacher, student (LCD), judge.

    python -m itd.train_digits all            # teacher (~5 min), student (~3 min), judge (~10 s) on 2 CPU cores
    python -m itd.train_digits student --out DIR

Teacher: eps-prediction DDPM loss on SDXL's scaled-linear schedule, 10 % label dropout for CFG.
Student: latent consistency distillation (Luo et al. 2023, Alg. 1/4) from the CFG teacher with a
skipping-step DDIM ODE target, an EMA target network and the c_skip/c_out boundary condition.
Judge: an MLP digit classifier trained with light pixel noise.
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from itd.data.digits import load_digits
from itd.denoisers import CFGDenoiser, Cond, ConsistencyDenoiser, EpsDenoiser
from itd.models.toy import NULL_LABEL, WEIGHTS_DIR, DigitsJudge, DigitsNet, load_teacher, save_checkpoint
from itd.schedule import CLEAN, NoiseSchedule
from itd.solvers import ddim


@dataclass
class TeacherRecipe:
    steps: int = 15000
    batch_size: int = 256
    lr: float = 2e-3
    label_dropout: float = 0.1
    ema: float = 0.999
    seed: int = 0


@dataclass
class StudentRecipe:
    steps: int = 4000
    batch_size: int = 256
    lr: float = 3e-4
    cfg_scale: float = 1.5  # the teacher's CFG scale baked into the student's ODE target
    skip: int = 20  # LCM's skipping step k: a 50-step DDIM grid on 1000 timesteps
    target_ema: float = 0.95
    seed: int = 1


@dataclass
class JudgeRecipe:
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    pixel_noise: float = 0.15
    seed: int = 2


def _cosine(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + torch.cos(torch.tensor(torch.pi * i / steps)).item()))


@torch.no_grad()
def _ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    for pt, ps in zip(target.parameters(), source.parameters()):
        pt.lerp_(ps, 1 - decay)


def _fit(name: str, params, recipe, loss_fn, after_step=None, weight_decay: float = 0.0, log_every: int = 500) -> list[float]:
    """AdamW with a cosine schedule over ``recipe.steps`` steps of ``loss_fn()``; returns the losses."""
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=weight_decay)
    sched = _cosine(opt, recipe.steps)
    losses = []
    for step in range(recipe.steps):
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if after_step is not None:
            after_step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"{name} step {step + 1}/{recipe.steps} loss {sum(losses[-log_every:]) / log_every:.5f}", flush=True)
    return losses


def train_teacher(recipe: TeacherRecipe = TeacherRecipe(), log_every: int = 500) -> tuple[DigitsNet, list[float]]:
    """DDPM eps-loss on the digits; returns the EMA network and the per-step losses."""
    g = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    images, labels = load_digits()
    schedule = NoiseSchedule.scaled_linear()
    net = DigitsNet()
    ema = copy.deepcopy(net).requires_grad_(False)

    def loss_fn():
        idx = torch.randint(0, len(images), (recipe.batch_size,), generator=g)
        x0, y = images[idx], labels[idx].clone()
        y[torch.rand(len(y), generator=g) < recipe.label_dropout] = NULL_LABEL
        t = torch.randint(0, schedule.num_train_timesteps, (len(x0),), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        a = schedule.alpha(t)[:, None, None]
        return (net(a.sqrt() * x0 + (1 - a).sqrt() * eps, t, y) - eps).pow(2).mean()

    losses = _fit("teacher", net.parameters(), recipe, loss_fn, lambda: _ema_update(ema, net, recipe.ema), log_every=log_every)
    return ema, losses


def train_student(
    teacher: EpsDenoiser, recipe: StudentRecipe = StudentRecipe(), log_every: int = 500
) -> tuple[DigitsNet, list[float]]:
    """Latent consistency distillation of the CFG teacher; the student starts from the teacher's weights."""
    g = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    images, labels = load_digits()
    schedule = teacher.schedule
    cfg_teacher = CFGDenoiser(teacher, recipe.cfg_scale, schedule)
    student = ConsistencyDenoiser(copy.deepcopy(teacher.net).requires_grad_(True), schedule)
    target = ConsistencyDenoiser(copy.deepcopy(teacher.net), schedule)
    grid = torch.arange(1, schedule.num_train_timesteps // recipe.skip + 1) * recipe.skip - 1  # 19, 39, ..., 999

    def loss_fn():
        idx = torch.randint(0, len(images), (recipe.batch_size,), generator=g)
        x0, y = images[idx], labels[idx]
        cond = Cond({"labels": y}, negative={"labels": torch.full_like(y, NULL_LABEL)})
        t = grid[torch.randint(0, len(grid), (len(x0),), generator=g)]
        t_prev = torch.where(t - recipe.skip >= 0, t - recipe.skip, torch.full_like(t, CLEAN))
        a = schedule.alpha(t)[:, None, None]
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * torch.randn(x0.shape, generator=g)
        with torch.no_grad():
            # One DDIM step of the guided teacher ODE from t to t - k, then the EMA target's estimate there.
            x_prev = ddim(x_t, cfg_teacher(x_t, t, cond), schedule.alpha(t), schedule.alpha(t_prev), None)
            goal = target(x_prev, t_prev, cond).x0
        return (student(x_t, t, cond).x0 - goal).pow(2).mean()

    update_target = lambda: _ema_update(target.net, student.net, recipe.target_ema)  # noqa: E731
    losses = _fit("student", student.net.parameters(), recipe, loss_fn, update_target, log_every=log_every)
    return target.net, losses


def train_judge(recipe: JudgeRecipe = JudgeRecipe(), log_every: int = 500) -> tuple[DigitsJudge, list[float]]:
    """Classifier on all real digits (it defines the reference features), with pixel-noise augmentation."""
    g = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    images, labels = load_digits()
    judge = DigitsJudge()

    def loss_fn():
        idx = torch.randint(0, len(images), (recipe.batch_size,), generator=g)
        x = images[idx] + recipe.pixel_noise * torch.randn(images[idx].shape, generator=g)
        return nn.functional.cross_entropy(judge(x), labels[idx])

    losses = _fit("judge", judge.parameters(), recipe, loss_fn, weight_decay=1e-4, log_every=log_every)
    return judge.eval().requires_grad_(False), losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["teacher", "student", "judge", "all"])
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for the .pt files")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    todo = ["teacher", "student", "judge"] if args.what == "all" else [args.what]
    for what in todo:
        start = time.perf_counter()
        if what == "teacher":
            model, losses, recipe = *train_teacher(), TeacherRecipe()
        elif what == "student":
            teacher = load_teacher(NoiseSchedule.scaled_linear(), args.out / "digits_teacher.pt")
            model, losses, recipe = *train_student(teacher), StudentRecipe()
        else:
            model, losses, recipe = *train_judge(), JudgeRecipe()
        save_checkpoint(model, args.out / f"digits_{what}.pt", recipe=asdict(recipe), final_loss=sum(losses[-100:]) / 100)
        print(f"{what}: saved {args.out / f'digits_{what}.pt'} in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()

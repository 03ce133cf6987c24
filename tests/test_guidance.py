"""Numerical contracts of teacher guidance (design.md §1)."""

import pytest
import torch

from itd import solvers
from itd.denoisers import CFGDenoiser, ConsistencyDenoiser, EpsDenoiser
from itd.guidance import ConfigError, GuidancePlan, TeacherGuidance
from itd.models.toy import DigitsNet
from itd.noise import NoiseStreams
from itd.renoise import RandomTimestep, Renoiser, deterministic_noise, fresh_noise, next_timestep, same_timestep
from itd.sampling import NFECounter, sample
from itd.schedule import lcm_timesteps

TS = lcm_timesteps(4)
RULES = [next_timestep, same_timestep, RandomTimestep()]


def _net(seed):
    torch.manual_seed(seed)
    return DigitsNet(width=32, blocks=1).eval()


@pytest.fixture(scope="module")
def models(schedule):
    student = ConsistencyDenoiser(_net(0), schedule)
    teacher = CFGDenoiser(EpsDenoiser(_net(1), schedule), 2.0, schedule)
    return student, teacher


def _run(schedule, student, label_cond, guidance=None, indices=range(12), solver=solvers.lcm, callback=None, streams=None):
    streams = streams or NoiseStreams(0, indices)
    return sample(student, solver, TS, schedule, label_cond(len(streams.indices)), streams, (8, 8), guidance, callback)


def _guidance(schedule, teacher, form="eps", lam=0.3, steps=1, timestep=next_timestep, noise=fresh_noise, **kw):
    return TeacherGuidance(GuidancePlan(form, lam, steps), [teacher], Renoiser(timestep, noise), schedule, **kw)


@pytest.mark.parametrize("form", ["x0", "eps"])
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("solver", [solvers.lcm, solvers.ddim, solvers.euler, solvers.euler_ancestral])
def test_lam_zero_and_k_zero_are_bit_identical_to_the_student(schedule, models, label_cond, form, rule, solver):
    student, teacher = models
    base = _run(schedule, student, label_cond, solver=solver)
    for g in (_guidance(schedule, teacher, form, 0.0, 2, rule), _guidance(schedule, teacher, form, 0.5, 0, rule)):
        assert torch.equal(_run(schedule, student, label_cond, g, solver=solver), base)


def test_guidance_changes_the_output(schedule, models, label_cond):
    student, teacher = models
    base = _run(schedule, student, label_cond)
    assert not torch.allclose(_run(schedule, student, label_cond, _guidance(schedule, teacher)), base)


@pytest.mark.parametrize("form", ["x0", "eps"])
def test_teacher_equal_to_student_is_a_no_op_with_same_and_deterministic(schedule, models, label_cond, form):
    """s = t and z = eps_hat renoise x_t to itself; a teacher equal to the student then returns its own prediction."""
    student, _ = models
    g = _guidance(schedule, student, form, 0.7, 3, same_timestep, deterministic_noise)
    torch.testing.assert_close(_run(schedule, student, label_cond, g), _run(schedule, student, label_cond), atol=2e-5, rtol=0)


def test_forms_agree_at_s_equal_t_with_deterministic_noise(schedule, models, label_cond):
    """With x_s = x_t, x0_teacher - x0_student = -sigma_t (eps_teacher - eps_student): the forms coincide at equal lam."""
    student, teacher = models
    x0 = _run(schedule, student, label_cond, _guidance(schedule, teacher, "x0", 0.3, 1, same_timestep, deterministic_noise))
    eps = _run(schedule, student, label_cond, _guidance(schedule, teacher, "eps", 0.3, 1, same_timestep, deterministic_noise))
    torch.testing.assert_close(x0, eps, atol=1e-4, rtol=1e-4)


def test_eps_form_moves_x0_by_lam_sigma_t_delta_eps(schedule, models, label_cond):
    student, teacher = models
    streams = NoiseStreams(0, range(8))
    cond = label_cond(8)
    x = streams.randn("init", 0, (8, 8))
    t = torch.full((8,), 999)
    pred = student(x, t, cond)
    from itd.sampling import StepContext

    ctx = StepContext(0, 999, 759, 4)
    g = _guidance(schedule, teacher, "eps", 0.1)
    guided, _ = g(x, pred, ctx, cond, streams)
    x_s, s = g.renoiser(pred, ctx, streams, schedule)
    delta = teacher(x_s, s, cond).eps - pred.eps
    sigma_t = schedule.sigma(torch.tensor(999))
    assert sigma_t.item() == pytest.approx(14.6, abs=0.1)
    torch.testing.assert_close(guided.x0, pred.x0 - 0.1 * sigma_t * delta, atol=1e-4, rtol=1e-4)


def test_x0_form_is_the_papers_interpolation(schedule, models, label_cond):
    student, teacher = models
    from itd.sampling import StepContext

    streams, cond, ctx = NoiseStreams(3, range(8)), label_cond(8), StepContext(1, 759, 499, 4)
    x = streams.randn("init", 0, (8, 8))
    pred = student(x, torch.full((8,), 759), cond)
    g = _guidance(schedule, teacher, "x0", 0.25)
    guided, forwards = g(x, pred, ctx, cond, streams)
    x_s, s = g.renoiser(pred, ctx, streams, schedule)
    assert (s == 499).all() and forwards == 2
    torch.testing.assert_close(guided.x0, 0.75 * pred.x0 + 0.25 * teacher(x_s, s, cond).x0, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rule", RULES)
def test_guidance_changes_no_other_draw(schedule, models, label_cond, rule):
    """Baseline and guided runs consume identical init and solver noise; guidance only adds renoise draws."""

    class Recording(NoiseStreams):
        def __init__(self, *a):
            super().__init__(*a)
            self.log = {}

        def randn(self, stream, step, shape):
            out = super().randn(stream, step, shape)
            self.log[(stream, step)] = out
            return out

    student, teacher = models
    runs = []
    for g in (None, _guidance(schedule, teacher, "eps", 0.5, 2, rule)):
        streams = Recording(5, range(6))
        _run(schedule, student, label_cond, g, streams=streams)
        runs.append(streams.log)
    base, guided = runs
    shared = {k for k in guided if k[0] != "renoise"}
    assert shared == set(base) and all(torch.equal(base[k], guided[k]) for k in shared)


def test_same_seed_same_samples_at_any_batch_size(schedule, models, label_cond):
    student, teacher = models
    g = _guidance(schedule, teacher, "eps", 0.4, 1, RandomTimestep())
    whole = _run(schedule, student, label_cond, g, indices=range(10))
    pieces = torch.cat([_run(schedule, student, label_cond, g, indices=r) for r in (range(0, 3), range(3, 10))])
    # Draws are identical by construction; matmuls of different batch sizes may round differently.
    torch.testing.assert_close(pieces, whole, atol=1e-5, rtol=0)


def test_several_teachers_combine_convexly(schedule, models, label_cond):
    student, teacher = models
    one = _guidance(schedule, teacher, "x0", 0.5)
    two = TeacherGuidance(GuidancePlan("x0", 0.5, 1), [teacher, teacher], one.renoiser, schedule, weights=[0.3, 0.7])
    torch.testing.assert_close(_run(schedule, student, label_cond, two), _run(schedule, student, label_cond, one), atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="summing to 1"):
        TeacherGuidance(GuidancePlan(), [teacher, teacher], one.renoiser, schedule, weights=[0.5, 0.6])


def test_per_step_lam_and_explicit_steps(schedule, models, label_cond):
    student, teacher = models
    a = _run(schedule, student, label_cond, _guidance(schedule, teacher, "eps", [0.0, 0.3, 0.0, 0.0], [1, 2]))
    b = _run(schedule, student, label_cond, _guidance(schedule, teacher, "eps", 0.3, [1]))
    assert torch.equal(a, b)


def test_nfe_counts_student_steps_and_cfg_teacher_calls(schedule, models, label_cond):
    student, teacher = models
    counter = NFECounter()
    _run(schedule, student, label_cond, _guidance(schedule, teacher, steps=2), callback=counter)
    assert (counter.student_calls, counter.teacher_calls, counter.forwards) == (4, 2, 4 + 2 * 2)


@pytest.mark.parametrize(
    "plan, renoiser, message",
    [
        (GuidancePlan("x0", 1.5, 1), None, "outside \\[0, 1\\]"),
        (GuidancePlan("eps", -0.1, 1), None, "outside \\[0, 1\\]"),
        (GuidancePlan("eps", 0.1, 5), None, "must be in \\[0, 4\\]"),
        (GuidancePlan("eps", 0.1, [0, 7]), None, "must index steps"),
        (GuidancePlan("ddim", 0.1, 1), None, "not one of"),
        (GuidancePlan("eps", [0.1, 0.2], 1), None, "one per step"),
        (GuidancePlan("eps", 0.1, 4), Renoiser(next_timestep, fresh_noise), "renoiser=next"),
    ],
)
def test_plan_rejects_what_cannot_run(plan, renoiser, message):
    with pytest.raises(ConfigError, match=message):
        plan.validate(4, renoiser)

import torch

from itd.noise import NoiseStreams


def test_draws_do_not_depend_on_batch_composition():
    full = NoiseStreams(7, range(10)).randn("solver", 2, (8, 8))
    part = NoiseStreams(7, [3, 4]).randn("solver", 2, (8, 8))
    assert torch.equal(full[3:5], part)


def test_streams_steps_and_seeds_are_independent():
    s = NoiseStreams(0, range(4))
    draws = [s.randn("init", 0, (16,)), s.randn("solver", 0, (16,)), s.randn("renoise", 0, (16,)),
             s.randn("solver", 1, (16,)), NoiseStreams(1, range(4)).randn("init", 0, (16,))]
    for i in range(len(draws)):
        for j in range(i + 1, len(draws)):
            assert not torch.allclose(draws[i], draws[j])
    assert torch.equal(draws[0], NoiseStreams(0, range(4)).randn("init", 0, (16,)))  # repeatable


def test_randint_range_and_per_sample_variation():
    s = NoiseStreams(0, range(256)).randint("renoise_timestep", 0, 20, 981)
    assert s.min() >= 20 and s.max() <= 980 and len(s.unique()) > 100

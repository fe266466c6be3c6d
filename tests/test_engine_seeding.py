"""Per-sample seeding (:func:`seeded`, :class:`SeededDataset`): the streams inside are the
seed's own, checked against freshly seeded generators; the global ones are restored after;
and only the CPU generator is seeded, never every device's."""
from __future__ import annotations

import random
from unittest import mock

import numpy as np
import torch

from vggkit.engine.seeding import SeededDataset, derive_seed, seeded


class Draws:
    """A dataset whose sample is one draw from each global stream."""

    def __len__(self):
        return 3

    def __getitem__(self, index):
        return random.random(), np.random.rand(2), torch.rand(2)


def _expected(seed: int):
    """The same draws from generators of their own, seeded with ``seed``."""
    return (random.Random(seed).random(), np.random.RandomState(seed).rand(2),
            torch.rand(2, generator=torch.Generator().manual_seed(seed)))


def _assert_draws(got, seed):
    want = _expected(seed)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    torch.testing.assert_close(got[2], want[2], rtol=0, atol=0)


def test_seeded_draws_the_seeds_streams_and_restores_the_global_ones():
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    for seed in (0, 7, 2 ** 32 - 1):
        with seeded(seed):
            torch.testing.assert_close(
                torch.rand(5), torch.rand(5, generator=torch.Generator().manual_seed(seed)),
                rtol=0, atol=0)
        with seeded(seed):
            _assert_draws(Draws()[0], seed)
    assert random.getstate() == py
    assert torch.equal(torch.get_rng_state(), cpu)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) \
        and after[2:] == np_state[2:]


def test_samples_seed_the_cpu_generator_only():
    # torch.manual_seed seeds every device: slow per sample, and the CUDA generator it
    # seeds is not one fork_rng(devices=[]) restores
    dataset = SeededDataset(Draws(), seed=5)
    dataset.set_epoch(2)
    with mock.patch("torch.manual_seed", side_effect=AssertionError("all devices seeded")), \
            mock.patch("torch.cuda.manual_seed_all",
                       side_effect=AssertionError("CUDA seeded")):
        samples = [dataset[i] for i in range(len(dataset))]
    for i, got in enumerate(samples):
        _assert_draws(got, derive_seed(5, 2, i))

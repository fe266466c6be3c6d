"""Randomness that depends on *what* is computed, not on *when*.

For a killed-and-resumed run to end with the same weights as an
uninterrupted one, every random draw must be reproducible from a position in
training, not from a global generator's history (which a restart loses, and
which dataloader workers fork). So:

* augmentation (scale jitter, crop, flip, PCA colour: ``numpy.random`` in the
  transforms) is seeded per sample from ``(seed, epoch, index)`` by
  :class:`SeededDataset` -- independent of workers, batch order and restarts;
* dropout (``torch`` RNG) is seeded per iteration from ``(seed, rank, iter)``
  by :class:`~vggkit.engine.hooks.resume.ResumeHook`.
"""
from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator, Union

import numpy as np
import torch
from torch.utils.data import Dataset


def derive_seed(*keys: int) -> int:
    """A well-mixed 32-bit seed from integers (numpy's ``SeedSequence``)."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(1)[0])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed ``random``, ``numpy.random`` and ``torch``'s CPU generator inside, restore them after.

    Only the CPU generator: it is all that ``fork_rng(devices=[])`` restores (seeding
    CUDA too would leak into the global CUDA stream), and ``torch.manual_seed`` also
    walks every device's seeding path, ~0.3 ms per sample even on a CPU-only machine.
    The CPU stream is the same as ``torch.manual_seed``'s.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed)
        torch.default_generator.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class SeededDataset(Dataset):
    """Wrap a dataset so sample ``i`` of epoch ``e`` is augmented with seed ``(seed, e, i)``.

    Args:
        dataset: the dataset or its config (built from DATASETS).
        seed: base seed; ``None`` takes the runner's seed (``randomness.seed``)
            when :class:`ResumeHook` calls :meth:`set_epoch`.

    Everything else (``metainfo``, ``get_data_info``, ...) is the wrapped
    dataset's. Use with ``persistent_workers=False`` (the default): workers
    receive the epoch when they are started, at the start of each epoch.
    """

    def __init__(self, dataset: Union[dict, Dataset], seed: int | None = None) -> None:
        if isinstance(dataset, dict):
            from vggkit.registry import DATASETS
            dataset = DATASETS.build(dataset)
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int, seed: int | None = None) -> None:
        """Called before each epoch (by ``ResumeHook``); ``seed`` fills a ``None`` seed."""
        self.epoch = int(epoch)
        if self.seed is None and seed is not None:
            self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        with seeded(derive_seed(self.seed or 0, self.epoch, index)):
            return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        # only reached for attributes not found normally: delegate to the wrapped one
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

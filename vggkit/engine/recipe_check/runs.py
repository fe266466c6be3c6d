"""The runs of the recipe check: what each one trains, its config, the step budget, training.

Every run is a ``vggkit train`` run of ``configs/recipe_check/vgg_paper_small.py``
built through the library (:func:`build_config`, then ``build_runner(cfg).train()``),
with ``resume='auto'``: rerunning the check continues a killed run from its
last epoch checkpoint and skips finished ones.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CONFIG = os.path.join(REPO, "configs", "recipe_check", "vgg_paper_small.py")
#: the lr is divided by 10 after these fractions of the budget (fixed points, never a
#: plateau rule: that one cut the lr during the first stretch at chance)
LR_CUTS = (0.7, 0.9)

Scale = Union[int, tuple[int, int]]


@dataclass(frozen=True)
class Run:
    """One training run of the check.

    ``all_seeds``: trained once per seed of the check, because a comparison it
    serves hinges on a few points; else with the first seed only.
    ``init_from``: the run (same seed) whose final checkpoint initialises this one.
    ``required``: the report waits for it (else it uses the run when it was trained).
    """

    name: str
    arch: str
    init: str
    scale: Scale
    what: str
    all_seeds: bool = False
    init_from: Optional[str] = None
    required: bool = True


RUNS = (
    Run("A", "A", "paper_scaled", 32, "net A, random init, S = 32", all_seeds=True),
    # Table 3's second fixed S (the paper's 384); (d) stands without it: --runs can leave it out
    Run("A_S48", "A", "paper_scaled", 48, "net A, random init, S = 48", required=False),
    Run("A_jit", "A", "paper_scaled", (32, 64), "net A, random init, S ∈ [32, 64]",
        all_seeds=True),
    Run("E_random", "E", "paper_scaled", 32, "net E, random init, S = 32"),
    Run("E_from_A", "E", "from_checkpoint", 32,
        "net E, conv1_1, conv2_1, conv3_1, conv3_2 and fc6–fc8 from the trained A", init_from="A"),
    Run("E_glorot", "E", "glorot", 32, "net E, Glorot init, S = 32"),
)
BY_NAME = {r.name: r for r in RUNS}


def instances(seeds: Sequence[int], names: Optional[Sequence[str]] = None) -> list[tuple[Run, int]]:
    """``(run, seed)`` of every training of the check, those a run needs first before it."""
    chosen = [r for r in RUNS if names is None or r.name in names]
    return [(r, s) for r in chosen for s in (seeds if r.all_seeds else seeds[:1])]


def run_key(run: Run, seed: int) -> str:
    return f"{run.name}_s{seed}"


def single_q(scale: Scale) -> int:
    """Table 3's test scale: Q = S for a fixed S, the middle of [S_min, S_max] for a jittered one."""
    return scale if isinstance(scale, int) else (scale[0] + scale[1]) // 2


def multi_q(scale: Scale, crop: int) -> list[int]:
    """Table 4's test scales: {S - S/8, S, S + S/8} for a fixed S (the paper's 256 ± 32), never
    under the crop; {S_min, middle, S_max} for a jittered S."""
    if isinstance(scale, int):
        step = max(1, round(scale / 8))
        return sorted({max(crop, scale - step), scale, scale + step})
    return [scale[0], single_q(scale), scale[1]]


def milestones(epochs: int) -> list[int]:
    """Epochs after which the lr is divided by 10 (:data:`LR_CUTS` of the budget)."""
    return sorted({max(1, round(f * epochs)) for f in LR_CUTS})


def final_checkpoint(run_dir: str, epochs: int) -> str:
    return os.path.join(run_dir, f"epoch_{epochs}.pth")


def run_options(run: Run, seed: int, epochs: int, stats_file: str, work_dir: str) -> dict[str, Any]:
    """The ``--cfg-options`` of ``run`` over the check's config."""
    options: dict[str, Any] = {
        "model.vgg.arch": run.arch, "model.vgg.init": run.init,
        "model.data_preprocessor.stats_file": stats_file,
        "train_dataloader.dataset.dataset.pipeline.0.scale":
            run.scale if isinstance(run.scale, int) else list(run.scale),
        "train_dataloader.dataset.dataset.pipeline.2.stats_file": stats_file,
        "val_dataloader.dataset.pipeline.1.scale": single_q(run.scale),
        "train_cfg.max_epochs": epochs,
        "param_scheduler.0.milestones": milestones(epochs),
    }
    if run.init_from:
        source = os.path.join(work_dir, run_key(BY_NAME[run.init_from], seed))
        options["model.vgg.init_checkpoint"] = final_checkpoint(source, epochs)
        options["model.vgg.init_random"] = "paper_scaled"  # the layers not copied, as E_random's
    return options


def build_config(config: str, data_root: str, work_dir: str, seed: int,
                 options: Mapping[str, Any], resume: bool = True) -> Any:
    """The runner config of one run: the training library's loader with the run's values."""
    from vggkit.engine.train import load_config
    return load_config(config, cfg_options=dict(options), work_dir=work_dir, data_root=data_root,
                       seed=seed, resume="auto" if resume else None)


def train_one(config: str, data_root: str, work_dir: str, seed: int,
              options: Mapping[str, Any], threads: int) -> str:
    """Train (or resume) one run to its end; returns its work dir. Runs in a child process."""
    import torch

    import vggkit  # noqa: F401  (registries; the safe torch.load list for resume)
    from vggkit.engine.train import build_runner
    torch.set_num_threads(threads)
    build_runner(build_config(config, data_root, work_dir, seed, options)).train()
    return work_dir


@dataclass
class Planned:
    """A run still to train: its key, work dir, seed, config options, and the key it waits for."""

    key: str
    work_dir: str
    seed: int
    options: dict[str, Any]
    after: Optional[str] = None


def train_all(plan: Sequence[Planned], config: str, data_root: str, jobs: int) -> None:
    """Train the runs of ``plan``, ``jobs`` at a time, each with its share of the cores.

    With several jobs each run trains in its own process (a fresh mmengine logger and
    registry state per run); a run waits until the planned run it is initialised from
    has finished. One job trains in this process.
    """
    import concurrent.futures as cf
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // jobs)
    if jobs == 1:  # in this process, one after another (the plan lists sources first)
        for p in plan:
            print(f"=== recipe-check: training {p.key} ===", flush=True)
            train_one(config, data_root, p.work_dir, p.seed, p.options, threads)
        return
    planned = {p.key for p in plan}
    pending, done = list(plan), set()
    running: dict[cf.Future, str] = {}
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(jobs, mp_context=context, max_tasks_per_child=1) as pool:
        while pending or running:
            ready = [p for p in pending if p.after not in planned or p.after in done]
            for p in ready[:jobs - len(running)]:
                pending.remove(p)
                print(f"=== recipe-check: training {p.key} ===", flush=True)
                running[pool.submit(train_one, config, data_root, p.work_dir, p.seed,
                                    p.options, threads)] = p.key
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                key = running.pop(future)
                future.result()  # a failed run stops the check with its error
                done.add(key)
                print(f"=== recipe-check: {key} finished ===", flush=True)


def probe_seconds_per_step(config: str, data_root: str, stats_file: str, archs: Sequence[str],
                           threads: int, steps: int = 3) -> dict[str, float]:
    """Seconds of one training step of each net in ``archs`` on this machine: the pipeline
    decoding a batch of the real training images, then forward, backward and the SGD update,
    timed over ``steps`` steps after one warm-up step, with ``threads`` threads (a run's)."""
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper

    from vggkit.registry import DATASETS, MODELS
    torch.set_num_threads(threads)
    out = {}
    for arch in archs:
        cfg = build_config(config, data_root, os.devnull, 0, {
            "model.vgg.arch": arch, "model.data_preprocessor.stats_file": stats_file,
            "train_dataloader.dataset.dataset.pipeline.2.stats_file": stats_file}, resume=False)
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
        model = MODELS.build(cfg.model)
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
        batch_size = int(cfg.train_dataloader.batch_size)
        model.train()
        times = []
        for step in range(steps + 1):
            start = time.perf_counter()
            batch = pseudo_collate([dataset[(step * batch_size + i) % len(dataset)]
                                    for i in range(batch_size)])
            model.train_step(batch, optim)
            times.append(time.perf_counter() - start)
        out[arch] = sorted(times[1:])[len(times[1:]) // 2]
    return out


def epochs_for_budget(seconds_per_step: Mapping[str, float], archs: Sequence[str],
                      steps_per_epoch: int, minutes: float, jobs: int,
                      train_share: float = 0.8) -> tuple[int, int]:
    """``(epochs, steps)`` every run gets so that the runs of ``archs`` (one entry per run)
    fit ``train_share`` of ``minutes`` with ``jobs`` runs at a time; at least one epoch."""
    per_step = sum(seconds_per_step[a] for a in archs) / jobs
    steps = int(minutes * 60 * train_share / per_step) if per_step > 0 else 0
    epochs = max(1, steps // steps_per_epoch)
    return epochs, steps


def training_stats(data_root: str, path: str, max_images: int = 10000, scale: int = 64) -> str:
    """Write (once) the training images' mean RGB and PCA colour statistics to ``path``.

    The library of ``vggkit stats``; every k-th image when there are more than
    ``max_images``, each rescaled to smallest side ``scale`` (colour statistics barely
    depend on scale; this bounds the cost of a large photo).
    """
    from vggkit.data.stats import compute_stats, training_image_paths
    from vggkit.fileio import atomic_write_json
    if not os.path.exists(path):
        paths = training_image_paths(data_root)
        paths = paths[::max(1, math.ceil(len(paths) / max_images))]
        stats = compute_stats(paths, scale, progress=False)
        stats.update(data_root=os.path.abspath(data_root))
        atomic_write_json(path, stats)
    return path

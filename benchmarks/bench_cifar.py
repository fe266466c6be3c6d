"""Accuracy on natural images: vggkit's tiny configs vs a plain PyTorch loop, same net, same epochs.

Issue 24: the quick-start config must hold on photos, not only on scikit-learn's
digits. The baseline is what a competent user writes without vggkit: net A at
1/4 width with 128-wide FC layers, no dropout, He init (the tiny config's net,
built here in plain PyTorch); torchvision's ``ImageFolder`` with pad-4
``RandomCrop(32)`` and ``RandomHorizontalFlip``, per-channel normalisation by
the training set's mean and std; SGD at batch 64, momentum 0.9, weight decay
5e-4, ``OneCycleLR`` peaking at 0.05, one ``DataLoader`` worker. The same loop
with BatchNorm after every conv is the baseline of ``vgg_a_bn_tiny.py``.

vggkit's side is ``tools/train.py CONFIG --data-root ROOT`` in a subprocess,
exactly the README's quick start; each plain loop runs in a subprocess too, so
``--jobs 2`` trains two at once on a 2-core machine (accuracy only: the seconds
in the JSON are wall times of runs that shared the machine). Reported:
validation top-1 error (%) after each epoch and the final gap, vggkit minus
plain (goal: within 3 points). Every contender runs at the first seed; the
pairs whose gap lies within 1.5 points of the goal run again at the others.

Data: ``--data-root ROOT`` (``ROOT/train/<class>/``, ``ROOT/val/<class>/``);
by default ``../shared/data/cifar10.tar.gz`` is unpacked into a temporary
directory and the first 1,000 training and 200 validation images per class
(sorted by file number) are linked into a subset. Without either, the
section is skipped (exit 0), so ``make bench`` runs on a clone without
``../shared``.

    python benchmarks/bench_cifar.py [--data-root ROOT] [--epochs 10] [--seeds 0 1]
        [--every-seed] [--jobs 2] [--only plain plain_bn tiny bn_tiny]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import command, machine_header, write_fragment  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "data" / "cifar10.tar.gz"
#: net A (Table 1) at 1/4 width: conv widths, 'M' = max-pool
A_QUARTER = [16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"]
#: contender -> (vggkit config or None for the plain loop, BatchNorm)
CONTENDERS = {
    "plain": (None, False),
    "tiny": ("configs/tiny/vgg_a_tiny.py", False),
    "plain_bn": (None, True),
    "bn_tiny": ("configs/tiny/vgg_a_bn_tiny.py", True),
}
#: (vggkit, its plain baseline)
PAIRS = (("tiny", "plain"), ("bn_tiny", "plain_bn"))
#: the goal of issue 24: vggkit within this many points of its plain loop
GOAL_POINTS = 3.0
#: a pair whose first-seed gap lies this close to the goal is rerun at the other seeds: seeds
#: move the final error by about a point (docs/natural_images.md)
CLOSE = 1.5


# -- data --------------------------------------------------------------------------------
def cifar_subset(archive: Path, dest: str, train: int = 1000, val: int = 200) -> str:
    """Unpack ``archive`` under ``dest``; link the first ``train``/``val`` images per class."""
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    full = next(p for p in Path(dest).rglob("train") if p.is_dir()).parent
    subset = Path(dest) / f"cifar{train}"
    for split, count in (("train", train), ("val", val)):
        for cls in sorted(p for p in (full / split).iterdir() if p.is_dir()):
            out = subset / split / cls.name
            out.mkdir(parents=True)
            files = sorted(cls.iterdir(), key=lambda p: int(p.stem))[:count]
            for f in files:
                (out / f.name).symlink_to(f)
    return str(subset)


def channel_stats(root: str) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (0-1 scale) of the training images, as a user computes them."""
    from torchvision.datasets import ImageFolder
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for path, _ in ImageFolder(os.path.join(root, "train")).samples:
        x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64).reshape(-1, 3) / 255
        total += x.sum(0)
        total_sq += (x ** 2).sum(0)
        count += len(x)
    mean = total / count
    return mean.tolist(), np.sqrt(total_sq / count - mean ** 2).tolist()


# -- the plain loop ----------------------------------------------------------------------
class PlainVGG(nn.Module):
    """Net A at 1/4 width, FC 128, no dropout, for 32x32 inputs (what a user writes)."""

    def __init__(self, num_classes: int, batch_norm: bool = False, fc: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in A_QUARTER:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            layers.append(nn.Conv2d(channels, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            channels = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(channels, fc), nn.ReLU(inplace=True),
                                        nn.Linear(fc, fc), nn.ReLU(inplace=True),
                                        nn.Linear(fc, num_classes))
        for m in self.modules():  # He init (torchvision's), zero biases
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)


def plain_loop(root: str, epochs: int = 10, batch_norm: bool = False, seed: int = 0,
               batch: int = 64, max_lr: float = 0.05, workers: int = 1,
               cycle_momentum: bool = True, warmup_cosine: bool = False) -> dict:
    """Train the plain loop; ``{'top1_error': [per epoch], 'seconds': s}``.

    The last two are for ablations (docs/natural_images.md): ``cycle_momentum=False``
    keeps the momentum at 0.9; ``warmup_cosine`` replaces the one-cycle by vggkit_tiny's
    schedule (linear from ``max_lr`` / 25 over epoch 1, times a cosine to 0 over the run).
    """
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    mean, std = channel_stats(root)
    normalize = T.Normalize(mean, std)
    train_set = ImageFolder(os.path.join(root, "train"), T.Compose([
        T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalize]))
    val_set = ImageFolder(os.path.join(root, "val"), T.Compose([T.ToTensor(), normalize]))
    g = torch.Generator().manual_seed(seed)
    train = torch.utils.data.DataLoader(train_set, batch_size=batch, shuffle=True,
                                        num_workers=workers, generator=g,
                                        worker_init_fn=_seed_worker,
                                        persistent_workers=workers > 0)
    val = torch.utils.data.DataLoader(val_set, batch_size=256, num_workers=workers)
    model = PlainVGG(len(train_set.classes), batch_norm)
    opt = torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9, weight_decay=5e-4)
    steps, first = epochs * len(train), len(train)
    if warmup_cosine:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: (
            0.04 + 0.96 * min(i, first) / first) * 0.5 * (1 + math.cos(math.pi * i / steps)))
    else:  # momentum 0.95 -> 0.85 at the peak -> 0.95 with cycle_momentum (torch's default)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps,
                                                    cycle_momentum=cycle_momentum)
    errors = []
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        for x, y in train:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
        model.eval()
        wrong = total = 0
        with torch.no_grad():
            for x, y in val:
                wrong += (model(x).argmax(1) != y).sum().item()
                total += len(y)
        errors.append(round(100.0 * wrong / total, 2))
        print(f"plain{'_bn' if batch_norm else ''} seed {seed} epoch {epoch + 1}: "
              f"top-1 error {errors[-1]:.2f} %", flush=True)
    return {"top1_error": errors, "seconds": round(time.perf_counter() - start, 1)}


# -- vggkit ------------------------------------------------------------------------------
def vggkit_argv(config: str, root: str, work_dir: str, epochs: int, seed: int) -> list[str]:
    """``tools/train.py config --data-root root`` (the README's quick start)."""
    return [sys.executable, str(REPO / "tools" / "train.py"), str(REPO / config),
            "--data-root", root, "--work-dir", work_dir, "--seed", str(seed),
            "--cfg-options", f"train_cfg.max_epochs={epochs}",
            "default_hooks.checkpoint.iter_interval=1000000"]


def vggkit_errors(work_dir: str) -> list[float]:
    """Validation top-1 error after each epoch, from the run's ``scalars.json``."""
    (scalars,) = Path(work_dir).glob("*/vis_data/scalars.json")
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    return [round(r["top1_error"], 2) for r in rows if "top1_error" in r]


# -- the section ---------------------------------------------------------------------------
def run_one(name: str, seed: int, root: str, epochs: int, work: str, threads: int) -> dict:
    """One contender at one seed, in its own process (so several can share the machine)."""
    config, bn = CONTENDERS[name]
    work_dir = os.path.join(work, f"{name}_s{seed}")
    os.makedirs(work_dir, exist_ok=True)
    result = os.path.join(work_dir, "plain.json")
    argv = (vggkit_argv(config, root, work_dir, epochs, seed) if config else
            [sys.executable, os.path.abspath(__file__), "--plain-run", name, "--seeds", str(seed),
             "--data-root", root, "--epochs", str(epochs), "--result", result])
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    errors = json.loads(Path(result).read_text()) if config is None else vggkit_errors(work_dir)
    print(f"{name} seed {seed}: top-1 error by epoch {errors}", flush=True)
    return {"top1_error": errors, "seconds": round(time.perf_counter() - start, 1)}


def gap(results: dict, ours: str, theirs: str, seed: int) -> float:
    return results[ours][seed]["top1_error"][-1] - results[theirs][seed]["top1_error"][-1]


def run(root: str, epochs: int, seeds: list[int], only: list[str], work: str, jobs: int,
        every_seed: bool) -> dict:
    """``{name: {seed: result}}``: every contender at the first seed; the later seeds only for
    the pairs whose first gap lies within ``CLOSE`` points of the goal (all with ``every_seed``)."""
    from concurrent.futures import ThreadPoolExecutor
    threads = max(1, (os.cpu_count() or 1) // jobs)
    results: dict = {}

    def batch(tasks: list[tuple[str, int]]) -> None:
        with ThreadPoolExecutor(jobs) as pool:
            outs = pool.map(lambda t: run_one(*t, root, epochs, work, threads), tasks)
            for (name, seed), out in zip(tasks, outs):
                results.setdefault(name, {})[seed] = out

    batch([(name, seeds[0]) for name in only])
    later = [name for pair in PAIRS if set(pair) <= set(only) and (
        every_seed or abs(gap(results, *pair, seeds[0]) - GOAL_POINTS) <= CLOSE) for name in pair]
    batch([(name, seed) for seed in seeds[1:] for name in later])
    return results


def paired_seeds(results: dict, ours: str, theirs: str) -> list[int]:
    """The seeds at which both of a pair ran."""
    return [s for s in results.get(ours, {}) if s in results.get(theirs, {})]


def markdown(results: dict, root: str, epochs: int, argv: list[str] | None) -> str:
    lines = ["## cifar: the tiny configs vs a plain PyTorch loop on natural images", "",
             machine_header(), "",
             f"Command: `{command(argv)}`. Data: `{root}` (CIFAR-10 32×32 JPEGs, 1,000 "
             f"training and 200 validation images per class unless stated). {epochs} epochs; "
             "validation top-1 error (%) after each epoch. The plain loop: the same net in "
             "plain PyTorch, pad-4 crop + flip, per-channel mean/std, SGD batch 64, momentum "
             "0.9, wd 5e-4, OneCycleLR peak 0.05, one DataLoader worker.", "",
             "| run | seed | final error | by epoch |", "|---|---|---|---|"]
    for name, by_seed in results.items():
        for seed, out in by_seed.items():
            e = out["top1_error"]
            lines.append(f"| {name} | {seed} | **{e[-1]:.1f}** | "
                         f"{', '.join(f'{x:.1f}' for x in e)} |")
    lines.append("")
    for ours, theirs in PAIRS:
        for seed in paired_seeds(results, ours, theirs):
            g = gap(results, ours, theirs, seed)
            lines.append(f"- {ours} − {theirs}, seed {seed}: {g:+.1f} points "
                         f"(goal ≤ {GOAL_POINTS:.0f}: {'met' if g <= GOAL_POINTS else 'not met'})")
    return "\n".join(lines)


def headlines(results: dict) -> list[dict]:
    rows = []
    for ours, theirs in PAIRS:
        seeds = paired_seeds(results, ours, theirs)
        gaps = [gap(results, ours, theirs, s) for s in seeds]
        # the summary table's ratio slot holds error ratios (vggkit / plain)
        ratios = [results[ours][s]["top1_error"][-1] / results[theirs][s]["top1_error"][-1]
                  for s in seeds]
        if gaps:
            listed = ", ".join(f"{g:+.1f}" for g in gaps)
            rows.append({"figure": f"CIFAR-10 top-1 error, {ours} / {theirs}",
                         "path": CONTENDERS[ours][0],
                         "ratio": [float(np.median(ratios)), min(ratios), max(ratios)],
                         "reads": f"gap {listed} points (goal ≤ {GOAL_POINTS:.0f})",
                         "text": f"{np.median(ratios):.2f}× error ({listed} pt)"})
    return rows


def plain_run(name: str, root: str, epochs: int, seed: int, result: str) -> None:
    """The plain loop in this process; its errors by epoch written atomically to ``result``."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    errors = plain_loop(root, epochs, CONTENDERS[name][1], seed)["top1_error"]
    tmp = f"{result}.tmp{os.getpid()}"
    Path(tmp).write_text(json.dumps(errors))
    os.replace(tmp, result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", help="ROOT/train/<class>, ROOT/val/<class> (default: a "
                        "1,000/200 per class subset of ../shared/data/cifar10.tar.gz)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help=f"the first for every contender, the others for the pairs whose "
                             f"gap lies within {CLOSE} points of the goal")
    parser.add_argument("--every-seed", action="store_true",
                        help="run every pair at every seed")
    parser.add_argument("--only", nargs="+", choices=list(CONTENDERS), default=list(CONTENDERS))
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="trainings at once, each on cores / jobs threads (default 2: "
                             "one thread each on 2 cores)")
    parser.add_argument("--plain-run", choices=[n for n, (c, _) in CONTENDERS.items() if not c],
                        help=argparse.SUPPRESS)  # one plain loop, run by run_one
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.data_root is not None and not os.path.isdir(os.path.join(args.data_root, "train")):
        print(f"bench_cifar: --data-root {args.data_root} has no train/ folder "
              "(expected ROOT/train/<class>/, ROOT/val/<class>/)", file=sys.stderr)
        return 2
    if args.epochs < 1 or args.jobs < 1:
        print(f"bench_cifar: --epochs and --jobs must be positive, got {args.epochs} and "
              f"{args.jobs}", file=sys.stderr)
        return 2
    if args.plain_run:
        plain_run(args.plain_run, args.data_root, args.epochs, args.seeds[0], args.result)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_cifar_") as tmp:
        root = args.data_root
        if root is None:
            if not ARCHIVE.exists():
                why = f"no {ARCHIVE} (a clone without ../shared); pass --data-root ROOT"
                write_fragment("cifar", f"## cifar: the tiny configs vs a plain PyTorch loop\n\n"
                               f"Skipped: {why}.", {"skipped": why, "headlines": []})
                return 0
            root = cifar_subset(ARCHIVE, tmp)
        results = run(root, args.epochs, args.seeds, args.only, os.path.join(tmp, "work"),
                      args.jobs, args.every_seed)
    label = args.data_root or f"{ARCHIVE.name}, first 1,000/200 per class"
    write_fragment("cifar", markdown(results, label, args.epochs, argv),
                   {"results": results, "epochs": args.epochs, "headlines": headlines(results)})
    return 0


if __name__ == "__main__":
    sys.exit(main())

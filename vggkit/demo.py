"""``vggkit demo`` (``make demo``): the whole job, offline, on real images.

The paper in miniature on scikit-learn's handwritten digits (1,797 real 8×8
scans that ship with scikit-learn, so nothing is downloaded):

1. data      the digits written once as PNG image folders (upscaled to 64×64)
             under the cache directory: source classes 0-5 (train/val) and
             target classes 6-9, which the net never sees;
2. train     :func:`vggkit.engine.train.train` of ``configs/tiny/vgg_a_digits.py``:
             net A at 1/4 width with the paper's recipe shape (scale jittering,
             random crops, flips, PCA colour, plateau schedule) on the source classes;
3. test      :func:`vggkit.evaluation.evaluate_nets` with the ``center``, ``dense``
             and ``multicrop`` protocols over three scales on the source validation
             images;
4. transfer  :func:`vggkit.features.extract` (dense fc7, flip-averaged,
             L2-normalised) on the target classes, then linear SVMs from a few
             training images per class (Appendix B in miniature).

Each stage is the library call the matching tool (``tools/train.py``,
``tools/test.py``, ``tools/extract_features.py``, ``tools/svm_transfer.py``) makes.
It prints a results table and the paths of the PNG plots.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any, Callable

import numpy as np

from vggkit import paths
from vggkit.errors import plural


CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "configs", "tiny", "vgg_a_digits.py")
STRATEGIES = ("center", "dense", "multicrop")


def digits_dir() -> str:
    """The demo's data folder, ``digits-v1`` in the cache root (:mod:`vggkit.paths`)."""
    return os.fspath(paths.cache_dir("digits-v1"))


#: the old name, which vggkit.weights.cache_dir shared for another folder (the recipe check
#: still calls it)
cache_dir = digits_dir


def write_digits(root: str, source_classes: int = 6, size: int = 64, val_fraction: float = 0.2,
                 seed: int = 0) -> dict[str, str]:
    """Write scikit-learn's digits as image folders under ``root`` (once).

    Layout: ``root/source/{train,val}/<digit>/*.png`` for digits below
    ``source_classes`` and ``root/target/<digit>/*.png`` for the others. The
    folder appears complete or not at all (written aside, then renamed).
    """
    paths = {"source": os.path.join(root, "source"), "target": os.path.join(root, "target")}
    if all(os.path.isdir(p) for p in paths.values()):
        return paths
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    rng = np.random.default_rng(seed)
    tmp = f"{root}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for i in rng.permutation(len(digits.images)):
        label = int(digits.target[i])
        grey = (digits.images[i] * (255.0 / 16.0)).astype(np.uint8)  # values are 0-16
        img = Image.fromarray(grey).resize((size, size), Image.BICUBIC).convert("RGB")
        if label < source_classes:
            split = "val" if rng.random() < val_fraction else "train"
            folder = os.path.join(tmp, "source", split, str(label))
        else:
            folder = os.path.join(tmp, "target", str(label))
        os.makedirs(folder, exist_ok=True)
        img.save(os.path.join(folder, f"digit_{i:04d}.png"))
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.dirname(root), exist_ok=True)
    os.replace(tmp, root)
    return paths


def _stage(name: str, timings: dict[str, float], fn: Callable[[], Any]) -> Any:
    print(f"\n=== {name} ===", flush=True)
    start = time.time()
    result = fn()
    timings[name] = time.time() - start
    return result


def last_checkpoint(work_dir: str) -> str:
    marker = os.path.join(work_dir, "last_checkpoint")
    if not os.path.exists(marker):
        raise SystemExit(f"demo: training wrote no checkpoint in {work_dir}")
    with open(marker) as f:
        return f.read().strip()


def run(work_dir: str, epochs: int = 15, n_train: int = 10, splits: int = 3,
        data_root: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the four stages; returns the results the table is made of."""
    from vggkit.config import read_config
    from vggkit.engine.train import train
    from vggkit.evaluation import evaluate_nets, format_results
    from vggkit.features import extract
    from vggkit.fileio import atomic_write_json
    from vggkit.inference.distributed import choose_device

    timings: dict[str, float] = {}
    os.makedirs(work_dir, exist_ok=True)
    device = choose_device(None)
    start = time.time()
    data = write_digits(data_root or digits_dir())
    timings["data"] = time.time() - start
    train_dir = os.path.join(work_dir, "train")
    _stage("train", timings, lambda: train(
        CONFIG, data_root=data["source"], work_dir=train_dir, seed=0,
        cfg_options={"train_cfg.max_epochs": epochs}))
    ckpt = last_checkpoint(train_dir)
    cfg = read_config(CONFIG)
    test, _ = _stage("test", timings, lambda: evaluate_nets(
        [(cfg, ckpt, None, CONFIG)], cfg, STRATEGIES, data_root=data["source"],
        source=CONFIG, device=device, progress=progress))
    print(format_results(test))
    atomic_write_json(os.path.join(work_dir, "test.json"), test)
    store = os.path.join(work_dir, "features")
    # the train stage has just written a new checkpoint, and a store refuses to resume from
    # another one's features: a second demo in the same work dir starts its store afresh
    shutil.rmtree(store, ignore_errors=True)
    _stage("extract", timings, lambda: extract(
        data["target"], [(CONFIG, ckpt)], task="imagefolder", scales=(32, 40, 48),
        aggregate="stack", out=store, device=device, progress=progress))
    svm_json = os.path.join(work_dir, "transfer.json")
    transfer = _stage("transfer", timings, lambda: transfer_store(store, n_train, splits,
                                                                  svm_json))
    plots = [os.path.join(train_dir, "curves.png"), transfer["plot"]]
    return {"test": test, "transfer": transfer, "timings": timings, "checkpoint": ckpt,
            "plots": [p for p in plots if os.path.exists(p)], "n_train": n_train}


def transfer_store(store: str, n_train: int, splits: int, out: str) -> dict[str, Any]:
    """Linear SVMs on the demo's feature store, as ``vggkit transfer --task imagefolder
    --task-option n_train=N --splits K --out OUT`` runs them; the results, with ``plot``."""
    from vggkit.features.store import load_features
    from vggkit.fileio import atomic_write_json
    from vggkit.transfer.experiment import format_table as transfer_table
    from vggkit.transfer.experiment import run_transfer, write_plot
    from vggkit.transfer.task import TaskData, build_task
    features = load_features(store)
    task = build_task("imagefolder", n_train=n_train)
    results = run_transfer(features.features, TaskData.from_features(features), task,
                           n_splits=splits, n_folds=5, source=f"the feature store '{store}'")
    print(transfer_table(results))
    results["plot"] = os.path.splitext(out)[0] + ".png"
    atomic_write_json(out, results, indent=1)
    write_plot(results, results["plot"], task.multilabel)
    return results


def format_table(results: dict[str, Any]) -> str:
    test, transfer = results["test"], results["transfer"]
    model = test["models"][0]
    lines = ["", "vggkit demo: VGG net A (1/4 width) on scikit-learn's digits", "",
             f"source: digits 0-5, {test['num_images']} validation images, scales Q={model['scales']}",
             f"  {'protocol':<12}{'top-1 err %':>12}{'top-5 err %':>12}"]
    for name in STRATEGIES:
        err = model["results"][name]
        lines.append(f"  {name:<12}{err['top1_error']:>12.2f}{err['top5_error']:>12.2f}")
    lines += ["",
              f"transfer: digits 6-9 (never seen in training), fc7 features, linear SVMs, "
              f"{results['n_train']} training images per class",
              f"  {transfer['metric']}: {transfer['mean']:.2f} ± {transfer['std']:.2f} % "
              f"over {plural(len(transfer['splits']), 'split')}", *_transfer_C_lines(transfer), "", "time per stage (s):"]
    lines += [f"  {k:<10}{v:8.1f}" for k, v in results["timings"].items()]
    lines += ["", "plots:"] + [f"  {p}" for p in results["plots"]]
    return "\n".join(lines)


def _transfer_C_lines(transfer: dict[str, Any]) -> list[str]:
    """Per split, the chosen C and its test metric beside the oracle's (best C on the test images in hindsight)."""
    oracle = "oracle_mean" in transfer  # absent when the test labels are withheld
    lines = [f"  C chosen on {transfer.get('n_folds') or 1} folds of the training images"
             + (", oracle = the best C on the test images, in hindsight (biased upwards):" if oracle else ":"),
             f"    {'split':<10}{'C':>8}{'test %':>9}" + (f"{'oracle C':>10}{'test %':>9}" if oracle else "")]
    for r in transfer["splits"]:
        sel = r["selection"]
        lines.append(f"    {r['split']['name']:<10}{sel['C']:>8g}{sel['test_metric']:>9.2f}"
                     + (f"{sel['oracle_C']:>10g}{sel['oracle_test_metric']:>9.2f}" if oracle else ""))
    lines.append(f"    {'mean':<10}{'':>8}{transfer['mean']:>9.2f}"
                 + (f"{'':>10}{transfer['oracle_mean']:>9.2f}" if oracle else ""))
    return lines + [f"  warning: {w}" for w in transfer.get("warnings", [])]

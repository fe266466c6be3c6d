"""Training step: vggkit's runner vs a plain PyTorch loop (and mmpretrain's runner), same model/batch.

Full-size VGG-16 (config D) at 224×224: a training step (data, forward,
backward, SGD with momentum 0.9 and weight decay 5e-4, lr 0.01) on a batch of
synthetic uint8 images, three ways:

* vggkit: mmengine's Runner with vggkit's model (``VGGClassifier``), data
  preprocessor and every hook of ``configs/_base_/default_runtime.py`` (the
  path of ``tools/train.py``; checkpointing off, the logger quiet);
* a plain PyTorch loop over a ``DataLoader`` on vggkit's network (mean
  subtraction, ``F.cross_entropy``, ``zero_grad``/``backward``/``step``);
* mmpretrain 1.2's runner on its ``vgg16`` config (``ImageClassifier`` with
  ``VGG(depth=16)``, ``ClsHead``, ``ClsDataPreprocessor`` subtracting the same
  mean), mmengine's default hooks;
* in its own paired block at ``--amp-batch`` (8, issue 26's batch): vggkit's
  runner as ``tools/train.py --amp auto --channels-last`` sets it up, where
  ``--amp auto`` takes a reduced precision (bf16 autocast on a CPU with native
  bf16: ``vggkit.engine.train.amp_precision``), against ``--channels-last`` in fp32.

All three are built once and stay alive: each runner trains in a thread that
a hook holds after every iteration until it is granted the next
(:class:`Gate`), the plain loop is a generator. After one step each (untimed:
first-iteration set-up) and a warm-up block, ``--rounds`` paired rounds in
rotated order each time ``--steps`` steps of every contender (data loading,
hooks and logging included). Reported: the median of the per-round ratio
vggkit time ÷ other time, with min-max ("parity" when the range includes 1).
Then ``make demo``'s training stage end to end through ``tools/train.py``,
shortened to ``--tiny-epochs`` (one run; 0 skips it).

    python benchmarks/bench_train.py [--batch 2] [--steps 1] [--rounds 5] [--amp-batch 8]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.structures import BaseDataElement
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (MIN_ROUNDS, command, fmt_ratio, headline, inverse,  # noqa: E402
                    machine_header, paired_rounds, write_fragment)

REPO = Path(__file__).resolve().parents[1]
MEAN = [123.68, 116.779, 103.939]
SGD = dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=5e-4)
#: seconds a contender may take for one step before the benchmark gives up
STEP_TIMEOUT = 600


class SyntheticImages(Dataset):
    """``n`` random 3x224x224 uint8 images with labels, as PackInputs would give them."""

    def __init__(self, n: int, size: int = 224, classes: int = 1000,
                 sample_type: type = BaseDataElement) -> None:
        g = torch.Generator().manual_seed(0)
        self.sample_type = sample_type
        self.images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
        self.labels = torch.randint(0, classes, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return dict(inputs=self.images[i],
                    data_samples=self.sample_type(gt_label=self.labels[i:i + 1]))


class Gate(Hook):
    """Holds a runner after each iteration until :meth:`run` grants the next ones."""

    priority = "LOWEST"  # after every other hook of the iteration

    def __init__(self) -> None:
        self.granted, self.finished = threading.Semaphore(0), threading.Semaphore(0)
        self.released = False

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        self.finished.release()
        if not self.released:
            self.granted.acquire()


class ThreadedRunner:
    """An mmengine Runner training in a thread, advanced ``k`` iterations at a time."""

    def __init__(self, build: Callable[[Gate], Any]) -> None:
        self.gate, self.error = Gate(), None
        self.thread = threading.Thread(target=self._train, args=(build,), daemon=True)
        self.thread.start()
        self._wait()  # set-up and the first iteration: not timed

    def _train(self, build: Callable[[Gate], Any]) -> None:
        try:
            build(self.gate).train()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the timing thread
            self.error = exc
            self.gate.finished.release()

    def _wait(self) -> None:
        if not self.gate.finished.acquire(timeout=STEP_TIMEOUT) or self.error is not None:
            raise RuntimeError(f"training thread failed: {self.error!r}")

    def steps(self, k: int) -> None:
        for _ in range(k):
            self.gate.granted.release()
            self._wait()

    def close(self) -> None:
        self.gate.released = True
        self.gate.granted.release()
        self.thread.join(timeout=STEP_TIMEOUT)


def runtime_hooks() -> dict:
    """``configs/_base_/default_runtime.py``'s hooks, checkpointing off, the logger quiet."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / "configs" / "_base_" / "default_runtime.py"))
    default_hooks = dict(cfg.default_hooks)
    default_hooks.update(checkpoint=None, logger=dict(type="LoggerHook", interval=1000))
    return {"default_hooks": default_hooks, "custom_hooks": list(cfg.custom_hooks),
            "log_processor": dict(cfg.log_processor)}


def amp_auto() -> str | None:
    """The autocast dtype ``--amp auto`` trains in here ('bfloat16', 'float16'), or None (fp32)."""
    from vggkit.engine.train import _TORCH_DTYPES, amp_precision
    precision, _ = amp_precision("auto", "cuda" if torch.cuda.is_available() else "cpu")
    return _TORCH_DTYPES.get(precision)


def vggkit_runner(batch: int, iters: int, work_dir: str, autocast: str | None = None,
                  channels_last: bool = False) -> Callable[[Gate], Any]:
    """vggkit's runner; ``autocast`` and ``channels_last`` as ``--amp``, ``--channels-last``
    set them."""
    model_options = dict(autocast=autocast, channels_last=channels_last)

    def build(gate: Gate) -> Any:
        from mmengine.runner import Runner
        from vggkit.plugins import load_plugins
        load_plugins()
        hooks = runtime_hooks()
        return Runner(
            model=dict(type="VGGClassifier", vgg=dict(arch="D", num_classes=1000),
                       data_preprocessor=dict(type="VGGDataPreprocessor", mean=MEAN),
                       **model_options),
            work_dir=work_dir, experiment_name=f"bench_vggkit_{autocast or 'fp32'}",
            train_dataloader=dict(dataset=SyntheticImages(batch * iters), batch_size=batch,
                                  num_workers=0, sampler=dict(type="DefaultSampler", shuffle=True)),
            optim_wrapper=dict(optimizer=SGD), train_cfg=dict(by_epoch=True, max_epochs=1),
            default_hooks=hooks["default_hooks"], custom_hooks=hooks["custom_hooks"] + [gate],
            log_processor=hooks["log_processor"], default_scope="vggkit", log_level="WARNING",
            randomness=dict(seed=0))
    return build


def mmpretrain_runner(batch: int, iters: int, work_dir: str) -> Callable[[Gate], Any]:
    """mmpretrain's own runner set-up for its vgg16 config (default hooks, no checkpoint)."""
    def build(gate: Gate) -> Any:
        from mmengine.runner import Runner
        from mmpretrain.structures import DataSample
        from mmpretrain.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        return Runner(
            model=dict(type="ImageClassifier",
                       backbone=dict(type="VGG", depth=16, num_classes=1000), neck=None,
                       head=dict(type="ClsHead",
                                 loss=dict(type="CrossEntropyLoss", loss_weight=1.0), topk=(1, 5)),
                       data_preprocessor=dict(type="ClsDataPreprocessor", mean=MEAN,
                                              std=[1.0, 1.0, 1.0], to_rgb=False)),
            work_dir=work_dir, experiment_name="bench_mmpretrain",
            train_dataloader=dict(dataset=SyntheticImages(batch * iters, sample_type=DataSample),
                                  batch_size=batch, num_workers=0,
                                  sampler=dict(type="DefaultSampler", shuffle=True)),
            optim_wrapper=dict(optimizer=SGD), train_cfg=dict(by_epoch=True, max_epochs=1),
            default_hooks=dict(checkpoint=None, logger=dict(type="LoggerHook", interval=1000)),
            custom_hooks=[gate], default_scope="mmpretrain", log_level="WARNING",
            randomness=dict(seed=0))
    return build


def plain_loop(batch: int, iters: int) -> Iterator[None]:
    """The hand-written loop; yields after each step (the first one is set-up)."""
    from vggkit.factory import build_vgg
    torch.manual_seed(0)
    model = build_vgg("D", num_classes=1000).train()
    opt = torch.optim.SGD(model.parameters(), lr=SGD["lr"], momentum=SGD["momentum"],
                          weight_decay=SGD["weight_decay"])
    data = SyntheticImages(batch * iters)
    loader = DataLoader(torch.utils.data.TensorDataset(data.images, data.labels),
                        batch_size=batch, shuffle=True)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    for images, labels in loader:
        loss = F.cross_entropy(model(images.float() - mean), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        yield


def bench_step(batch: int, steps: int, rounds: int, mmpretrain: bool) -> dict:
    iters = 1 + steps * (rounds + 1)  # first step + warm-up block + timed blocks
    with tempfile.TemporaryDirectory() as work:
        plain = plain_loop(batch, iters)
        next(plain)
        runners = {"vggkit": ThreadedRunner(vggkit_runner(batch, iters, work))}
        if mmpretrain:
            runners["mmpretrain"] = ThreadedRunner(mmpretrain_runner(batch, iters, work))
        fns = {"vggkit": lambda _r: runners["vggkit"].steps(steps),
               "plain": lambda _r: [next(plain) for _ in range(steps)]}
        for name in runners:
            fns.setdefault(name, lambda _r, name=name: runners[name].steps(steps))
        try:
            result = paired_rounds(fns, rounds)
        finally:
            for r in runners.values():
                r.close()
    per_step = {n: [t / steps for t in ts] for n, ts in result.times.items()}
    return {"batch": batch, "steps": steps, "rounds": rounds, "s_per_step": per_step,
            "median_s": {n: statistics.median(ts) for n, ts in per_step.items()},
            "vs_plain": result.ratios("plain"),
            "vs_mmpretrain": result.ratios("mmpretrain") if mmpretrain else None,
}


def bench_amp(batch: int, steps: int, rounds: int, amp: str) -> dict:
    """vggkit fp32 against ``--amp auto`` (``amp`` autocast), both channels-last."""
    iters = 1 + steps * (rounds + 1)
    with tempfile.TemporaryDirectory() as work:
        runners = {name: ThreadedRunner(vggkit_runner(batch, iters, work, dtype, True))
                   for name, dtype in (("fp32", None), ("amp", amp))}
        try:
            result = paired_rounds({n: lambda _r, n=n: runners[n].steps(steps)
                                    for n in runners}, rounds, label="amp ")
        finally:
            for r in runners.values():
                r.close()
    return {"batch": batch, "amp": amp, "s_per_step": {n: [t / steps for t in ts]
                                                        for n, ts in result.times.items()},
            "speedup": inverse(result.ratios("fp32")["amp"])}


def bench_tiny(epochs: int) -> dict:
    """``make demo``'s training stage, shortened: tools/train.py on the digits, one run."""
    from vggkit.demo import CONFIG, write_digits
    with tempfile.TemporaryDirectory() as tmp:
        data = write_digits(os.path.join(tmp, "digits"))["source"]
        start = time.perf_counter()
        run = subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), CONFIG,
                              "--data-root", data, "--work-dir", os.path.join(tmp, "w"),
                              "--seed", "0", "--cfg-options", f"train_cfg.max_epochs={epochs}",
                              "default_hooks.logger.interval=1"],
                             capture_output=True, text=True)
        wall = time.perf_counter() - start
        if run.returncode:
            raise RuntimeError(run.stderr[-2000:])
        (scalars,) = Path(tmp, "w").glob("*/vis_data/scalars.json")
        rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    speeds = [r["img_per_s"] for r in rows if "img_per_s" in r]
    errors = [r["top1_error"] for r in rows if "top1_error" in r]
    return {"wall_s": wall, "img_per_s": statistics.median(speeds), "epochs": len(errors),
            "final_top1_error": errors[-1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2, help="images per training step")
    parser.add_argument("--steps", type=int, default=1, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS, help="paired timed rounds")
    parser.add_argument("--no-mmpretrain", action="store_true",
                        help="leave out mmpretrain's runner")
    parser.add_argument("--amp-batch", type=int, default=8,
                        help="images per step of the --amp auto block (0: skip it)")
    parser.add_argument("--tiny-epochs", type=int, default=2,
                        help="epochs of the end-to-end run on the digits (0: skip it)")
    args = parser.parse_args(argv)
    np.random.seed(0)
    header = machine_header()
    amp = amp_auto()
    step = bench_step(args.batch, args.steps, args.rounds, not args.no_mmpretrain)
    amp_block = bench_amp(args.amp_batch, args.steps, args.rounds, amp) \
        if amp and args.amp_batch else None
    tiny = bench_tiny(args.tiny_epochs) if args.tiny_epochs else None
    med, vs_plain, vs_mmp = step["median_s"], step["vs_plain"], step["vs_mmpretrain"]
    rows = {"vggkit": "vggkit: mmengine Runner + VGGClassifier, VGGDataPreprocessor, every "
                      "hook of default_runtime.py",
            "plain": "plain PyTorch loop (vggkit's network, DataLoader)",
            "mmpretrain": "mmpretrain 1.2: mmengine Runner + ImageClassifier(VGG depth 16, "
                          "ClsHead), default hooks"}
    lines = [
        "## Training step (engine)", "", header, "",
        f"VGG-16 (D), 224×224, batch {args.batch}, SGD (lr 0.01, momentum 0.9, weight decay "
        f"5e-4), synthetic uint8 data; {args.rounds} paired rounds in rotated order of "
        f"{args.steps} step(s) per contender, after a first step and a warm-up block. Ratios: "
        "vggkit's time ÷ the other's in the same round (<1: vggkit faster), median (min–max).",
        "",
        "| contender | median s/step (min–max) | vggkit time ÷ this |", "|---|---|---|",
    ]
    for name in med:
        ts = step["s_per_step"][name]
        cell = "—" if name == "vggkit" else fmt_ratio(
            vs_plain["vggkit"] if name == "plain" else vs_mmp["vggkit"])
        lines.append(f"| {rows[name]} | {med[name]:.2f} ({min(ts):.2f}–{max(ts):.2f}) | {cell} |")
    if amp_block is not None:
        per = {n: statistics.median(ts) for n, ts in amp_block["s_per_step"].items()}
        lines += ["", f"`--amp auto` (batch {amp_block['batch']}, channels-last, its own "
                  f"{args.rounds} paired rounds): trains in {amp} autocast, "
                  f"{per['amp']:.2f} s/step against {per['fp32']:.2f} in fp32: "
                  f"{fmt_ratio(amp_block['speedup'])} the speed, paired."]
    else:
        lines += ["", f"`--amp auto` {'not run (--amp-batch 0)' if amp else 'trains in fp32 here (no native bf16, no CUDA): no amp block'}."]
    lines += ["", "vggkit's steps include every hook of its runtime config (per-sample reseeding, "
              "non-finite loss guard, health checks — the fc7 probe runs on the first "
              "iteration and every 50th, so not in these steps —, throughput, curves). "
              "Checkpointing is off in both runners."]
    if tiny is not None:
        lines += ["", f"End to end, one run (`make demo`'s training stage, shortened: "
                  f"`tools/train.py configs/tiny/vgg_a_digits.py` on scikit-learn's digits 0-5 "
                  f"as 64×64 PNGs, {tiny['epochs']} epochs; start-up, validation each epoch, "
                  f"checkpoints and curves included): {tiny['wall_s']:.1f} s wall, median "
                  f"{tiny['img_per_s']:.0f} images/s in training, final validation top-1 error "
                  f"{tiny['final_top1_error']:.1f} % (chance 83.3 %)."]
    lines += ["", f"Command: `{command(argv)}`"]
    path = "Runner + VGGClassifier + runtime hooks (tools/train.py)"
    heads = [headline("train step: vggkit time ÷ plain PyTorch", path, vs_plain["vggkit"],
                      "× time (<1: vggkit faster; the overhead)")]
    if vs_mmp is not None:
        heads.append(headline("train step: vggkit time ÷ mmpretrain runner", path,
                              vs_mmp["vggkit"], "× time (<1: vggkit faster)"))
    if amp_block is not None:
        heads.append(headline(f"train step --amp auto ({amp}), batch {amp_block['batch']}: "
                              "speed-up over fp32", "tools/train.py --amp auto --channels-last",
                              amp_block["speedup"], "× (>1: faster than vggkit fp32)"))
    write_fragment("train", "\n".join(lines), {"headlines": heads, **step, "tiny": tiny,
                                                "amp": amp_block})
    return 0


if __name__ == "__main__":
    sys.exit(main())

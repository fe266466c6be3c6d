"""``tools/test.py`` / ``vggkit test``: the paper's test protocols on a test set.

Example (tiny net, CPU)::

    python tools/test.py configs/tiny.py work_dirs/tiny/epoch_2.pth \\
        --strategy center dense multicrop dense+multicrop --scales 32 48 64 --out results.json
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np
import torch

from vggkit.commands import (add_cfg_options, check_output_file, non_negative_int, positive_int,
                             read_config, run_command)
from vggkit.evaluation.distributed import gather_shards, init_distributed, merge_shards, rank_and_world
from vggkit.evaluation.loading import ModelEntry, check_classes, load_model, load_test_set
from vggkit.evaluation.loop import evaluate_shard, result_key
from vggkit.evaluation.posteriors import Posteriors, fuse, load_posteriors, save_posteriors
from vggkit.evaluation.report import errors, format_results
from vggkit.evaluation.strategies import build_strategy
from vggkit.fileio import atomic_write_json

DEFAULT_STRATEGY = "dense"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vggkit test", description="Evaluate VGG nets with the paper's test protocols "
        "(Sect. 3.2): top-1/top-5 error per strategy and for the fusion of several nets.")
    p.add_argument("config", help="config file of the net (its model and test_dataloader)")
    p.add_argument("checkpoint", help="checkpoint: ours, a runner's, or converted weights "
                   "(tools/convert_weights.py); its recorded preprocessing is applied")
    p.add_argument("--data-root", help="test-set root, overriding test_dataloader.dataset.data_root")
    p.add_argument("--strategy", nargs="+", default=[DEFAULT_STRATEGY], metavar="NAME",
                   help="one or more evaluation strategies by name: center, dense, multicrop, "
                   "dense+multicrop, or one a plugin registers (default: %(default)s)")
    p.add_argument("--scales", nargs="+", type=positive_int, metavar="Q",
                   help="test scales (smallest image side); posteriors are averaged over them. "
                   "Default: from the checkpoint's training scale S -> {S-32, S, S+32}, "
                   "[S_min, S_max] -> {S_min, (S_min+S_max)/2, S_max}. Applies to every net")
    p.add_argument("--fuse", nargs=2, action="append", default=[], metavar=("CONFIG", "CKPT"),
                   help="another net whose posteriors are averaged with this one's (model "
                   "fusion); repeat for more nets. Each uses its own default scales")
    p.add_argument("--fuse-posteriors", nargs="+", default=[], metavar="FILE",
                   help="posteriors saved by an earlier run (--save-posteriors) to fuse with "
                   "this run's, strategy by strategy, without re-running those nets")
    p.add_argument("--save-posteriors", metavar="FILE",
                   help="write per-image posteriors (.npz with image ids) for later fusion")
    p.add_argument("--out", metavar="FILE", help="write the results as JSON")
    p.add_argument("--launcher", choices=("none", "pytorch"), default="none",
                   help="'pytorch' to run under torchrun, one shard of the images per process")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="network inputs (crops, or whole images with their flips) per forward "
                   "pass (default: %(default)s)")
    p.add_argument("--images-per-batch", type=positive_int, default=16,
                   help="images decoded and evaluated together; dense evaluation stacks those "
                   "of equal rescaled size (default: %(default)s)")
    p.add_argument("--workers", type=non_negative_int, default=2,
                   help="data-loader processes decoding and rescaling images (default: %(default)s)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (default: %(default)s)")
    p.add_argument("--threads", type=positive_int,
                   help="torch CPU threads (default: torch's choice); 1 is fastest for small "
                   "nets on a busy machine")
    p.add_argument("--fast-decode", action="store_true",
                   help="decode large JPEGs at reduced size (libjpeg draft; faster, not "
                   "bit-identical)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return add_cfg_options(p)


def _device(args: argparse.Namespace) -> str:
    if args.launcher == "pytorch" and args.device.startswith("cuda"):
        import os
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return args.device


def _model_results(entries: Sequence[ModelEntry], names: Sequence[str],
                   merged: dict[str, np.ndarray], labels: np.ndarray) -> list[dict]:
    return [{"label": e.label, "config": e.config, "checkpoint": e.checkpoint,
             "arch": getattr(e.model, "arch", None), "scales": e.scales,
             "preprocess": e.preprocess,
             "results": {n: errors(merged[result_key(m, n)], labels) for n in names}}
            for m, e in enumerate(entries)]


def _fused(entries: Sequence[ModelEntry], names: Sequence[str], merged: dict[str, np.ndarray],
           base: Posteriors, saved: Sequence[Posteriors]) -> dict[str, np.ndarray]:
    """Per strategy: the mean over this run's nets and the saved posteriors."""
    out = {}
    for n in names:
        run = Posteriors(base.ids, base.labels, base.classes,
                         {n: np.mean([merged[result_key(m, n)] for m in range(len(entries))], 0)},
                         {"source": "this run"})
        # this run's nets weigh as many as they are, each saved file as one
        parts = [(run, n)] * len(entries) + [(s, n) for s in saved]
        out[n] = fuse(parts, n).scores[n] if len(parts) > 1 else run.scores[n]
    return out


def main(argv: list[str] | None = None) -> int:
    return run_command("vggkit test", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    check_output_file(args.out, "--out")
    check_output_file(args.save_posteriors, "--save-posteriors")
    if args.threads:
        torch.set_num_threads(args.threads)
    init_distributed(args.launcher, args.device)
    device = _device(args)
    names = list(dict.fromkeys(args.strategy))
    strategies = {n: build_strategy(n, batch_size=args.batch_size) for n in names}
    cfg = read_config(args.config, args.cfg_options)
    test_set = load_test_set(cfg, args.data_root, args.config)
    entries = [load_model(cfg, args.checkpoint, device, args.scales, args.config)]
    entries += [load_model(read_config(c, args.cfg_options), k, device, args.scales, c)
                for c, k in args.fuse]
    for entry in entries:
        check_classes(entry, test_set)
    saved = [load_posteriors(f) for f in args.fuse_posteriors]
    for path, post in zip(args.fuse_posteriors, saved):
        post.meta["source"] = path

    local, seconds = evaluate_shard(entries, strategies, test_set.paths,
                                    images_per_batch=args.images_per_batch, workers=args.workers,
                                    fast_decode=args.fast_decode, progress=not args.no_progress)
    shards = gather_shards(local)
    if rank_and_world()[0] != 0:
        return 0
    merged = merge_shards(shards, len(test_set.paths))
    base = Posteriors(test_set.ids, test_set.labels, test_set.classes)
    results = {"num_images": len(test_set.paths), "seconds": round(seconds, 3),
               "images_per_s": round(len(test_set.paths) / seconds, 3) if seconds > 0 else None,
               "world_size": rank_and_world()[1], "strategies": names,
               "models": _model_results(entries, names, merged, test_set.labels)}
    final = {n: merged[result_key(0, n)] for n in names}
    if len(entries) > 1 or saved:
        final = _fused(entries, names, merged, base, saved)
        results["fused"] = [e.label for e in entries] + list(args.fuse_posteriors)
        results["fusion"] = {n: errors(final[n], test_set.labels) for n in names}
    print(format_results(results))
    if args.out:
        atomic_write_json(args.out, results)
        print(f"results written to {args.out}")
    if args.save_posteriors:
        scores = dict(final)
        scores.update({k: v for k, v in merged.items()} if len(entries) > 1 else {})
        meta = {"models": [{k: m[k] for k in ("config", "checkpoint", "arch", "scales")}
                           for m in results["models"]], "strategies": names,
                "fused_posteriors": list(args.fuse_posteriors)}
        save_posteriors(args.save_posteriors, Posteriors(test_set.ids, test_set.labels,
                                                         test_set.classes, scores, meta))
        print(f"posteriors written to {args.save_posteriors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

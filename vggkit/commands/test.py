"""``tools/test.py`` / ``vggkit test``: the paper's test protocols on a test set.

Example (tiny net, CPU)::

    python tools/test.py configs/tiny.py work_dirs/tiny/epoch_2.pth \\
        --strategy center dense multicrop dense+multicrop --scales 32 48 64 --out results.json
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from vggkit.commands import (MAX_BATCH, MAX_WORKERS, add_cfg_options, add_weights_option, at_most,
                             positive_int, read_config, run_command, scale_side,
                             weights_config)
from vggkit.commands.fuse import add_outputs, check_outputs, write_outputs
from vggkit.errors import UserError
from vggkit.inference.launch import add_backend_options, add_launch_options, launch

if TYPE_CHECKING:  # the evaluation imports torch: the bodies import it, the parser does not
    from vggkit.evaluation import ModelEntry, Posteriors

DEFAULT_STRATEGY = "dense"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vggkit test", description="Evaluate VGG nets with the paper's test protocols "
        "(Sect. 3.2): top-1/top-5 error per strategy and for the fusion of several nets.")
    p.add_argument("config", nargs="?", help="config file of the net (its model and "
                   "test_dataloader); omitted with --weights")
    p.add_argument("checkpoint", nargs="?", help="checkpoint: ours, a runner's, or converted "
                   "weights (tools/convert_weights.py); its recorded preprocessing is applied")
    add_weights_option(p, "instead of CONFIG CKPT; repeated or after them, a net to fuse. "
                       "The test set is then an image folder at --data-root, and the default "
                       "scales the publisher's")
    p.add_argument("--data-root", help="test-set root, overriding test_dataloader.dataset.data_root")
    p.add_argument("--strategy", nargs="+", default=[DEFAULT_STRATEGY], metavar="NAME",
                   help="one or more evaluation strategies by name: center, dense, multicrop, "
                   "dense+multicrop, or one a plugin registers (default: %(default)s)")
    p.add_argument("--scales", nargs="+", type=scale_side, metavar="Q",
                   help="test scales (smallest image side); posteriors are averaged over them. "
                   "Default: from the checkpoint's training scale S -> {S-32, S, S+32}, "
                   "[S_min, S_max] -> {S_min, (S_min+S_max)/2, S_max}. Applies to every net")
    p.add_argument("--fuse", nargs=2, action="append", default=[], metavar=("CONFIG", "CKPT"),
                   help="another net whose posteriors are averaged with this one's (model "
                   "fusion); repeat for more nets. Each uses its own default scales")
    p.add_argument("--fuse-posteriors", nargs="+", default=[], metavar="FILE",
                   help="posteriors saved by an earlier run (--save-posteriors) to fuse with "
                   "this run's, strategy by strategy, without re-running those nets")
    add_outputs(p, "write per-image posteriors (.npz with image ids) for later fusion")
    add_backend_options(p)
    add_launch_options(p, "one shard of the images per process")
    for flag, kind, default, what in (
            ("--batch-size", at_most(MAX_BATCH), 32,
             "network inputs (crops, or whole images with their flips) per forward pass"),
            ("--images-per-batch", at_most(MAX_BATCH), 16, "images decoded and evaluated together; "
             "dense evaluation stacks those of equal rescaled size"),
            ("--workers", at_most(MAX_WORKERS, 0), 2,
             "data-loader processes decoding and rescaling images")):
        p.add_argument(flag, type=kind, default=default, help=f"{what} (default: %(default)s)")
    p.add_argument("--pass-crops", type=positive_int, metavar="N",
                   help="at most N crops of 224x224 per forward pass on the CPU (default: "
                   "derived on this machine from memory and a cached timing probe; "
                   "$VGGKIT_PASS_CROPS=none lifts the cap)")
    p.add_argument("--fast-decode", action="store_true",
                   help="decode large JPEGs at reduced size (libjpeg draft; faster, not "
                   "bit-identical)")
    return add_cfg_options(p)


def _model_results(entries: Sequence[ModelEntry], names: Sequence[str],
                   merged: dict[str, np.ndarray], labels: np.ndarray) -> list[dict]:
    from vggkit.evaluation import errors, result_key
    return [{"label": e.label, "config": e.config, "checkpoint": e.checkpoint,
             "arch": getattr(e.model, "arch", None), "scales": e.scales,
             "preprocess": e.preprocess, "backend": _backends(e),
             "results": {n: errors(merged[result_key(m, n)], labels) for n in names}}
            for m, e in enumerate(entries)]


def _backends(entry: ModelEntry) -> dict[str, str]:
    """How each output of the net ran, e.g. ``{'dense': 'onnxruntime fp32'}``."""
    choices = entry.compiled.choices if entry.compiled is not None else {}
    return {output: " ".join(choice) for output, choice in choices.items()}


def _fused(entries: Sequence[ModelEntry], names: Sequence[str], merged: dict[str, np.ndarray],
           base: Posteriors, saved: Sequence[Posteriors]) -> dict[str, np.ndarray]:
    """Per strategy: the mean over this run's nets and the saved posteriors."""
    from vggkit.evaluation import Posteriors, fuse, result_key
    out = {}
    for n in names:
        run = Posteriors(base.ids, base.labels, base.classes,
                         {n: np.mean([merged[result_key(m, n)] for m in range(len(entries))], 0)},
                         {"source": "this run"})
        # this run's nets weigh as many as they are, each saved file as one
        parts = [(run, n)] * len(entries) + [(s, n) for s in saved]
        out[n] = fuse(parts, n).scores[n] if len(parts) > 1 else run.scores[n]
    return out


def _nets(args: argparse.Namespace) -> list[tuple[Any, str, Any, str]]:
    """``(config, checkpoint, scales, label)`` of every net: CONFIG CKPT, --fuse, --weights."""
    if (args.config is None) != (args.checkpoint is None) or (args.config is None
                                                            and not args.weights):
        raise UserError("give CONFIG CKPT, or --weights NAME ('vggkit weights list' shows "
                        "the names)")
    pairs = ([(args.config, args.checkpoint)] if args.config else []) + list(args.fuse)
    nets = [(read_config(c, args.cfg_options), k, args.scales, c) for c, k in pairs]
    for name in args.weights:
        cfg, ckpt = weights_config(name, args.cfg_options)
        nets.append((cfg, ckpt, args.scales or list(cfg.test_scales), f"weights:{name}"))
    return nets


def _test_config(args: argparse.Namespace) -> Any:
    """The config whose test_dataloader lists the test set: CONFIG's, or an image folder."""
    if args.config:
        return read_config(args.config, args.cfg_options)
    if args.data_root is None:
        raise UserError("--weights needs --data-root DIR: a folder of class folders "
                        "(e.g. ImageNet val sorted into synset folders)")
    from mmengine.config import Config
    cfg = Config({"test_dataloader": {"dataset": {"type": "ImageFolder",
                                                  "data_root": args.data_root}}})
    cfg.merge_from_dict(args.cfg_options or {})  # e.g. test_dataloader.dataset.type=ImageNet
    return cfg


def main(argv: list[str] | None = None) -> int:
    return run_command("vggkit test", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    check_outputs(args)
    from vggkit.evaluation import (Posteriors, build_strategy, check_classes, compile_nets,
                                   errors, evaluate, load_model, load_posteriors, load_test_set,
                                   result_key)
    from vggkit.inference.distributed import rank_and_world
    device = launch(args)
    names = list(dict.fromkeys(args.strategy))
    # pass_crops only when given: a plugin's strategy need not take it
    options = {"batch_size": args.batch_size}
    if args.pass_crops:
        options["pass_crops"] = args.pass_crops
    strategies = {n: build_strategy(n, **options) for n in names}
    entries = [load_model(cfg, ckpt, device, scales, label)
               for cfg, ckpt, scales, label in _nets(args)]
    test_set = load_test_set(_test_config(args), args.data_root, args.config or "--weights")
    for entry in entries:
        check_classes(entry, test_set)
    compile_nets(entries, strategies, args.backend, args.precision)
    saved = [load_posteriors(f) for f in args.fuse_posteriors]
    for path, post in zip(args.fuse_posteriors, saved):
        post.meta["source"] = path

    merged, seconds = evaluate(entries, strategies, test_set.paths,
                               images_per_batch=args.images_per_batch, workers=args.workers,
                               fast_decode=args.fast_decode, progress=not args.no_progress)
    if merged is None:  # not rank 0: it reports
        return 0
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
    # per strategy the final posteriors; with several nets also each net's own
    scores = {**final, **(merged if len(entries) > 1 else {})}
    meta = {"models": [{k: m[k] for k in ("config", "checkpoint", "arch", "scales")}
                       for m in results["models"]], "strategies": names,
            "fused_posteriors": list(args.fuse_posteriors)}
    write_outputs(args, results, Posteriors(test_set.ids, test_set.labels, test_set.classes,
                                            scores, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())

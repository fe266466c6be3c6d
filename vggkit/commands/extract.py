"""``tools/extract_features.py`` / ``vggkit extract``: Appendix-B features into a store.

Examples::

    vggkit extract photos/ --weights vgg16.torchvision --out feats/photos
    tools/extract_features.py configs/vgg16_d.py d.pth configs/vgg19_e.py e.pth \\
        --task voc2007 --data-root data/VOCdevkit/VOC2007 --out feats/voc07-de

Each ``CONFIG CKPT`` pair, and each ``--weights NAME``, is one net
(``cfg.model.vgg`` holds its ``build_vgg`` arguments; the checkpoint's recorded
preprocessing is applied); several nets stack their descriptors. The task
plugin lists the images and gives the default scales and aggregation; the
default task, ``folder``, takes any folder of images, with or without class
sub-folders.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from vggkit.commands import (MAX_BATCH, add_cfg_options, add_weights_option, at_most, parse_options,
                             positive_int, read_config, run_command, scale_side, weights_config)
from vggkit.errors import UserError
from vggkit.features import AGGREGATES, BAD_IMAGE_MODES, LAYERS
from vggkit.features.store import FeatureStore, sha256_json
from vggkit.fileio import file_sha256
from vggkit.inference.batching import MAX_BATCH_PIXELS
from vggkit.inference.launch import add_launch_options, launch
from vggkit.inference.names import BACKENDS, PRECISIONS

if TYPE_CHECKING:  # the extractor imports torch: the bodies import it, the parser does not
    from vggkit.features.extractor import Net

#: build_vgg arguments that do not change a loaded net's features
_NOT_FEATURES = ("init", "init_std", "init_checkpoint", "init_conv_layers", "init_fc_layers",
                 "init_fc", "dropout", "pre_logits_relu", "adaptive_pool")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vggkit extract", description="Extract the paper's Appendix-B image descriptors "
        "(dense net over the whole image at scale Q, global average pool, flip average, L2 "
        "norm, scales averaged or stacked, nets stacked) into a resumable feature store.")
    p.add_argument("pairs", nargs="*", metavar="CONFIG CKPT",
                   help="pairs of an mmengine config (cfg.model.vgg = build_vgg kwargs) and a "
                        "checkpoint; several nets stack their descriptors. With --weights and "
                        "no --data-root, the one argument is the folder of images")
    add_weights_option(p, "a net, after the CONFIG CKPT pairs")
    p.add_argument("--task", default="folder", help="registered transfer task, e.g. caltech101, "
                   "voc2007, imagefolder (`vggkit plugins` lists them); default 'folder': any "
                   "folder of images, with or without class sub-folders")
    p.add_argument("--data-root", help="the task's data directory")
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                   help="task constructor option, e.g. context=whole+box for voc2012_action "
                        "(repeatable; recorded in the store's settings)")
    p.add_argument("--scales", type=scale_side, nargs="+", metavar="Q",
                   help="test scales Q (smallest image side); default: the task's")
    p.add_argument("--aggregate", choices=AGGREGATES,
                   help="combine scales by averaging or stacking; default: the task's")
    p.add_argument("--layer", choices=LAYERS, default="fc7",
                   help="descriptor layer (default fc7, the paper's penultimate layer)")
    p.add_argument("--relu", action=argparse.BooleanOptionalAction, default=True,
                   help="fc6/fc7 after their ReLU (default) or before (--no-relu)")
    p.add_argument("--out", help="store directory (default work_dirs/features/TASK)")
    p.add_argument("--batch-size", type=at_most(MAX_BATCH), default=8,
                   help="images of equal rescaled size per batch; each runs with its mirror")
    p.add_argument("--shard-size", type=positive_int, default=256,
                   help="images per shard: the unit of resuming and of distribution")
    p.add_argument("--bad-images", choices=BAD_IMAGE_MODES, default="strict",
                   help="'strict' stops at an unreadable image; 'skip' stores a zero row, "
                        "lists it in the manifest and leaves it out of load_features")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="'auto': measured with --backend auto (bf16 is offered only on CPUs "
                        "with AVX-512 BF16/AMX, fp16 on CUDA); bf16 and fp16 run the eager "
                        "backend. Resuming a store, 'auto' takes the store's precision")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="'onnxruntime' (CPU, fp32, if installed); 'mkldnn': oneDNN blocked "
                        "layout (CPU, fp32); 'jit': TorchScript (fp32); 'eager': plain PyTorch; "
                        "'auto': the fastest that agrees with fp32 eager, measured once per "
                        "machine and net (see the README's Speed section). Resuming a store, "
                        "'auto' takes the path that wrote it")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="eager backend: channels-last memory format")
    p.add_argument("--keep-shards", action="store_true",
                   help="keep shards/ after features.npy is assembled")
    add_launch_options(p, "ranks write disjoint shards")
    return add_cfg_options(p)


def load_net(config: Any, checkpoint: str, device: str, cfg_options: dict | None = None,
             source: str = "") -> tuple[Net, dict[str, Any]]:
    """Build the net of ``config`` (a path or a Config), load ``checkpoint``; return it and
    its settings record."""
    from vggkit.features.extractor import Net
    from vggkit.models.from_config import build_from_config
    if isinstance(config, str):
        config, source = read_config(config, cfg_options), f"config '{config}'"
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint '{checkpoint}' does not exist")
    model, meta, kwargs = build_from_config(config, checkpoint, source)
    preprocess = dict(meta.get("preprocess") or {})
    net = Net(model=model, preprocess=preprocess, name=checkpoint)  # moved by the extractor
    record = {"vgg": {k: v for k, v in kwargs.items() if k not in _NOT_FEATURES},
              "checkpoint_sha256": file_sha256(checkpoint), "preprocess": preprocess}
    return net, record


def _open_store(store: FeatureStore, settings: dict, index: dict, labels: np.ndarray,
                info: dict) -> None:
    """Rank 0 creates or checks the store; every rank learns the outcome.

    The caller holds :func:`~vggkit.features.runner.writer_lock`, so no other run
    writes in between.
    """
    from vggkit.inference.distributed import rank_and_world, share_outcome
    first = rank_and_world()[0] == 0
    error: BaseException | None = None
    if first:
        try:
            store.open(settings, index, labels, info)
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank
            error = exc
    share_outcome(error)
    if not first:  # reads and checks what rank 0 wrote (and repaired)
        store.open(settings, index, labels, info, repair=False)
    for note in store.notes:
        print(f"vggkit extract: {note}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tools/extract_features.py``; returns the exit code.

    User errors (a bad path, image, task name or a store of other settings)
    print one line and return 2.
    """
    return run_command("vggkit extract", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    if args.weights and args.data_root is None and len(args.pairs) == 1:
        args.data_root, args.pairs = args.pairs[0], []  # vggkit extract DIR --weights NAME
    if len(args.pairs) % 2:
        raise UserError(f"expected CONFIG CKPT pairs, got {len(args.pairs)} paths: {args.pairs}")
    if not args.pairs and not args.weights:
        raise UserError("no net given: pass CONFIG CKPT pairs or --weights NAME "
                        "('vggkit weights list' shows the names)")
    if args.data_root is None:
        raise UserError("no images given: pass --data-root DIR (or 'vggkit extract DIR "
                        "--weights NAME')")
    return extract(args)


def _nets(args: argparse.Namespace) -> list[tuple[Any, str, str, str]]:
    """``(config, checkpoint, config label, config sha256)`` of every net, pairs first."""
    nets = [(c, k, os.path.abspath(c), file_sha256(c) if os.path.isfile(c) else "")
            for c, k in zip(args.pairs[0::2], args.pairs[1::2])]
    for name in args.weights:
        cfg, ckpt = weights_config(name, args.cfg_options)
        nets.append((cfg, ckpt, f"weights:{name}", ""))
    return nets


def extract(args: argparse.Namespace) -> int:
    """Run the extraction of parsed ``args`` (see :func:`build_parser`).

    The store's writer lock is taken first, so a second run into the same
    ``--out``, or a run into a directory that holds other files and no store,
    is refused before it scans images or loads nets.
    """
    device = launch(args)
    from vggkit.features.runner import writer_lock
    from vggkit.transfer.task import build_task
    options = parse_options(args.task_option)
    task = build_task(args.task, **options)
    store = FeatureStore(args.out or os.path.join("work_dirs", "features", args.task))
    with writer_lock(store.root):  # held until this run ends; a second writer is refused
        store.check_target()  # read-only: every rank may check, and all refuse alike
        return _extract_locked(args, task, store, device, options)


def _resumed_path(store: FeatureStore, backend: str, precision: str) -> tuple[str, str]:
    """``auto`` resumes a store on the backend and precision that wrote it.

    The measured choice may differ on another machine or after the choice cache
    was cleared; its descriptors would then differ in the last bits, and the
    store (rightly) refuses to mix them. A forced path is left as given.
    """
    stored = (store.read_manifest() or {}).get("settings", {})
    return (stored.get("backend", backend) if backend == "auto" else backend,
            stored.get("precision", precision) if precision == "auto" else precision)


def _extract_locked(args: argparse.Namespace, task: Any, store: FeatureStore, device: str,
                    options: dict[str, Any]) -> int:
    """The work of :func:`extract`, done while this run is the store's only writer."""
    import torch

    from vggkit.features.extractor import FeatureExtractor
    from vggkit.features.runner import run_extraction
    data = task.scan(args.data_root)
    if len(data) == 0:
        raise ValueError(f"task '{args.task}' found no images under '{args.data_root}'")
    scales = [int(q) for q in (args.scales or task.default_scales)]
    aggregate = args.aggregate or task.default_aggregate

    nets = _nets(args)
    loaded = [load_net(cfg, ckpt, device, args.cfg_options, label) for cfg, ckpt, label, _ in nets]
    backend, precision = _resumed_path(store, args.backend, args.precision)
    extractor = FeatureExtractor([n for n, _ in loaded], scales=scales, aggregate=aggregate,
                                 layer=args.layer, relu=args.relu, batch_size=args.batch_size,
                                 precision=precision, backend=backend,
                                 channels_last=args.channels_last, device=device, own_nets=True)
    labels = np.asarray(data.labels)
    # regions and task options enter the settings only when present, so stores of
    # whole images written before them keep their settings and still resume
    items = {"ids": list(data.ids), "labels": labels.tolist()}
    if data.regions is not None:
        items["regions"] = data.regions
    settings = {
        "task": args.task, "models": [r for _, r in loaded], "scales": scales,
        "aggregate": aggregate, "layer": args.layer, "relu": args.relu,
        "shard_size": args.shard_size, "batch_size": args.batch_size,
        "max_batch_pixels": MAX_BATCH_PIXELS,
        "precision": extractor.precision, "backend": extractor.backend,
        "channels_last": args.channels_last and extractor.backend == "eager",
        "bad_image_policy": args.bad_images,
        "images_sha256": sha256_json(items),
        **({"task_options": options} if options else {}),
    }
    info = {"feature_dim": extractor.dim * data.regions_per_item, "dtype": "float32",
            "configs": [label for _, _, label, _ in nets],
            "checkpoints": [os.path.abspath(k) for _, k, _, _ in nets],
            "config_sha256": [sha256 for _, _, _, sha256 in nets],
            "checkpoint_sha256": [r["checkpoint_sha256"] for _, r in loaded],
            "data_root": os.path.abspath(args.data_root), "torch_threads": torch.get_num_threads(),
            "torch_version": torch.__version__,
            "normalisation": "each scale and each net L2-normalised before combining; "
                             "the combination L2-normalised again"}
    index = {"ids": list(data.ids), "subsets": list(data.subsets), "classes": list(data.classes),
             "paths": [os.path.relpath(p, args.data_root) if p else "" for p in data.paths],
             **({"regions": data.regions} if data.regions is not None else {})}
    _open_store(store, settings, index, labels, info)
    if store.complete:
        print(f"feature store '{store.root}' is already complete ({len(data)} images); "
              "nothing to do")
        return 0
    manifest = run_extraction(extractor, data.paths, store, regions=data.regions,
                              bad_images=args.bad_images,
                              keep_shards=args.keep_shards, progress=not args.no_progress)
    bad = len(manifest.get("bad_images", []))
    print(f"wrote {manifest['n_images']} x {manifest['feature_dim']} features to "
          f"'{store.root}' ({bad} bad images skipped). Load with "
          f"vggkit.features.store.load_features('{store.root}') or "
          f"np.load('{os.path.join(store.root, 'features.npy')}')")
    return 0

"""Appendix-B features of a task's images into a resumable feature store, in one call
(what ``vggkit extract`` runs): :func:`extract` takes configs, weights names and values.
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from vggkit.config import read_config, weights_config
from vggkit.errors import UserError
from vggkit.features.arrays import sha256_json
from vggkit.features.store import FeatureStore
from vggkit.fileio import file_sha256
from vggkit.inference.batching import MAX_BATCH_PIXELS

if TYPE_CHECKING:  # the extractor imports torch: the bodies import it, this module does not
    from vggkit.features.extractor import Net

#: build_vgg arguments that do not change a loaded net's features
_NOT_FEATURES = ("init", "init_std", "init_checkpoint", "init_conv_layers", "init_fc_layers",
                 "init_fc", "dropout", "pre_logits_relu", "adaptive_pool")


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


def extract(data_root: str, pairs: Sequence[tuple[Any, str]] = (), weights: Sequence[str] = (),
            *, task: str = "folder", task_options: Optional[dict] = None,
            out: Optional[str] = None, scales: Optional[Sequence[int]] = None,
            aggregate: Optional[str] = None, layer: str = "fc7", relu: bool = True,
            batch_size: int = 8, shard_size: int = 256, bad_images: str = "strict",
            precision: str = "auto", backend: str = "auto", channels_last: bool = True,
            keep_shards: bool = False, device: str = "cpu", cfg_options: Optional[dict] = None,
            progress: bool = True) -> str:
    """Describe the images of ``task`` under ``data_root`` into the store ``out``.

    Args:
        data_root: the task's data directory.
        pairs: ``(config, checkpoint)`` per net (a config path or a loaded Config).
        weights: catalogue names, nets after the pairs; several nets stack descriptors.
        task, task_options: a registered transfer task and its constructor options.
        out: the store directory (default ``work_dirs/features/TASK``).
        scales, aggregate: default: the task's.

    Other arguments are ``vggkit extract``'s options. Returns the store's directory.

    The store's writer lock is taken first, so a second run into the same
    ``out``, or a run into a directory that holds other files and no store,
    is refused before it scans images or loads nets.
    """
    import torch

    from vggkit.features.extractor import FeatureExtractor
    from vggkit.features.runner import run_extraction, writer_lock
    from vggkit.transfer.task import build_task
    if not pairs and not weights:
        raise UserError("no net given: pass CONFIG CKPT pairs or --weights NAME "
                        "('vggkit weights list' shows the names)")
    options = dict(task_options or {})
    built = build_task(task, **options)
    store = FeatureStore(out or os.path.join("work_dirs", "features", task))
    with writer_lock(store.root):  # held until this run ends; a second writer is refused
        store.check_target()  # read-only: every rank may check, and all refuse alike
        data = built.scan(data_root)
        if len(data) == 0:
            raise ValueError(f"task '{task}' found no images under '{data_root}'")
        scales = [int(q) for q in (scales or built.default_scales)]
        aggregate = aggregate or built.default_aggregate

        nets = _nets(pairs, weights, cfg_options)
        loaded = [load_net(cfg, ckpt, device, cfg_options, label) for cfg, ckpt, label, _ in nets]
        backend, precision = _resumed_path(store, backend, precision)
        extractor = FeatureExtractor([n for n, _ in loaded], scales=scales, aggregate=aggregate,
                                     layer=layer, relu=relu, batch_size=batch_size,
                                     precision=precision, backend=backend,
                                     channels_last=channels_last, device=device, own_nets=True)
        labels = np.asarray(data.labels)
        # regions and task options enter the settings only when present, so stores of
        # whole images written before them keep their settings and still resume
        items = {"ids": list(data.ids), "labels": labels.tolist()}
        if data.regions is not None:
            items["regions"] = data.regions
        settings = {
            "task": task, "models": [r for _, r in loaded], "scales": scales,
            "aggregate": aggregate, "layer": layer, "relu": relu,
            "shard_size": shard_size, "batch_size": batch_size,
            "max_batch_pixels": MAX_BATCH_PIXELS,
            "precision": extractor.precision, "backend": extractor.backend,
            "channels_last": channels_last and extractor.backend == "eager",
            "bad_image_policy": bad_images,
            "images_sha256": sha256_json(items),
            **({"task_options": options} if options else {}),
        }
        info = {"feature_dim": extractor.dim * data.regions_per_item, "dtype": "float32",
                "configs": [label for _, _, label, _ in nets],
                "checkpoints": [os.path.abspath(k) for _, k, _, _ in nets],
                "config_sha256": [sha256 for _, _, _, sha256 in nets],
                "checkpoint_sha256": [r["checkpoint_sha256"] for _, r in loaded],
                "data_root": os.path.abspath(data_root), "torch_threads": torch.get_num_threads(),
                "torch_version": torch.__version__,
                "normalisation": "each scale and each net L2-normalised before combining; "
                                 "the combination L2-normalised again"}
        index = {"ids": list(data.ids), "subsets": list(data.subsets), "classes": list(data.classes),
                 "paths": [os.path.relpath(p, data_root) if p else "" for p in data.paths],
                 **({"regions": data.regions} if data.regions is not None else {})}
        _open_store(store, settings, index, labels, info)
        if store.complete:
            print(f"feature store '{store.root}' is already complete ({len(data)} images); "
                  "nothing to do")
            return store.root
        manifest = run_extraction(extractor, data.paths, store, regions=data.regions,
                                  bad_images=bad_images,
                                  keep_shards=keep_shards, progress=progress)
        bad = len(manifest.get("bad_images", []))
        print(f"wrote {manifest['n_images']} x {manifest['feature_dim']} features to "
              f"'{store.root}' ({bad} bad images skipped). Load with "
              f"vggkit.features.store.load_features('{store.root}') or "
              f"np.load('{os.path.join(store.root, 'features.npy')}')")
        return store.root


def _nets(pairs: Sequence[tuple[Any, str]], weights: Sequence[str],
          cfg_options: Optional[dict]) -> list[tuple[Any, str, str, str]]:
    """``(config, checkpoint, config label, config sha256)`` of every net, pairs first."""
    nets = [(c, k, os.path.abspath(c), file_sha256(c) if os.path.isfile(c) else "")
            if isinstance(c, str) else (c, k, getattr(c, "filename", "") or "config", "")
            for c, k in pairs]
    for name in weights:
        cfg, ckpt = weights_config(name, cfg_options)
        nets.append((cfg, ckpt, f"weights:{name}", ""))
    return nets


def _resumed_path(store: FeatureStore, backend: str, precision: str) -> tuple[str, str]:
    """``auto`` resumes a store on the backend and precision that wrote it.

    The measured choice may differ on another machine or after the choice cache
    was cleared; its descriptors would then differ in the last bits, and the
    store (rightly) refuses to mix them. A forced path is left as given.
    """
    stored = (store.read_manifest() or {}).get("settings", {})
    return (stored.get("backend", backend) if backend == "auto" else backend,
            stored.get("precision", precision) if precision == "auto" else precision)

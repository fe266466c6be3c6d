"""From a weights name to a vggkit checkpoint on disk, converting once.

:func:`resolve_weights` looks, in order, at

1. a local path: an existing file is returned as it is (a vggkit checkpoint);
2. the vggkit cache (:func:`weights_dir`, ``weights/`` in the cache root of
   :mod:`vggkit.paths`): ``NAME.pth``, the converted checkpoint, verified
   (:func:`cached_problem`; one that fails is named, never deleted), else
   ``downloads/NAME/FILE``, the published file (downloaded earlier or put
   there by hand); files an earlier vggkit left directly in ``$VGGKIT_CACHE``
   are read there too;
3. the publisher's cache: ``$TORCH_HOME/hub/checkpoints/FILE`` (torchvision,
   mmpretrain; torch.hub's directory) or the Hugging Face hub cache
   (``$HF_HUB_CACHE``, ``$HF_HOME/hub``, ``~/.cache/huggingface/hub``:
   ``models--ORG--REPO/snapshots/REV/FILE``; timm);
4. a download into ``downloads/NAME/FILE`` -- refused when ``VGGKIT_OFFLINE``
   or ``HF_HUB_OFFLINE`` is set, with one line naming the entry, the URL and
   the path to put the file at.

A published file is checked against the published sha256 (or prefix) and
converted once to ``NAME.pth`` (its ``meta['source_sha256']`` records the
file's digest; ``NAME.json`` beside it says what it was converted from).
"""
from __future__ import annotations

import json
import os
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from vggkit import paths
from vggkit.errors import plural
from vggkit.fileio import atomic_write_json, file_sha256
from vggkit.models.converters import import_weights
from vggkit.weights.catalogue import (SHAPE_ARGS, WeightsEntry, WeightsError,  # noqa: F401
                                      entry_shape, get_weights_entry, vgg_defaults)
from vggkit.weights.download import (ChecksumError, OfflineError, describe_digest,
                                     digest_matches, download, offline_reason)


def weights_dir() -> Path:
    """``weights/`` of the cache root: ``$VGGKIT_CACHE/weights`` (``~/.cache/vggkit/weights``)."""
    return paths.cache_dir("weights")


def cache_dir() -> Path:
    """Deprecated: :func:`weights_dir` (``vggkit.demo`` had a ``cache_dir`` of its own)."""
    import warnings
    warnings.warn("vggkit.weights.cache_dir is deprecated; use vggkit.weights.weights_dir",
                  DeprecationWarning, stacklevel=2)
    return weights_dir()


def converted_path(entry: WeightsEntry) -> Path:
    """Where the converted vggkit checkpoint of ``entry`` is cached."""
    return weights_dir() / f"{entry.name}.pth"


def download_path(entry: WeightsEntry) -> Path:
    """Where the published file of ``entry`` is downloaded to (or may be put by hand)."""
    return weights_dir() / "downloads" / entry.name / entry.filename


# An earlier vggkit with VGGKIT_CACHE set kept the weights directly in it (NAME.pth,
# downloads/NAME/FILE), not in weights/: files left there are still read, never written.
def legacy_converted_path(entry: WeightsEntry) -> Path:
    """Where an earlier vggkit with ``VGGKIT_CACHE`` set put the converted checkpoint."""
    return paths.cache_root() / f"{entry.name}.pth"


def legacy_download_path(entry: WeightsEntry) -> Path:
    """Where an earlier vggkit with ``VGGKIT_CACHE`` set put the published file."""
    return paths.cache_root() / "downloads" / entry.name / entry.filename


def torch_hub_checkpoints() -> Path:
    """torch.hub's download directory (``$TORCH_HOME/hub/checkpoints``, torchvision's cache)."""
    import torch.hub
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, as huggingface_hub finds it."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "huggingface")
    return Path(home).expanduser() / "hub"


def publisher_files(entry: WeightsEntry) -> list[Path]:
    """The copies of the published file in the publisher's own cache."""
    if entry.publisher_cache == "torch_hub":
        found = [torch_hub_checkpoints() / entry.filename]
    elif entry.publisher_cache == "hf_hub":
        repo = hf_hub_cache() / f"models--{entry.hf_repo.replace('/', '--')}"
        found = sorted((repo / "snapshots").glob(f"*/{entry.filename}"))
    else:
        found = []
    return [p for p in found if p.is_file()]


def source_files(entry: WeightsEntry) -> list[Path]:
    """Published files of ``entry`` on disk: the vggkit cache's, then the publisher's."""
    ours = [p for p in (download_path(entry), legacy_download_path(entry)) if p.is_file()]
    return ours + publisher_files(entry)


def cached_checkpoint(entry: WeightsEntry) -> Path | None:
    """The converted checkpoint of ``entry`` on disk (the cache's, else the old location's)."""
    return next((p for p in (converted_path(entry), legacy_converted_path(entry))
                 if p.is_file()), None)


def cached_problem(entry: WeightsEntry, path: Path, thorough: bool = False) -> str | None:
    """Why the cached checkpoint ``path`` cannot stand for ``entry``; None if it can.

    It must load as a vggkit checkpoint converted from the published file (its
    ``meta['source_sha256']`` against the catalogue's sha256) with the entry's
    shape; ``thorough`` also checks every tensor against its recorded sha256
    (reading the whole file once; a later load in this process skips it).
    """
    from vggkit.safe_load import CheckpointError, UnsafeCheckpointError, torch_load, verify_loaded
    try:  # memory-mapped: only the pickled structure is read
        obj = torch_load(str(path), mmap=zipfile.is_zipfile(path))
    except UnsafeCheckpointError:
        return "holds objects that are not weights"
    except CheckpointError:
        return "does not load as a torch checkpoint"
    meta = obj.get("meta") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping) or not isinstance(obj.get("state_dict"), Mapping):
        return "is no vggkit checkpoint ({'state_dict', 'meta'})"
    source = str(meta.get("source_sha256", "none"))
    if not digest_matches(entry.sha256, source):
        return (f"was converted from a file with sha256 {source}, not the published "
                f"{describe_digest(entry.sha256 or '')}")
    wrong = _mismatch(entry, meta)
    if wrong:
        return f"records {wrong}"
    if thorough:
        try:
            verify_loaded(obj, str(path), notice=False)
        except CheckpointError:
            return "is damaged: a tensor differs from the sha256 recorded with it"
    return None


def _unusable(entry: WeightsEntry, path: Path, problem: str) -> str:
    # vggkit cannot tell this file from one a user put there: it names it, never deletes it
    return (f"the cached checkpoint '{path}' of weights '{entry.name}' {problem}; delete it "
            f"and run 'vggkit weights get {entry.name}' again")


def cache_report(entry: WeightsEntry) -> tuple[str, str | None]:
    """``(status, problem)`` of ``entry`` in the caches, without fetching or converting.

    status: ``'cached'`` (a converted checkpoint that loads and matches the
    catalogue), ``'unusable'`` (one that does not; problem is the one-line
    message naming the file), ``'source cached'`` (a published file is on
    disk) or ``'not cached'``.
    """
    path = cached_checkpoint(entry)
    if path is not None and _still_current(entry, path):
        problem = cached_problem(entry, path)
        return ("unusable", _unusable(entry, path, problem)) if problem else ("cached", None)
    return ("source cached" if source_files(entry) else "not cached"), None


def weights_status(entry: WeightsEntry) -> str:
    """``'cached'``, ``'unusable'``, ``'source cached'`` or ``'not cached'``
    (see :func:`cache_report`)."""
    return cache_report(entry)[0]


def resolve_weights(name: str, progress: bool = True) -> str:
    """The path of the vggkit checkpoint of weights ``name`` (an entry or a file).

    Finds, checks, downloads and converts as needed (see the module's docstring).

    Raises:
        UnknownWeightsError: ``name`` is neither a file nor a catalogue entry.
        OfflineError: not on disk and downloads are off.
        ChecksumError, DownloadError, WeightsError: with the file and the fix.
    """
    if os.path.isfile(name):
        return name
    return fetch_weights(get_weights_entry(name), progress)


def fetch_weights(entry: WeightsEntry, progress: bool = True) -> str:
    """The path of the converted checkpoint of catalogue entry ``entry``.

    A cached one is verified (:func:`cached_problem`, thorough) and returned;
    else the published file is found or downloaded, checked and converted.

    Raises:
        WeightsError: a cached checkpoint that fails the check (naming the file
            to delete), or as :func:`resolve_weights`.
    """
    found = _verified_cached(entry)
    if found is None:
        # one process fetches and converts; the others (e.g. torchrun's ranks) wait and reuse it
        with _exclusive(weights_dir() / f".{entry.name}.lock", entry.name):
            found = _verified_cached(entry)
            if found is None:
                found = converted_path(entry)
                _convert(entry, _verified_source(entry) or _fetch(entry, progress), found)
    return str(found)


def _verified_cached(entry: WeightsEntry) -> Path | None:
    """The cached checkpoint, checked; None if there is none or its source is outdated."""
    path = cached_checkpoint(entry)
    if path is None or not _still_current(entry, path):
        return None
    problem = cached_problem(entry, path, thorough=True)
    if problem:
        raise WeightsError(_unusable(entry, path, problem))
    return path


@contextmanager
def _exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold the OS lock on ``path`` (:mod:`filelock`), waiting for another holder and saying so.

    The feature store's writer lock (:mod:`vggkit.features.lock`) refuses instead of
    waiting and names its holder; here the second process only has to wait its turn.
    """
    from filelock import FileLock, Timeout
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(os.fspath(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"vggkit: waiting for another process fetching weights '{what}'", file=sys.stderr)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _sidecar(out: Path) -> Path:
    return out.with_suffix(".json")


def _still_current(entry: WeightsEntry, out: Path) -> bool:
    """A cached conversion is reused unless it records another source than the catalogue's."""
    try:
        record = json.loads(_sidecar(out).read_text())
    except (OSError, ValueError):
        return True  # no record (e.g. copied by hand): trust the checkpoint
    return digest_matches(entry.sha256, str(record.get("source_sha256", "")))


def _verified_source(entry: WeightsEntry) -> Path | None:
    """The first published file on disk, after checking its sha256."""
    for path in source_files(entry):
        if entry.sha256 is None:
            return path
        digest = file_sha256(path)
        if not digest_matches(entry.sha256, digest):
            raise ChecksumError(f"'{path}' (weights '{entry.name}') has sha256 {digest}, not "
                                f"the published {describe_digest(entry.sha256)}; delete it and "
                                f"run 'vggkit weights get {entry.name}' again")
        return path
    return None


def _fetch(entry: WeightsEntry, progress: bool) -> Path:
    dest = download_path(entry)
    reason = offline_reason()
    if reason:
        raise OfflineError(
            f"weights '{entry.name}' are not on disk and downloads are off ({reason}): fetch "
            f"{entry.urls[0]} and put it at {dest}")
    digest = download(entry.urls, dest, entry.sha256, progress=progress, label=entry.name)
    if entry.sha256 is None:
        print(f"vggkit: the publisher of '{entry.name}' gives no checksum; the download's "
              f"sha256 {digest} is recorded in the converted checkpoint", file=sys.stderr)
    return dest


def _convert(entry: WeightsEntry, source: Path, out: Path) -> None:
    """Convert ``source`` to ``out`` once, checking it is the architecture the entry says."""
    meta = import_weights(entry.converter, str(source), str(out), arch=entry.arch)
    problem = _mismatch(entry, meta)
    if problem:
        out.unlink()
        raise WeightsError(f"'{source}' is not the weights '{entry.name}' describes: {problem}")
    atomic_write_json(_sidecar(out), {
        "name": entry.name, "converter": entry.converter, "source_file": str(source),
        "source_sha256": meta["source_sha256"], "published_sha256": entry.sha256,
        "urls": list(entry.urls)})


def _mismatch(entry: WeightsEntry, meta: Mapping[str, Any]) -> str | None:
    wrong = [f"{k} {meta.get(k)!r} (expected {v!r})" for k, v in entry_shape(entry).items()
             if meta.get(k) != v]
    return ", ".join(wrong) or None


# -- building ---------------------------------------------------------------------------
def pretrained_build_args(name: str, arch: str, num_classes: int | None,
                          given: Mapping[str, Any]) -> tuple[WeightsEntry, dict[str, Any]]:
    """``(entry, build_vgg kwargs)`` for ``build_vgg(arch, num_classes, **given, weights=name)``.

    Arguments that shape the weights left at build_vgg's defaults take the
    entry's values; another arch, num_classes or shape is refused, naming both.
    """
    from vggkit.models.archs import resolve_arch
    entry = get_weights_entry(name)
    shape, defaults = entry_shape(entry), vgg_defaults()
    config, bn = resolve_arch(arch)
    bn = bool(bn or given.get("batch_norm"))
    if (config, bn) != (shape["arch"], shape["batch_norm"]):
        raise WeightsError(f"weights '{entry.name}' are for arch {shape['arch']} (batch_norm="
                           f"{shape['batch_norm']}), not {arch} (batch_norm={bn}); use "
                           f"build_vgg('{entry.arch}', weights='{name}')")
    if num_classes not in (None, entry.num_classes):
        raise WeightsError(f"weights '{entry.name}' have {plural(entry.num_classes, 'class')}, not "
                           f"num_classes={num_classes}; omit num_classes and replace head.fc8 "
                           "for another task")
    for key in SHAPE_ARGS:
        if given.get(key, defaults[key]) not in (defaults[key], shape[key]):
            raise WeightsError(f"weights '{entry.name}' need {key}={shape[key]!r}, not "
                               f"{given[key]!r}")
    kwargs = {**given, **{k: shape[k] for k in SHAPE_ARGS},
              "num_classes": entry.num_classes, "init": "none"}
    return entry, kwargs


def build_with_weights(weights: str, arch: str, num_classes: int | None,
                       given: Mapping[str, Any], progress: bool = True) -> Any:
    """``build_vgg(arch, num_classes, **given, weights=weights)``: the net, weights loaded.

    ``weights`` is a catalogue name (resolved, fetched and converted as needed)
    or the path of a vggkit checkpoint (built with the arguments given).
    """
    from vggkit.models.io import load_checkpoint
    from vggkit.models.vgg import VGG
    if os.path.isfile(weights):
        kwargs = {**given, "num_classes": 1000 if num_classes is None else num_classes,
                  "init": "none"}
    else:
        kwargs = pretrained_build_args(weights, arch, num_classes, given)[1]
    path = resolve_weights(weights, progress=progress)
    model = VGG(arch, **kwargs)
    load_checkpoint(model, path)
    return model


def config_for_weights(name: str) -> Any:
    """An mmengine ``Config`` standing in for ``CONFIG`` of a ``CONFIG CKPT`` pair.

    Nothing is read or fetched (the checkpoint is :func:`resolve_weights`' job):
    ``model.vgg`` holds the ``build_vgg`` arguments (no ``weights`` key, so
    :func:`vggkit.models.from_config.build_from_config` loads the checkpoint
    itself), ``model.data_preprocessor`` and ``preprocess`` the normalisation,
    ``test_scales`` the publisher's scales, ``weights`` the entry's record
    (``name``, ``checkpoint``: where :func:`resolve_weights` puts it).
    """
    from mmengine.config import Config
    entry = get_weights_entry(name)
    preprocess = entry.preprocess
    vgg = {"arch": entry.arch, "num_classes": entry.num_classes, **dict(entry.build_args)}
    return Config({
        "default_scope": "vggkit",
        "model": {"type": "VGGClassifier", "vgg": vgg,
                  "data_preprocessor": {"type": "VGGDataPreprocessor", **preprocess}},
        "preprocess": preprocess,
        "test_scales": list(entry.test_scales),
        "weights": {"name": entry.name, "checkpoint": str(converted_path(entry)),
                    "converter": entry.converter, "urls": list(entry.urls),
                    "sha256": entry.sha256, "licence": entry.licence},
    })

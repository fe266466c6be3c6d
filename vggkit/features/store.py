"""The feature store: atomic shards, a manifest, resume, and one-call loading.

Layout of a store directory::

    manifest.json        settings, item ids, subsets, classes, dims, status, and
                         the items' regions when they are not whole images
    labels.npy           (N,) int64 class indices or (N, C) int8 in {1, -1, 0}
    features.npy         N x D float32, rows in the task's image order (when complete)
    shards/shard-00000.npz   while running: rows [i*shard_size, (i+1)*shard_size)
    .lock                while running: the writer's OS lock, its PID, host, start
                         (vggkit.features.lock; not data, never read by load_features;
                         a killed run leaves it, unlocked, for the next run to take)

Every file is written to a temporary name in the same directory and moved into
place with ``os.replace``, so a killed run leaves only whole files. Shards
cover fixed image ranges, hence a resumed run recomputes exactly the missing
ranges with the same batches and its ``features.npy`` is byte-identical to
that of an uninterrupted run. Shard ``i`` belongs to rank ``i % world_size``.
One run writes a store at a time: a second writer is refused at once while
the first holds ``.lock`` (:func:`vggkit.features.runner.writer_lock`);
reading needs no lock.

Load a finished store in one call::

    fs = vggkit.features.store.load_features('feats/')   # .features .ids .labels ...

or with numpy alone::

    X = np.load('feats/features.npy')   # N x D float32, unit rows
    y = np.load('feats/labels.npy'); ids = json.load(open('feats/manifest.json'))['ids']

(with ``--bad-images skip``, rows of unreadable images are zero and listed in
``manifest['bad_images']``; :func:`load_features` drops them by default).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from vggkit.features.regions import ItemRegions, as_item_regions
from vggkit.fileio import atomic_write, atomic_write_json

FORMAT = "vggkit-features/1"
MANIFEST = "manifest.json"
FEATURES = "features.npy"
LABELS = "labels.npy"
SHARD_DIR = "shards"


class StoreError(ValueError):
    """A feature store that is missing, incomplete or corrupt."""


class SettingsMismatchError(StoreError):
    """Rerunning into a store that holds features of other settings."""


@dataclass
class FeatureSet:
    """A loaded feature store.

    Attributes:
        features: N x D float32, one unit-norm descriptor per image.
        ids, subsets: per item (task order); classes: class names.
        labels: ``(N,)`` int or ``(N, C)`` int8 (see :class:`vggkit.transfer.task.TaskData`).
        meta: the manifest (settings, models with hashes, scales, layer, ...).
        regions: per item, the regions its descriptor stacks (boxes or None for the
            whole image, :mod:`vggkit.features.regions`); None when every item is a
            whole image (and in stores written before regions existed).
    """

    features: np.ndarray
    ids: list[str]
    labels: np.ndarray
    subsets: list[str]
    classes: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    regions: list[ItemRegions] | None = None

    def __len__(self) -> int:
        return len(self.ids)


# -- atomic writing (vggkit.fileio) ------------------------------------------------
def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    atomic_write_json(path, obj, indent=1, sort_keys=True)


def write_npy(path: str, array: np.ndarray) -> None:
    """``np.save`` atomically (no pickles)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)
    atomic_write(path, write)


def write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` ``np.load`` reads, written atomically and byte-reproducibly.

    ``np.savez`` stamps the current time into the zip; a fixed stamp makes the
    same arrays give the same bytes.
    """
    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for name in sorted(arrays):
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asarray(arrays[name]), allow_pickle=False)
    atomic_write(path, write)


def sha256_file(path: str, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex SHA-256 of ``obj`` as canonical JSON (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    """Fixed ``[start, stop)`` image ranges of the shards of ``n`` images."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


def differing_keys(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys whose values differ, each as 'key (store: X, now: Y)'."""
    out = []
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key, "<absent>"), current.get(key, "<absent>")
        if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            out.append(f"{key} (store: {_short(a)}, now: {_short(b)})")
    return out


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


# -- the store ------------------------------------------------------------------
class FeatureStore:
    """A store directory being written (see the module docstring).

    Args:
        root: the directory (created if missing).
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.manifest: dict[str, Any] | None = None

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.root, MANIFEST)

    def shard_path(self, index: int) -> str:
        return os.path.join(self.root, SHARD_DIR, f"shard-{index:05d}.npz")

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest on disk, or None when the directory holds no store."""
        if not os.path.exists(self.manifest_path):
            return None
        try:
            with open(self.manifest_path, encoding="utf-8") as f:
                manifest = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"cannot read '{self.manifest_path}': {exc}; delete the store "
                             "directory or choose another --out") from exc
        if manifest.get("format") != FORMAT:
            raise StoreError(f"'{self.manifest_path}' is not a vggkit feature store "
                             f"(format {manifest.get('format')!r}, expected {FORMAT!r})")
        return manifest

    def open(self, settings: dict[str, Any], index: dict[str, Any], labels: np.ndarray,
             info: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create the store, or check that an existing one has the same ``settings``.

        Hold the store's writer lock (:func:`vggkit.features.runner.writer_lock`)
        around this and the extraction, or two runs may both pass the check.

        Args:
            settings: everything that determines the descriptors' bytes; a store
                holding other settings is refused (:class:`SettingsMismatchError`).
            index: ``ids``, ``subsets``, ``classes``, ``paths`` and, when items
                are regions of images, ``regions`` (recorded).
            labels: written to ``labels.npy``.
            info: recorded, not compared (e.g. config paths, thread count).

        Returns:
            The manifest.
        """
        existing = self.read_manifest()
        if existing is not None:
            diff = differing_keys(existing["settings"], settings)
            if diff:
                raise SettingsMismatchError(
                    f"the feature store '{self.root}' holds features of other settings: "
                    + "; ".join(diff) + ". Rerun with the store's settings to resume, or "
                    "choose another --out (or delete the directory) for the new settings")
            self.manifest = existing
            return existing
        manifest = {"format": FORMAT, "status": "running", "settings": settings,
                    "n_images": len(index["ids"]), "labels_file": LABELS,
                    "features_file": FEATURES, "bad_images": [], **(info or {}), **index}
        write_npy(os.path.join(self.root, LABELS), labels)
        write_json(self.manifest_path, manifest)
        self.manifest = manifest
        return manifest

    @property
    def complete(self) -> bool:
        return bool(self.manifest and self.manifest.get("status") == "complete")

    def ranges(self) -> list[tuple[int, int]]:
        assert self.manifest is not None, "open() the store first"
        return shard_ranges(self.manifest["n_images"], self.manifest["settings"]["shard_size"])

    def has_shard(self, index: int) -> bool:
        """Whether shard ``index`` is on disk, whole and of the right shape."""
        path = self.shard_path(index)
        if not os.path.exists(path):
            return False
        start, stop = self.ranges()[index]
        try:
            with np.load(path, allow_pickle=False) as z:
                rows, dim = z["features"].shape
                return rows == stop - start and dim == self.manifest["feature_dim"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return False  # cannot happen with atomic writes, but recompute if it does

    def write_shard(self, index: int, features: np.ndarray, errors: list[str]) -> None:
        """Write shard ``index``: N x D float32 rows and one error text per row ('' = ok)."""
        start, stop = self.ranges()[index]
        dim = self.manifest["feature_dim"]
        if features.shape != (stop - start, dim) or features.dtype != np.float32:
            raise ValueError(f"shard {index} must be {(stop - start, dim)} float32, got "
                             f"{features.shape} {features.dtype}")
        write_npz(self.shard_path(index), {"features": features,
                                           "errors": np.asarray(errors, dtype=str)})

    def iter_shards(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        for i in range(len(self.ranges())):
            with np.load(self.shard_path(i), allow_pickle=False) as z:
                yield i, z["features"], z["errors"]

    def finalize(self, keep_shards: bool = False) -> dict[str, Any]:
        """Concatenate the shards into ``features.npy`` and mark the store complete."""
        missing = [i for i in range(len(self.ranges())) if not self.has_shard(i)]
        if missing:
            raise StoreError(f"cannot finalise '{self.root}': shards {missing[:10]} are missing; "
                             "rerun the extraction to compute them")
        manifest = dict(self.manifest)
        n, dim = manifest["n_images"], manifest["feature_dim"]
        bad = []

        def write(tmp: str) -> None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
            for i, feats, errors in self.iter_shards():
                start, stop = self.ranges()[i]
                out[start:stop] = feats
                bad.extend({"index": start + j, "id": manifest["ids"][start + j],
                            "reason": str(e)} for j, e in enumerate(errors) if e)
            out.flush()
            del out
        atomic_write(os.path.join(self.root, FEATURES), write)
        manifest["bad_images"] = bad
        manifest["status"] = "complete"
        write_json(self.manifest_path, manifest)
        self.manifest = manifest
        if not keep_shards:
            shutil.rmtree(os.path.join(self.root, SHARD_DIR), ignore_errors=True)
        return manifest


def load_features(root: str, *, drop_bad: bool = True, mmap: bool = False) -> FeatureSet:
    """Load a complete feature store in one call.

    Args:
        root: the store directory (``--out`` of ``tools/extract_features.py``).
        drop_bad: leave out images that could not be read (``--bad-images skip``).
        mmap: memory-map ``features.npy`` instead of reading it.

    Raises:
        StoreError: naming the directory when it is not a complete store.
    """
    store = FeatureStore(root)
    manifest = store.read_manifest()
    if manifest is None:
        raise StoreError(f"'{store.root}' holds no feature store ({MANIFEST} missing); "
                         "create one with tools/extract_features.py")
    if manifest.get("status") != "complete":
        raise StoreError(f"the feature store '{store.root}' is incomplete (status "
                         f"{manifest.get('status')!r}); rerun the same extract command to resume")
    feats = np.load(os.path.join(store.root, manifest["features_file"]),
                    mmap_mode="r" if mmap else None, allow_pickle=False)
    labels = np.load(os.path.join(store.root, manifest["labels_file"]), allow_pickle=False)
    ids, subsets = list(manifest["ids"]), list(manifest["subsets"])
    regions = manifest.get("regions")  # absent: whole images (and every older store)
    if regions is not None:
        regions = as_item_regions(regions, ids)
    if drop_bad and manifest.get("bad_images"):
        keep = np.ones(len(ids), dtype=bool)
        keep[[b["index"] for b in manifest["bad_images"]]] = False
        feats, labels = feats[keep], labels[keep]
        ids = [i for i, k in zip(ids, keep) if k]
        subsets = [s for s, k in zip(subsets, keep) if k]
        regions = None if regions is None else [r for r, k in zip(regions, keep) if k]
    return FeatureSet(features=feats, ids=ids, labels=labels, subsets=subsets,
                      classes=list(manifest["classes"]), meta=flat_meta(manifest),
                      regions=regions)


def flat_meta(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without its per-image lists, with the settings at top level.

    E.g. ``meta['scales']``, ``meta['layer']``, ``meta['aggregate']``,
    ``meta['task']``, ``meta['configs']``, ``meta['checkpoint_sha256']``.
    """
    per_image = {"ids", "subsets", "paths", "regions"}
    meta = {k: v for k, v in manifest.items() if k not in per_image}
    meta.update(manifest.get("settings", {}))
    return meta

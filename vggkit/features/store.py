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
place with ``os.replace``, so a killed run leaves only whole files. A store is
created only in a new or empty directory (the writer's lock aside): files vggkit
did not write are never overwritten, and only the store's own shard files are
removed once ``features.npy`` is assembled.

The manifest records the SHA-256 of ``features.npy`` and ``labels.npy``. A
rerun checks them (and the row counts) before it calls a store complete, and
recomputes what is missing or damaged; :func:`load_features` checks them too
and names the damaged file and the fix instead of failing inside numpy. Shards
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
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

# the writers were defined here: their names stay importable from the store
from vggkit.features.arrays import (npy_bytes, sha256_json, write_json, write_npy,  # noqa: F401
                                    write_npz)
from vggkit.features.regions import ItemRegions, as_item_regions
from vggkit.fileio import atomic_write, atomic_write_bytes, file_sha256

FORMAT = "vggkit-features/1"
MANIFEST = "manifest.json"
FEATURES = "features.npy"
LABELS = "labels.npy"
SHARD_DIR = "shards"
#: the writer's lock (vggkit.features.lock); here so that a store knows its own files
LOCK_FILE = ".lock"
#: a shard's file name in SHARD_DIR, and the temporary files atomic_write leaves on a kill
_SHARD_FILE = re.compile(r"shard-\d{5}\.npz")
_TEMP_FILE = re.compile(r"\.(?:manifest\.json|labels\.npy|features\.npy|shard-\d{5}\.npz)\..+\.tmp")
#: settings a resume may change while the store holds no row they decide: with no bad
#: image met yet, rows are the same whichever policy wrote them
_POLICY_KEYS = ("bad_image_policy",)
#: bytes hashed and read per step when loading an array
_CHUNK = 1 << 24


class StoreError(ValueError):
    """A feature store that is missing, incomplete or corrupt."""


class SettingsMismatchError(StoreError):
    """Rerunning into a store that holds features of other settings."""


class DamagedStoreError(StoreError):
    """A file of a complete store is missing, cut short or not what the manifest records."""


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


def _npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Shape, Fortran order, dtype and data offset of the ``.npy`` file ``f``."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(f)
    else:  # 3.0 (utf-8 field names): no public reader
        shape, fortran, dtype = fmt._read_array_header(f, version)
    return shape, fortran, dtype, f.tell()


def read_array(path: str, rows: int, *, cols: int | None = None, dtype: Any = None,
               sha256: str | None = None, mmap: bool = False, verify: bool = True) -> np.ndarray:
    """Load a store's ``.npy`` after checking it is the array the manifest records.

    Args:
        path: the file.
        rows: its first dimension; cols: its second (None: not checked).
        dtype: its dtype (None: any numeric dtype).
        sha256: the file's recorded SHA-256 (None: not recorded, not checked).
        mmap: memory-map instead of reading (the checksum then reads the file once).
        verify: compare the checksum (the shape and size are always checked).

    Raises:
        DamagedStoreError: saying what is wrong with the file (the caller adds the fix).
    """
    if not os.path.isfile(path):
        raise DamagedStoreError(f"'{path}' is missing")
    try:
        with open(path, "rb") as f:
            shape, fortran, found, offset = _npy_header(f)
            _check_layout(path, shape, found, rows, cols, dtype)
            need = offset + int(np.prod(shape)) * found.itemsize
            size = os.fstat(f.fileno()).st_size
            if size != need:
                raise DamagedStoreError(f"'{path}' is {'cut short' if size < need else 'too long'}"
                                        f" ({size} bytes; its {_dims(shape)} {found} array takes "
                                        f"{need})")
            if mmap:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
                digest = file_sha256(path) if verify and sha256 else None
            else:
                f.seek(0)
                array, digest = _read_hashed(f, offset, shape, fortran, found)
    except (ValueError, OSError, EOFError) as exc:
        if isinstance(exc, DamagedStoreError):
            raise
        raise DamagedStoreError(f"'{path}' is not a readable .npy file ({exc})") from exc
    if verify and sha256 and digest != sha256:
        raise DamagedStoreError(f"'{path}' does not match the SHA-256 its manifest records "
                                "(changed or corrupted since it was written)")
    return array


def _check_layout(path: str, shape: tuple[int, ...], found: np.dtype, rows: int,
                  cols: int | None, dtype: Any) -> None:
    if found.hasobject or (dtype is not None and found != np.dtype(dtype)):
        raise DamagedStoreError(f"'{path}' holds {found} values, expected "
                                f"{np.dtype(dtype) if dtype is not None else 'numbers'}")
    if not shape or shape[0] != rows or (cols is not None and shape[1:] != (cols,)):
        want = f"{rows} x {cols}" if cols is not None else f"{rows} rows"
        raise DamagedStoreError(f"'{path}' holds a {_dims(shape)} array, the manifest "
                                f"lists {want}")


def _dims(shape: tuple[int, ...]) -> str:
    return " x ".join(map(str, shape)) or "scalar"


def _read_hashed(f: Any, offset: int, shape: tuple[int, ...], fortran: bool,
                 dtype: np.dtype) -> tuple[np.ndarray, str]:
    """Read a whole ``.npy`` file (header at ``offset``) into an array, hashing it on the way."""
    digest = hashlib.sha256(f.read(offset))
    flat = np.empty(int(np.prod(shape)), dtype=dtype)
    view = memoryview(flat.view(np.uint8))
    done = 0
    while done < len(view):
        got = f.readinto(view[done:done + _CHUNK])
        if not got:
            raise DamagedStoreError(f"'{f.name}' ended after {offset + done} bytes")
        digest.update(view[done:done + got])
        done += got
    array = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
    return array, digest.hexdigest()


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

    Attributes:
        notes: what :meth:`open` repaired or restarted, one line each, for the
            caller to show.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.manifest: dict[str, Any] | None = None
        self.notes: list[str] = []

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.root, MANIFEST)

    @property
    def shard_dir(self) -> str:
        return os.path.join(self.root, SHARD_DIR)

    def shard_path(self, index: int) -> str:
        return os.path.join(self.shard_dir, f"shard-{index:05d}.npz")

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest on disk, or None when the directory holds no store."""
        if not os.path.exists(self.manifest_path):
            return None
        try:
            with open(self.manifest_path, encoding="utf-8") as f:
                manifest = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"cannot read '{self.manifest_path}': {exc}; delete the store "
                             "directory or choose another --out") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else \
                f"a JSON {type(manifest).__name__}, not an object"
            raise StoreError(f"'{self.manifest_path}' is not a vggkit feature store "
                             f"(format {found!r}, expected {FORMAT!r}); choose another --out, "
                             "or delete the directory if it holds nothing you need")
        if not isinstance(manifest.get("settings", {}), dict):
            raise StoreError(f"'{self.manifest_path}' is damaged: its 'settings' is not an "
                             "object; delete the store directory or choose another --out")
        return manifest

    def check_target(self) -> dict[str, Any] | None:
        """The store's manifest, or None for a new or empty directory a store may be made in.

        Raises:
            StoreError: the directory holds files but no store; vggkit writes a
                store only where it overwrites nothing it did not write.
        """
        manifest = self.read_manifest()
        if manifest is None:
            try:
                names = os.listdir(self.root)
            except (FileNotFoundError, NotADirectoryError):
                names = []
            foreign = sorted(n for n in names if n != LOCK_FILE and not _TEMP_FILE.fullmatch(n))
            if foreign:
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more"
                                                  if len(foreign) > 3 else "")
                raise StoreError(f"'{self.root}' is not empty ({shown}) and holds no vggkit "
                                 f"feature store ({MANIFEST} missing): vggkit writes a store "
                                 "only into a new or empty directory; choose another --out")
        return manifest

    def open(self, settings: dict[str, Any], index: dict[str, Any], labels: np.ndarray,
             info: dict[str, Any] | None = None, *, repair: bool = True) -> dict[str, Any]:
        """Create the store, or check that an existing one has the same ``settings``.

        Hold the store's writer lock (:func:`vggkit.features.runner.writer_lock`)
        around this and the extraction, or two runs may both pass the check.

        Args:
            settings: everything that determines the descriptors' bytes; a store
                holding other settings is refused (:class:`SettingsMismatchError`)
                unless it holds no computed shard yet: it is then restarted with
                these. The bad-image policy may change while no bad image was met.
            index: ``ids``, ``subsets``, ``classes``, ``paths`` and, when items
                are regions of images, ``regions`` (recorded).
            labels: written to ``labels.npy``.
            info: recorded, not compared (e.g. config paths, thread count).
            repair: check an existing store's files against its manifest and
                repair them: ``labels.npy`` is rewritten, a damaged ``features.npy``
                sends the store back to 'running' so that the run recomputes it.
                The writer (rank 0) repairs; the other ranks only read.

        Returns:
            The manifest. :attr:`notes` says what was repaired or restarted.

        Raises:
            StoreError: the directory holds other files and no store
                (:meth:`check_target`), or its manifest is unreadable.
        """
        existing = self.check_target()
        if existing is not None:
            diff = self._settings_diff(existing, settings)
            if not diff:
                self.manifest = self._resume(existing, settings, labels) if repair else existing
                return self.manifest
            if self._holds_work(existing):
                raise SettingsMismatchError(
                    f"the feature store '{self.root}' holds features of other settings: "
                    + "; ".join(diff) + ". Rerun with the store's settings to resume, or "
                    "choose another --out (or delete the directory) for the new settings")
            if repair:
                self.notes.append(f"the feature store '{self.root}' held no computed shard yet; "
                                  "restarting it with the new settings (" + "; ".join(diff) + ")")
        data = npy_bytes(labels)
        manifest = {"format": FORMAT, "status": "running", "settings": settings,
                    "n_images": len(index["ids"]), "labels_file": LABELS,
                    "features_file": FEATURES, "bad_images": [],
                    "labels_sha256": hashlib.sha256(data).hexdigest(), **(info or {}), **index}
        if repair:
            # the manifest first: a run killed before labels.npy is then a store that the
            # next run recognises and completes (_resume rewrites the labels)
            write_json(self.manifest_path, manifest)
            atomic_write_bytes(os.path.join(self.root, LABELS), data)
        self.manifest = manifest
        return manifest

    def _settings_diff(self, existing: dict[str, Any], settings: dict[str, Any]) -> list[str]:
        stored = existing.get("settings", {})
        loose = [k for k in _POLICY_KEYS if stored.get(k) != settings.get(k)]
        if loose and not self._bad_rows_written(existing):
            stored = {k: v for k, v in stored.items() if k not in loose}
            settings = {k: v for k, v in settings.items() if k not in loose}
        return differing_keys(stored, settings)

    def _bad_rows_written(self, manifest: dict[str, Any]) -> bool:
        """Whether the store holds a row of an unreadable image (a zero row of 'skip')."""
        if manifest.get("status") == "complete":
            return bool(manifest.get("bad_images"))
        for name in self._own_shard_files():
            try:
                with np.load(os.path.join(self.shard_dir, name), allow_pickle=False) as z:
                    if any(str(e) for e in z["errors"]):
                        return True
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                continue  # a torn shard is recomputed anyway
        return False

    def _holds_work(self, manifest: dict[str, Any]) -> bool:
        """Whether the store holds computed rows (a restart would lose them)."""
        return manifest.get("status") == "complete" or bool(self._own_shard_files())

    def _own_shard_files(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.shard_dir) if _SHARD_FILE.fullmatch(n))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _resume(self, existing: dict[str, Any], settings: dict[str, Any],
                labels: np.ndarray) -> dict[str, Any]:
        """``existing`` checked against its files and repaired (see :meth:`open`)."""
        manifest = dict(existing, settings=settings)  # only a policy key may differ
        data = npy_bytes(labels)
        manifest["labels_sha256"] = hashlib.sha256(data).hexdigest()
        path = os.path.join(self.root, manifest.get("labels_file", LABELS))
        if not os.path.isfile(path) or file_sha256(path) != manifest["labels_sha256"]:
            # the labels follow from the images, which the settings pin: rewrite them
            if os.path.exists(path):
                self.notes.append(f"'{path}' was damaged; rewrote it")
            atomic_write_bytes(path, data)
        if manifest.get("status") == "complete":
            problem = self.features_problem(manifest)
            if problem:
                self.notes.append(f"the feature store '{self.root}' was complete, but {problem}: "
                                  "recomputing it")
                manifest["status"] = "running"
                manifest.pop("features_sha256", None)
        if manifest != existing:
            write_json(self.manifest_path, manifest)
        return manifest

    def features_problem(self, manifest: dict[str, Any] | None = None) -> str | None:
        """What is wrong with a complete store's ``features.npy`` (None: it is whole)."""
        manifest = manifest or self.manifest
        try:
            read_array(os.path.join(self.root, manifest.get("features_file", FEATURES)),
                       len(manifest["ids"]), cols=manifest.get("feature_dim"),
                       dtype=manifest.get("dtype"), sha256=manifest.get("features_sha256"),
                       mmap=True)
        except DamagedStoreError as exc:
            return str(exc)
        return None

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
        digest = []

        def write(tmp: str) -> None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
            for i, feats, errors in self.iter_shards():
                start, stop = self.ranges()[i]
                out[start:stop] = feats
                bad.extend({"index": start + j, "id": manifest["ids"][start + j],
                            "reason": str(e)} for j, e in enumerate(errors) if e)
            out.flush()
            del out
            digest.append(file_sha256(tmp))
        atomic_write(os.path.join(self.root, FEATURES), write)
        manifest["bad_images"] = bad
        manifest["features_sha256"] = digest[0]
        manifest["status"] = "complete"
        write_json(self.manifest_path, manifest)
        self.manifest = manifest
        if not keep_shards:
            self.remove_shards()
        return manifest

    def remove_shards(self) -> None:
        """Delete the store's shard files (and their temporaries), then ``shards/`` if empty.

        Only names this store writes are removed: anything else put into
        ``shards/`` stays, and so does the directory then.
        """
        for name in os.listdir(self.shard_dir) if os.path.isdir(self.shard_dir) else ():
            if _SHARD_FILE.fullmatch(name) or _TEMP_FILE.fullmatch(name):
                try:
                    os.remove(os.path.join(self.shard_dir, name))
                except FileNotFoundError:
                    pass
        try:
            os.rmdir(self.shard_dir)
        except OSError:
            pass  # missing, or holds files that are not the store's: left alone


def load_features(root: str, *, drop_bad: bool = True, mmap: bool = False,
                  verify: bool = True) -> FeatureSet:
    """Load a complete feature store in one call.

    Args:
        root: the store directory (``--out`` of ``tools/extract_features.py``).
        drop_bad: leave out images that could not be read (``--bad-images skip``).
        mmap: memory-map ``features.npy`` instead of reading it.
        verify: compare the files with the SHA-256 sums the manifest records
            (their shapes are always checked against it); reading the whole
            file anyway, the sum costs little, but with ``mmap`` it reads the
            file once more.

    Raises:
        StoreError: naming the directory when it is not a complete store, and
            :class:`DamagedStoreError` naming the file when one is missing,
            cut short or changed, with the command that repairs it.
    """
    store = FeatureStore(root)
    manifest = store.read_manifest()
    if manifest is None:
        raise StoreError(f"'{store.root}' holds no feature store ({MANIFEST} missing); "
                         "create one with tools/extract_features.py")
    if manifest.get("status") != "complete":
        raise StoreError(f"the feature store '{store.root}' is incomplete (status "
                         f"{manifest.get('status')!r}); rerun the same extract command to resume")
    try:
        ids, subsets = list(manifest["ids"]), list(manifest["subsets"])
        classes, names = list(manifest["classes"]), (manifest["features_file"],
                                                     manifest["labels_file"])
    except (KeyError, TypeError) as exc:
        raise StoreError(f"'{store.manifest_path}' is damaged: it lacks {exc}; rerun the "
                         "extract command that wrote it into a new --out") from exc
    try:
        feats = read_array(os.path.join(store.root, names[0]), len(ids),
                           cols=manifest.get("feature_dim"), dtype=manifest.get("dtype"),
                           sha256=manifest.get("features_sha256"), mmap=mmap, verify=verify)
        labels = read_array(os.path.join(store.root, names[1]), len(ids),
                            sha256=manifest.get("labels_sha256"), verify=verify)
    except DamagedStoreError as exc:
        raise DamagedStoreError(f"the feature store '{store.root}' is damaged: {exc}; rerun the "
                                f"vggkit extract command that wrote it (same --out) to "
                                "recompute it") from exc
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
                      classes=classes, meta=flat_meta(manifest), regions=regions)


def flat_meta(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without its per-image lists, with the settings at top level.

    E.g. ``meta['scales']``, ``meta['layer']``, ``meta['aggregate']``,
    ``meta['task']``, ``meta['configs']``, ``meta['checkpoint_sha256']``.
    """
    per_image = {"ids", "subsets", "paths", "regions"}
    meta = {k: v for k, v in manifest.items() if k not in per_image}
    meta.update(manifest.get("settings", {}))
    return meta

"""Per-image posteriors: saving, loading and fusing them without re-running nets.

File format (``.npz``, written atomically, readable with ``allow_pickle=False``):

* ``ids``: N image ids (path relative to the data root);
* ``labels``: N ground-truth class indices (-1 when unknown);
* ``classes``: C class names;
* ``meta``: a JSON string (configs, checkpoints, scales, strategies);
* ``posteriors/<name>``: N×C float32 softmax posteriors, one array per
  strategy, e.g. ``posteriors/dense``.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from vggkit.errors import plural
from vggkit.fileio import atomic_write_bytes

PREFIX = "posteriors/"


@dataclass
class Posteriors:
    """Posteriors of one run over a set of images, keyed by strategy name."""

    ids: list[str]
    labels: np.ndarray
    classes: list[str]
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = [str(i) for i in self.ids]
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.ids) != len(self.labels):
            raise ValueError(f"{len(self.ids)} ids but {len(self.labels)} labels")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("image ids must be unique")
        for name, s in self.scores.items():
            if s.ndim != 2 or s.shape[0] != len(self.ids):
                raise ValueError(f"posteriors '{name}' have shape {s.shape}, expected "
                                 f"({len(self.ids)}, classes)")


def save_posteriors(path: str, post: Posteriors) -> None:
    """Write ``post`` to ``path`` (.npz) atomically: temp file + ``os.replace``."""
    arrays = {"ids": np.asarray(post.ids, dtype=str), "labels": post.labels,
              "classes": np.asarray(post.classes, dtype=str),
              "meta": np.asarray(json.dumps(post.meta, sort_keys=True, default=str))}
    arrays.update({PREFIX + k: np.asarray(v, dtype=np.float32) for k, v in post.scores.items()})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_posteriors(path: str) -> Posteriors:
    """Read a file written by :func:`save_posteriors`; errors name the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("ids", "labels", "classes", "meta") if k not in z.files]
            if missing:
                raise ValueError(f"'{path}' is not a vggkit posteriors file (no {missing}); "
                                 "write one with tools/test.py --save-posteriors")
            scores = {k[len(PREFIX):]: z[k] for k in z.files if k.startswith(PREFIX)}
            return Posteriors(list(z["ids"]), z["labels"], list(z["classes"]), scores,
                              json.loads(str(z["meta"])))
    except FileNotFoundError:
        raise FileNotFoundError(f"posteriors file '{path}' does not exist") from None


def align(reference: Sequence[str], post: Posteriors, source: str = "posteriors") -> np.ndarray:
    """Row indices of ``post`` in the order of ``reference`` ids.

    Raises:
        ValueError: naming up to five ids present in one set but not the other.
    """
    where = {i: n for n, i in enumerate(post.ids)}
    missing = [i for i in reference if i not in where]
    extra = sorted(set(post.ids) - set(reference))
    if missing or extra:
        raise ValueError(f"{source} covers different images: {len(missing)} missing "
                         f"(e.g. {missing[:5]}), {len(extra)} extra (e.g. {extra[:5]}); fuse "
                         "posteriors of the same test set")
    return np.array([where[i] for i in reference], dtype=np.int64)


def fuse(parts: Sequence[tuple[Posteriors, str]], name: str = "fusion") -> Posteriors:
    """Average posteriors of several runs (the paper's model fusion, Sect. 4.4).

    Args:
        parts: ``(posteriors, strategy)`` pairs; rows are aligned by image id
            to the first part.
        name: the key of the fused scores.

    Returns:
        Posteriors with one entry ``name``, ids/labels/classes of the first part.
    """
    if not parts:
        raise ValueError("nothing to fuse")
    first = parts[0][0]
    total = np.zeros((len(first.ids), len(first.classes)), dtype=np.float64)
    sources = []
    for post, key in parts:
        source = post.meta.get("source", "posteriors")
        if key not in post.scores:
            raise KeyError(f"{source} has no posteriors '{key}'; it has {sorted(post.scores)}")
        if list(post.classes) != list(first.classes):
            raise ValueError(f"{source} has {plural(len(post.classes), 'class')} that differ from the "
                             f"first part's {len(first.classes)}; fuse models of the same classes")
        rows = align(first.ids, post, source)
        if not np.array_equal(post.labels[rows], first.labels):
            raise ValueError(f"{source} disagrees with the first part on ground-truth labels")
        total += post.scores[key][rows]
        sources.append({"source": source, "strategy": key})
    fused = (total / len(parts)).astype(np.float32)
    return Posteriors(first.ids, first.labels, first.classes, {name: fused},
                      {"fused": sources})

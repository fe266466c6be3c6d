"""Localisation of a test set: guesses per image, errors per protocol, baselines.

Per image and protocol (:mod:`vggkit.localisation.candidates`): the
classifier's top-5 classes by the image posterior (ties to the lower class
index), and for each of them the localiser's boxes for that class (the one
shared box for SCR), each with that class's confidence at its location,
merged greedily (:mod:`vggkit.localisation.merging`); the best cluster,
clipped to the image, is the guess's box. The same is done for the
ground-truth class, which measures the boxes alone. With several
localisation nets the merging runs on the union of their boxes
(:func:`~vggkit.localisation.candidates.fused_candidates`), the paper's fusion.

Baselines take the same classes with a box that ignores the image: the
whole image, and a centred box of the mean relative size of the evaluated
set's ground-truth boxes (an optimistic prior: it is read from the test set).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from vggkit.data.io import read_image
from vggkit.localisation.boxes import centre_box, clip_boxes
from vggkit.localisation.candidates import (PROTOCOLS, BoxNet, Candidates, compiled_nets,
                                             fused_candidates)
from vggkit.localisation.merging import merge_boxes
from vggkit.localisation.metrics import best_iou, localisation_error

__all__ = ["ranked_classes", "class_box", "guesses", "evaluate", "mean_box_size"]

TOPK = 5


def ranked_classes(posterior: np.ndarray, k: int = TOPK) -> list[int]:
    """The ``k`` best classes, by descending posterior, ties to the lower index."""
    return [int(c) for c in np.argsort(-np.asarray(posterior), kind="stable")[:k]]


def class_box(found: Candidates, label: int, width: int, height: int,
              merge_iou: float = 0.5) -> np.ndarray:
    """The merged box for class ``label``, clipped to the ``width x height`` image."""
    column = label if found.boxes.shape[1] > 1 else 0
    merged, _, _ = merge_boxes(found.boxes[:, column], found.confidences[:, label], merge_iou)
    return clip_boxes(merged[0], width, height)


def guesses(found: Candidates, width: int, height: int, merge_iou: float = 0.5,
            k: int = TOPK) -> list[tuple[int, np.ndarray]]:
    """Up to ``k`` ``(class, box)`` guesses, best class first."""
    return [(c, class_box(found, c, width, height, merge_iou))
            for c in ranked_classes(found.posterior, k)]


def mean_box_size(infos: Iterable[Mapping[str, Any]], sizes: Sequence[tuple[int, int]]
                  ) -> tuple[float, float]:
    """Mean width and height of the ground-truth boxes relative to their image."""
    rel = [(b[:, 2:] - b[:, :2]) / np.array(size, dtype=np.float64)
           for info, size in zip(infos, sizes) for b in [np.asarray(info["gt_bboxes"])]]
    return tuple(float(v) for v in np.concatenate(rel).mean(0))


def _summary(found: list[list[tuple[int, np.ndarray]]], truth: list[dict],
             posteriors: np.ndarray | None) -> dict[str, float]:
    boxes = [t["gt_bboxes"] for t in truth]
    labels = [t["gt_bboxes_labels"] for t in truth]
    out = {"top1_loc_error": localisation_error(found, boxes, labels, 1),
           "top5_loc_error": localisation_error(found, boxes, labels, TOPK)}
    if posteriors is not None:
        for k in (1, TOPK):
            missed = [t["gt_label"] not in ranked_classes(p, k) for p, t in zip(posteriors, truth)]
            out[f"top{k}_cls_error"] = 100.0 * float(np.mean(missed))
    return out


def _gt_class(boxes: list[np.ndarray], truth: list[dict]) -> dict[str, float]:
    ious = np.array([best_iou(b, t["gt_bboxes"], t["gt_bboxes_labels"], t["gt_label"])
                     for b, t in zip(boxes, truth)])
    return {"gt_class_loc_error": 100.0 * float(np.mean(ious < 0.5)),
            "gt_class_mean_iou": 100.0 * float(np.mean(ious))}


def evaluate(nets: Sequence[BoxNet], cls: Any, infos: Sequence[Mapping[str, Any]],
             cls_preprocess: Mapping[str, Any], protocols: Sequence[str] = PROTOCOLS,
             flip: bool = False, merge_iou: float = 0.5, device: str = "cpu",
             progress: Callable[[Iterable], Iterable] = iter, *, backend: str = "auto",
             precision: str = "auto") -> dict[str, Any]:
    """Localise every image of ``infos`` (data infos of a localisation dataset) with the
    localisation ``nets`` (one, or several fused) and the classifier ``cls``.

    The nets run on the paths ``backend``/``precision`` resolve
    (:func:`~vggkit.localisation.candidates.compiled_nets`; 'auto' measured on
    this machine, probed before the clock starts).

    Returns:
        ``{'results': {protocol: errors}, 'baselines': {...}, 'images': [...],
        'seconds': ...}``; errors in percent.
    """
    nets, cls = compiled_nets(nets, cls, protocols, backend, precision)
    start = time.time()
    truth: list[dict] = []
    per: dict[str, dict[str, list]] = {p: {"guesses": [], "gt_box": [], "posterior": []}
                                       for p in protocols}
    sizes = []
    for info in progress(infos):
        img = read_image(info["img_path"])
        w, h = img.size
        scale = np.array([w, h, w, h]) / np.array(list(info.get("ann_size") or (w, h)) * 2)
        truth.append({"gt_bboxes": np.asarray(info["gt_bboxes"], np.float64) * scale,
                      "gt_bboxes_labels": np.asarray(info["gt_bboxes_labels"]),
                      "gt_label": int(info["gt_label"]), "img_path": info["img_path"]})
        sizes.append((w, h))
        for p in protocols:
            found = fused_candidates(nets, cls, img, p, cls_preprocess, flip, device)
            per[p]["guesses"].append(guesses(found, w, h, merge_iou))
            per[p]["gt_box"].append(class_box(found, truth[-1]["gt_label"], w, h, merge_iou))
            per[p]["posterior"].append(found.posterior)
    results = {p: {**_summary(v["guesses"], truth, np.stack(v["posterior"])),
                   **_gt_class(v["gt_box"], truth)} for p, v in per.items()}
    fixed = baseline_boxes(truth, sizes)
    baselines = _baselines(per[protocols[-1]]["guesses"], truth, fixed)
    return {"results": results, "baselines": baselines,
            "baseline_classes_from": protocols[-1],
            "centre_box_relative_size": [round(v, 4) for v in mean_box_size(truth, sizes)],
            "images": _images(per, truth, fixed),
            "seconds": round(time.time() - start, 3)}


def baseline_boxes(truth: list[dict], sizes: list[tuple[int, int]]) -> dict[str, list[np.ndarray]]:
    """Per image, the whole image and the centred box of the set's mean relative size."""
    bw, bh = mean_box_size(truth, sizes)
    return {"whole_image": [np.array([0, 0, w, h], np.float64) for w, h in sizes],
            "centre_box": [centre_box(w, h, bw * w, bh * h) for w, h in sizes]}


def _baselines(found: list[list[tuple[int, np.ndarray]]], truth: list[dict],
               boxes: Mapping[str, list[np.ndarray]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, per_image in boxes.items():
        fixed = [[(c, box) for c, _ in g] for g, box in zip(found, per_image)]
        out[name] = {**_summary(fixed, truth, None), **_gt_class(per_image, truth)}
    return out


def _rounded(box: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in box]


def _images(per: Mapping[str, Mapping[str, list]], truth: list[dict],
            fixed: Mapping[str, list[np.ndarray]]) -> list[dict]:
    return [{"img_path": t["img_path"], "gt_label": t["gt_label"],
             "gt_bboxes": [_rounded(b) for b in t["gt_bboxes"]],
             "gt_bboxes_labels": t["gt_bboxes_labels"].tolist(),
             "baselines": {name: _rounded(boxes[i]) for name, boxes in fixed.items()},
             **{p: {"guesses": [{"class": c, "box": _rounded(b)} for c, b in v["guesses"][i]],
                    "gt_class_box": _rounded(v["gt_box"][i])} for p, v in per.items()}}
            for i, t in enumerate(truth)]

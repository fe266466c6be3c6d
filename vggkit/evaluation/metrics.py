"""Top-k error (Sect. 3.2/4: top-1 multi-class error, top-5 ILSVRC criterion), the
error table of a set of posteriors, and its printout.

Tie rule: classes are ranked by descending score, equal scores ranked by
ascending class index (a stable descending sort; the same choice as
``torch.argmax``, which returns the first maximum). A sample is correct under
top-k when its true class has rank < k, i.e. when
``#{c: s_c > s_y} + #{c < y: s_c == s_y} < k``. ``torch.topk`` breaks ties in
an unspecified, device-dependent order, so it is not used.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from vggkit.errors import plural


def true_class_rank(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Rank (0 = best) of each sample's true class under the tie rule above.

    Args:
        scores: N×C scores or posteriors.
        labels: N integer class indices.

    Returns:
        LongTensor N of ranks.
    """
    scores = torch.as_tensor(scores)
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"scores must be N×C with N = len(labels); got scores {tuple(scores.shape)} "
                         f"and {plural(labels.shape[0], 'label')}")
    num_classes = scores.shape[1]
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}] for {plural(num_classes, 'class')}; got "
                         f"min {int(labels.min())}, max {int(labels.max())}")
    true = scores.gather(1, labels[:, None])
    index = torch.arange(num_classes, device=scores.device)[None, :]
    ahead = (scores > true) | ((scores == true) & (index < labels[:, None]))
    ranks = ahead.sum(1)
    # NaN compares False with everything, which would rank the true class
    # first: a diverged net would look perfect. A row with a NaN ranks last.
    return torch.where(torch.isnan(scores).any(1), torch.full_like(ranks, num_classes), ranks)


def topk_error(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Top-k error in percent (see the module docstring for ties).

    Args:
        scores: N×C scores or posteriors.
        labels: N integer class indices.
        k: how many top classes count as a hit (1 or 5 in the paper).

    Returns:
        100 × fraction of samples whose true class is not among the top k.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranks = true_class_rank(scores, labels)
    if ranks.numel() == 0:
        raise ValueError("topk_error of an empty set of samples is undefined")
    return float((ranks >= k).double().mean() * 100.0)


def _as_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return torch.as_tensor(np.asarray(value))


class TopKError(BaseMetric):
    """mmengine metric: top-k error (%) from ``pred_score`` and ``gt_label``.

    ``evaluate()`` returns ``{'top1_error': ..., 'top5_error': ...}`` for the
    default ``topk=(1, 5)``. A k larger than the number of classes is clipped
    (every sample is then a hit).

    Args:
        topk: the k values to report.
        collect_device: 'cpu' or 'gpu', where results are gathered.
        prefix: metric name prefix (mmengine convention).
    """

    # empty, not None: keys stay exactly top1_error/top5_error (contract) and
    # mmengine does not warn about a missing prefix
    default_prefix: str | None = ""

    def __init__(self, topk: int | Sequence[int] = (1, 5), collect_device: str = "cpu",
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = (topk,) if isinstance(topk, int) else tuple(int(k) for k in topk)
        if not self.topk or min(self.topk) < 1:
            raise ValueError(f"topk must be positive integers, got {topk!r}")

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            get = sample.get if isinstance(sample, dict) else (lambda k, s=sample: getattr(s, k, None))
            score, label = get("pred_score"), get("gt_label")
            if score is None or label is None:
                raise KeyError("TopKError needs 'pred_score' and 'gt_label' in every data sample "
                               "(the model's predict mode sets pred_score)")
            self.results.append((_as_tensor(score).float().reshape(-1),
                                 int(_as_tensor(label).reshape(-1)[0])))

    def compute_metrics(self, results: list) -> dict[str, float]:
        scores = torch.stack([r[0] for r in results])
        labels = torch.tensor([r[1] for r in results], dtype=torch.long)
        return {f"top{k}_error": topk_error(scores, labels, k) for k in self.topk}


# -- error tables of posteriors (tools/test.py, tools/fuse.py) ------------------------
def errors(scores: np.ndarray, labels: np.ndarray, topk: tuple[int, ...] = (1, 5)) -> dict | None:
    """``{'top1_error': %, 'top5_error': %}``; None when some labels are unknown (-1)."""
    labels = np.asarray(labels)
    if labels.size == 0 or (labels < 0).any():
        return None
    s, y = torch.from_numpy(np.asarray(scores, dtype=np.float32)), torch.from_numpy(labels)
    return {f"top{k}_error": round(topk_error(s, y, k), 4) for k in topk}


def _rows(title: str, table: Mapping[str, dict | None]) -> list[str]:
    lines = [title, f"  {'strategy':<20} {'top-1 err %':>11} {'top-5 err %':>11}"]
    for name, err in table.items():
        if err is None:
            lines.append(f"  {name:<20} {'n/a':>11} {'n/a':>11}  (no labels)")
        else:
            lines.append(f"  {name:<20} {err['top1_error']:>11.2f} {err['top5_error']:>11.2f}")
    return lines


def format_results(results: Mapping[str, Any]) -> str:
    """The human-readable table of a results dict written by the test tool."""
    lines: list[str] = []
    for i, m in enumerate(results.get("models", [])):
        lines += _rows(f"model {i}: {m.get('label', '')} scales Q={m.get('scales')}",
                       m["results"])
    if results.get("fusion"):
        lines += _rows(f"fusion of {results.get('fused', '?')}", results["fusion"])
    if "num_images" in results:
        speed = results.get("images_per_s")
        lines.append(plural(results["num_images"], "image")
                     + (f", {speed:.2f} images/s" if speed else "")
                     + (f" on {results['world_size']} processes" if results.get("world_size", 1) > 1
                        else ""))
    return "\n".join(lines)

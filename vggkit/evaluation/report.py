"""Error tables of posteriors: computing and printing them."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from vggkit.evaluation.metrics import topk_error


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
        lines.append(f"{results['num_images']} images"
                     + (f", {speed:.2f} images/s" if speed else "")
                     + (f" on {results['world_size']} processes" if results.get("world_size", 1) > 1
                        else ""))
    return "\n".join(lines)

"""Top-k error on hand-computed examples, including ties (rule: lower class index first)."""
from __future__ import annotations

import pytest
import torch

from vggkit.evaluation.metrics import TopKError, topk_error
from vggkit.plugins import load_plugins
from vggkit.registry import METRICS

# 4 samples, 6 classes
SCORES = torch.tensor([
    [0.10, 0.50, 0.20, 0.05, 0.10, 0.05],  # true 1: rank 0
    [0.30, 0.25, 0.20, 0.15, 0.06, 0.04],  # true 4: rank 4
    [0.40, 0.10, 0.10, 0.10, 0.10, 0.20],  # true 5: rank 1
    [0.10, 0.10, 0.40, 0.10, 0.10, 0.20],  # true 4: ties 0,1,3,4 at 0.10 -> rank 2+3 = 5
])
LABELS = torch.tensor([1, 4, 5, 4])


def test_topk_error_hand_example():
    assert topk_error(SCORES, LABELS, 1) == pytest.approx(75.0)   # only sample 0 right
    assert topk_error(SCORES, LABELS, 2) == pytest.approx(50.0)   # samples 0, 2
    assert topk_error(SCORES, LABELS, 5) == pytest.approx(25.0)   # all but sample 3
    assert topk_error(SCORES, LABELS, 6) == pytest.approx(0.0)


def test_ties_are_broken_towards_lower_class_index():
    # all classes tie: class c has rank c, as torch.argmax (first maximum) would say
    flat = torch.full((3, 4), 0.25)
    assert topk_error(flat, torch.tensor([0, 0, 0]), 1) == 0.0
    assert topk_error(flat, torch.tensor([1, 2, 3]), 1) == 100.0
    assert topk_error(flat, torch.tensor([1, 2, 3]), 3) == pytest.approx(100 / 3)  # class 3: rank 3
    assert int(torch.argmax(flat[0])) == 0


def test_topk_error_bad_input():
    with pytest.raises(ValueError, match="labels must lie in"):
        topk_error(SCORES, torch.tensor([1, 4, 5, 6]), 1)
    with pytest.raises(ValueError, match="N×C"):
        topk_error(SCORES, torch.tensor([1, 4]), 1)
    with pytest.raises(ValueError, match="k must be"):
        topk_error(SCORES, LABELS, 0)


def test_topk_error_metric_from_registry():
    load_plugins()
    metric = METRICS.build(dict(type="TopKError"))
    samples = [{"pred_score": s, "gt_label": torch.tensor([int(y)])} for s, y in zip(SCORES, LABELS)]
    metric.process({}, samples[:2])
    metric.process({}, samples[2:])
    assert metric.evaluate(4) == {"top1_error": pytest.approx(75.0),
                                  "top5_error": pytest.approx(25.0)}
    custom = TopKError(topk=(2,))
    custom.process({}, samples)
    assert custom.evaluate(4) == {"top2_error": pytest.approx(50.0)}


def test_nan_scores_count_as_errors_not_hits():
    import torch

    from vggkit.evaluation.metrics import topk_error
    scores = torch.tensor([[float("nan")] * 3, [0.1, 0.7, 0.2], [0.5, float("nan"), 0.1]])
    labels = torch.tensor([0, 1, 0])
    # row 0 and row 2 hold NaN: errors whatever k; row 1 is a top-1 hit
    assert topk_error(scores, labels, 1) == pytest.approx(200 / 3)
    assert topk_error(scores, labels, 3) == pytest.approx(200 / 3)

"""Transfer metrics against hand-computed values."""
import numpy as np
import pytest

from vggkit.transfer.metrics import (accuracy, confusion_matrix, mean_class_recall, voc07_ap,
                                     voc_area_ap)


def test_ap_hand_computed():
    # ranking P N P N: precision 1, .5, 2/3, .5 at recall .5, .5, 1, 1
    scores, gt = [0.9, 0.8, 0.7, 0.6], [1, -1, 1, -1]
    assert voc_area_ap(scores, gt) == pytest.approx(100 * (0.5 * 1 + 0.5 * 2 / 3))
    assert voc07_ap(scores, gt) == pytest.approx(100 * (6 * 1 + 5 * 2 / 3) / 11)


def test_ap_ignores_difficult():
    # a top-ranked "difficult" image (0) neither helps nor hurts, as in VOCevalcls.m
    scores, gt = [0.95, 0.9, 0.8, 0.7, 0.6], [0, 1, -1, 1, -1]
    assert voc_area_ap(scores, gt) == pytest.approx(100 * 5 / 6)
    assert voc07_ap(scores, gt) == pytest.approx(100 * (6 + 5 * 2 / 3) / 11)


def test_ap_ties_keep_input_order():
    # MATLAB's sort is stable: tied images are ranked in input order
    assert voc_area_ap([0.5, 0.5], [-1, 1]) == pytest.approx(50.0)
    assert voc_area_ap([0.5, 0.5], [1, -1]) == pytest.approx(100.0)
    assert voc07_ap([0.5, 0.5], [-1, 1]) == pytest.approx(50.0)


def test_ap_perfect_and_worst():
    assert voc_area_ap([3, 2, 1], [1, 1, -1]) == pytest.approx(100.0)
    # positives last: precision 1/3 at recall 1 -> area 1/3; 11-point all 1/3
    assert voc_area_ap([3, 2, 1], [-1, -1, 1]) == pytest.approx(100 / 3)
    assert voc07_ap([3, 2, 1], [-1, -1, 1]) == pytest.approx(100 / 3)


def test_mean_class_recall_hand_made_confusion():
    truth = [0] * 10 + [1] * 4 + [2] * 10
    pred = [0] * 8 + [1] * 2 + [0] + [1] * 3 + [1] * 5 + [2] * 5
    cm = confusion_matrix(np.array(pred), np.array(truth), 3)
    assert cm.tolist() == [[8, 2, 0], [1, 3, 0], [0, 5, 5]]
    assert mean_class_recall(cm) == pytest.approx(100 * (0.8 + 0.75 + 0.5) / 3)
    assert accuracy(cm) == pytest.approx(100 * 16 / 24)

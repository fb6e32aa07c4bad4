"""Multi-label metrics (genreflow.metrics.multilabel) against hand-worked cases, and threshold tuning.

scikit-learn is not installed: every expected value below is worked out by hand in the comments.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from genreflow.metrics.multilabel import (
    average_precision,
    hamming_loss,
    macro_f1,
    mean_average_precision,
    micro_f1,
    multi_hot,
    multilabel_report,
    over_threshold,
    per_label_scores,
    subset_accuracy,
    thresholds_array,
    tune_thresholds,
)

# Four clips x four labels. Label 3 never occurs in the truth but is predicted once.
Y_TRUE = np.array(
    [
        [1, 0, 1, 0],
        [0, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
    ]
)
Y_PRED = np.array(
    [
        [1, 0, 0, 0],
        [0, 1, 1, 0],
        [1, 0, 0, 1],
        [0, 0, 0, 0],
    ]
)


# --------------------------------------------------------------------------- metrics by hand


def test_per_label_scores_match_hand_counts():
    scores = per_label_scores(Y_TRUE, Y_PRED)
    # label 0: TP 2 of 2 predicted, 2 true -> P 1, R 1, F1 1
    # label 1: TP 1 of 1 predicted, 2 true -> P 1, R 1/2, F1 2/3
    # label 2: TP 0 of 1 predicted, 1 true -> 0, 0, 0
    # label 3: TP 0 of 1 predicted, 0 true -> 0, 0/0 = 0, 0
    np.testing.assert_allclose(scores["precision"], [1, 1, 0, 0])
    np.testing.assert_allclose(scores["recall"], [1, 0.5, 0, 0])
    np.testing.assert_allclose(scores["f1"], [1, 2 / 3, 0, 0])
    np.testing.assert_array_equal(scores["support"], [2, 2, 1, 0])


def test_averaged_scores_match_hand_values():
    # Pooled: TP 3, true positives 5, predicted positives 5 -> 2*3 / (5 + 5).
    assert micro_f1(Y_TRUE, Y_PRED) == pytest.approx(6 / 10)
    # Labels 0-2 have support; label 3 (no positives) is left out: (1 + 2/3 + 0) / 3.
    assert macro_f1(Y_TRUE, Y_PRED) == pytest.approx(5 / 9)
    # Only clip 3 (nothing true, nothing predicted) is exactly right.
    assert subset_accuracy(Y_TRUE, Y_PRED) == pytest.approx(1 / 4)
    # Wrong cells: (0,2), (1,2), (2,1), (2,3) -> 4 of 16.
    assert hamming_loss(Y_TRUE, Y_PRED) == pytest.approx(4 / 16)
    # Nothing predicted at all: every F1 is 0, not a division error.
    empty = np.zeros_like(Y_PRED)
    assert micro_f1(Y_TRUE, empty) == 0.0 and macro_f1(Y_TRUE, empty) == 0.0
    assert micro_f1(np.zeros((2, 3)), np.zeros((2, 3))) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        micro_f1(Y_TRUE, Y_PRED[:, :3])


def test_average_precision_by_hand():
    # Ranked 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.1 (neg): recall 1/2 at precision 1, then
    # recall 1 at precision 2/3 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    y = np.array([[1], [0], [1], [0]])
    assert average_precision(y, np.array([[0.9], [0.8], [0.7], [0.1]]))[0] == pytest.approx(5 / 6)
    # Tied scores are one step: {0.5, 0.5} holds 1 of 2 positives at precision 1/2, then 0.2
    # adds the other at precision 2/3 -> 1/2 * 1/2 + 1/2 * 2/3 = 7/12, whatever the tie order.
    y = np.array([[1], [0], [1]])
    s = np.array([[0.5], [0.5], [0.2]])
    assert average_precision(y, s)[0] == pytest.approx(7 / 12)
    assert average_precision(y[[1, 0, 2]], s[[1, 0, 2]])[0] == pytest.approx(7 / 12)
    # A constant score: one step with every clip, AP = the positive rate (the prior baseline).
    assert average_precision(np.array([[1], [0], [0], [0]]), np.full((4, 1), 0.3))[0] == 0.25
    # A perfect ranking scores 1.
    assert average_precision(np.array([[0], [1], [1]]), np.array([[0.1], [0.8], [0.7]]))[0] == 1


def test_map_skips_labels_without_positives():
    y = np.array([[1, 0], [0, 0], [1, 0]])
    s = np.array([[0.9, 0.2], [0.8, 0.9], [0.7, 0.1]])
    ap = average_precision(y, s)
    # Label 0: ranks pos, neg, pos -> 1/2 * 1 + 1/2 * 2/3 = 5/6; label 1 has no positives.
    assert ap[0] == pytest.approx(5 / 6) and np.isnan(ap[1])
    assert mean_average_precision(y, s) == pytest.approx(5 / 6)


def test_report_is_json_ready_and_uses_the_thresholds():
    scores = np.array([[0.9, 0.2], [0.4, 0.6], [0.7, 0.3]])
    y = np.array([[1, 0], [0, 1], [1, 1]])
    report = multilabel_report(y, scores, thresholds=[0.5, 0.2], labels=["a", "b"])
    json.dumps(report)
    # Predicted at >= (0.5, 0.2): a for clips 0 and 2 (both right); b for all three clips,
    # since 0.2 >= 0.2: TP 2 of 3 predicted, 2 true -> P 2/3, R 1, F1 4/5; clip 0 is wrong.
    assert report["per_label"]["a"]["f1"] == 1.0
    assert report["per_label"]["b"]["f1"] == pytest.approx(4 / 5)
    assert report["subset_accuracy"] == pytest.approx(2 / 3)
    assert report["micro_f1"] == pytest.approx(2 * 4 / (5 + 4))  # TP 4, predicted 5, true 4
    assert report["per_label"]["b"]["threshold"] == 0.2
    # Label b ranked 0.6 (pos), 0.3 (pos), 0.2 (neg): AP 1, whatever the threshold.
    assert report["per_label"]["b"]["average_precision"] == 1.0


def test_thresholds_array_and_multi_hot():
    assert thresholds_array({"b": 0.3}, labels=["a", "b"]).tolist() == [0.5, 0.3]
    assert thresholds_array(None, labels=["a"]).tolist() == [0.5]
    np.testing.assert_array_equal(
        multi_hot([("b", "a"), ("c",), ()], labels=["a", "b", "c"]),
        [[1, 1, 0], [0, 0, 1], [0, 0, 0]],
    )
    assert over_threshold(np.array([0.5, 0.49]), [0.5, 0.5]).tolist() == [True, False]


# --------------------------------------------------------------------------- threshold tuning


def test_threshold_is_the_middle_of_the_best_range():
    # Positives at 0.8 and 0.6, negatives at 0.3 and 0.1: F1 = 1 for any t in (0.3, 0.6].
    y = np.array([[1], [1], [0], [0]])
    s = np.array([[0.8], [0.6], [0.3], [0.1]])
    assert tune_thresholds(y, s)[0] == pytest.approx(0.45)
    # 0.9 pos, 0.7 neg, 0.5 pos, 0.2 neg: cuts give F1 2/3, 1/2, 4/5, 2/3 -> (0.2, 0.5].
    y = np.array([[1], [0], [1], [0]])
    s = np.array([[0.9], [0.7], [0.5], [0.2]])
    assert tune_thresholds(y, s)[0] == pytest.approx(0.35)
    # Every clip positive: predicting all is best, any t in [0, 0.4] -> 0.2.
    assert tune_thresholds(np.ones((2, 1)), np.array([[0.4], [0.9]]))[0] == pytest.approx(0.2)


def test_equally_good_adjacent_ranges_merge():
    # Cut at 1.0: TP 1, 1 predicted, 3 positives -> 2/4. Cut at 0.6 (a tie of 1 pos + 3 neg):
    # TP 2, 5 predicted -> 4/8, the same F1. Cut at 0.3: TP 3, 10 predicted -> 6/13, worse.
    # The best range is (0.3, 1.0], so 0.65 (not the middle of (0.6, 1.0] alone, 0.8).
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 1])[:, None]
    s = np.array([1.0, 0.6, 0.6, 0.6, 0.6, 0.3, 0.3, 0.3, 0.3, 0.3])[:, None]
    assert tune_thresholds(y, s)[0] == pytest.approx(0.65)


def test_a_label_without_positives_gets_the_default():
    y = np.array([[1, 0], [0, 0]])
    s = np.array([[0.9, 0.8], [0.1, 0.2]])
    t = tune_thresholds(y, s)
    assert t[1] == 0.5 and 0.1 < t[0] <= 0.9
    assert tune_thresholds(y, s, default=0.7)[1] == 0.7


def test_tuned_thresholds_reach_the_best_f1_of_any_threshold():
    rng = np.random.default_rng(3)
    y = (rng.random((40, 5)) < 0.3).astype(int)
    s = np.round(np.clip(0.35 * y + rng.random((40, 5)) * 0.7, 0, 1), 2)  # rounding makes ties
    t = tune_thresholds(y, s)
    f1 = per_label_scores(y, over_threshold(s, t))["f1"]
    for j in range(y.shape[1]):
        # Brute force: every score value (and 0) as a threshold.
        best = max(
            per_label_scores(y[:, [j]], s[:, [j]] >= c)["f1"][0] for c in np.r_[0.0, s[:, j]]
        )
        assert f1[j] == pytest.approx(best), j

"""`cskd_hf.metrics`: mean scores, MSE, SRCC, PLCC, binary accuracy and the interval error rate against scipy and
hand counts, their scale per dataset, and bad inputs named."""

import numpy as np
import pytest
from scipy import stats

from cskd_hf.metrics import aesthetic_metrics, default_interval_edges, interval_error_rates, mean_score, metric_scale


def test_mean_score_of_ava_vote_counts():
    # The example row of AVA.txt: votes for ratings 1..10.
    votes = np.array([[0, 1, 5, 17, 38, 36, 15, 6, 5, 1]])
    expected = sum(s * c for s, c in zip(range(1, 11), votes[0])) / votes.sum()
    np.testing.assert_allclose(mean_score(votes, range(1, 11)), [expected])
    np.testing.assert_allclose(mean_score(votes / votes.sum(), range(1, 11)), [expected])


def test_metrics_agree_with_scipy_and_hand_counts():
    rng = np.random.default_rng(1)
    target = rng.normal(5.4, 0.7, size=200)
    predicted = target + rng.normal(0, 0.4, size=200)
    result = aesthetic_metrics(predicted, target)
    assert result["n"] == 200
    assert result["mse"] == pytest.approx(np.mean((predicted - target) ** 2))
    assert result["srcc"] == pytest.approx(stats.spearmanr(predicted, target)[0])
    assert result["plcc"] == pytest.approx(stats.pearsonr(predicted, target)[0])
    assert result["accuracy"] == pytest.approx(np.mean((predicted > 5) == (target > 5)))
    assert sum(v["count"] for v in result["ier"].values()) == 200


def test_interval_error_rate_by_hand():
    target = np.array([4.2, 4.8, 5.1, 5.5, 5.9, 6.0])
    predicted = np.array([4.3, 5.5, 5.1, 6.2, 5.0, 6.0])  # errors 0.1, 0.7, 0, 0.7, 0.9, 0
    rates = interval_error_rates(predicted, target, [4, 5, 6])
    assert rates == {"4-5": {"ier": 0.5, "count": 2}, "5-6": {"ier": 0.5, "count": 4}}  # 6.0 falls in the last, closed
    assert interval_error_rates(predicted, target, [4, 5, 6], threshold=0.8)["5-6"]["ier"] == 0.25


def test_default_intervals_cover_the_scores():
    np.testing.assert_array_equal(default_interval_edges(np.array([2.3, 7.9])), [2, 3, 4, 5, 6, 7, 8])


def test_the_metrics_scale_with_the_datasets_range():
    """AVA's t = 0.5 and unit intervals on its 1..10 range hold a model to the same relative precision on AADB's [0, 1]
    and PARA's 1..5, instead of a single interval and a t that forgives any AADB error below half the scale."""
    from cskd_hf.data.aadb import AADB_BIN_SCORES
    from cskd_hf.data.ava import AVA_BIN_SCORES
    from cskd_hf.data.para import PARA_BIN_SCORES

    assert metric_scale(AVA_BIN_SCORES) == {
        "threshold": 5.0, "ier_threshold": 0.5, "interval_width": 1.0, "interval_origin": 1.0
    }  # fmt: skip
    assert metric_scale(AADB_BIN_SCORES) == pytest.approx(
        {"threshold": 0.5, "ier_threshold": 1 / 18, "interval_width": 1 / 9, "interval_origin": 0.0}
    )
    assert metric_scale(PARA_BIN_SCORES) == pytest.approx(
        {"threshold": 3.0, "ier_threshold": 2 / 9, "interval_width": 4 / 9, "interval_origin": 1.0}
    )
    # PARA's intervals are AVA's mapped onto 1..5: they start at 1, as AVA's do.
    para = aesthetic_metrics(np.array([1.2, 2.0, 4.9]), np.array([1.1, 2.1, 4.8]), **metric_scale(PARA_BIN_SCORES))
    edges = sorted({float(edge) for interval in para["ier"] for edge in interval.split("-")})
    np.testing.assert_allclose(edges, [1 + k * 4 / 9 for k in (0, 1, 2, 3, 8, 9)], atol=1e-5)

    rng = np.random.default_rng(0)
    target = rng.uniform(0.12, 0.88, 300)  # AADB-like scores
    predicted = target + rng.normal(0, 0.08, 300)
    unscaled = aesthetic_metrics(predicted, target)
    assert list(unscaled["ier"]) == ["0-1"] and unscaled["ier"]["0-1"]["ier"] == 0  # says nothing
    scaled = aesthetic_metrics(predicted, target, **metric_scale(AADB_BIN_SCORES))
    assert len(scaled["ier"]) == 7  # intervals of 1/9 from 1/9 to 8/9
    errors = np.abs(predicted - target) > 1 / 18
    assert sum(v["ier"] * v["count"] for v in scaled["ier"].values()) == pytest.approx(errors.sum())
    assert scaled["scale"] == metric_scale(AADB_BIN_SCORES)


def test_binary_accuracy_at_threshold():
    result = aesthetic_metrics(np.array([4.0, 6.0, 5.5, 4.5]), np.array([4.5, 5.5, 4.9, 5.2]), threshold=5.0)
    assert result["accuracy"] == 0.5


@pytest.mark.parametrize(
    "predicted,target,message",
    [([1.0, 2.0], [1.0], "target has 1"), ([1.0], [1.0], "at least two"), ([1.0, np.nan], [1.0, 2.0], "finite")],
)
def test_bad_inputs_are_named(predicted, target, message):
    with pytest.raises(ValueError, match=message):
        aesthetic_metrics(np.array(predicted), np.array(target))

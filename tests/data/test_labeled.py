"""`cskd_hf.data.labeled`: scalar scores spread over the bins keep their mean; the paper's split sizes."""

import numpy as np
import pytest

from cskd_hf.data.aadb import AADB_BIN_SCORES
from cskd_hf.data.labeled import scalar_to_distribution


def test_scalar_to_distribution_keeps_the_mean_exactly():
    scores = np.array([0.0, 0.05, 0.4, 0.6, 1.0])
    spread = scalar_to_distribution(scores, AADB_BIN_SCORES, std=0.2)
    np.testing.assert_allclose(spread.sum(1), 1.0)
    np.testing.assert_allclose(spread @ AADB_BIN_SCORES, scores, atol=1e-9)
    assert spread[2].argmax() == 2 and spread[3].argmax() == 2  # 0.4 and 0.6 peak on the 0.5 bin
    with pytest.raises(ValueError, match="within the bins"):
        scalar_to_distribution(np.array([1.2]), AADB_BIN_SCORES, std=0.2)


def test_paper_splits_train_on_the_papers_counts():
    """CSKD §4.1: "237,623, 8345 and 28220 samples are randomly selected for training"."""
    from cskd_hf.data.labeled import paper_train_count

    assert paper_train_count(255_500, 237_623, 242_538) == 237_623  # all of AVA: the paper's count, the rest test
    assert paper_train_count(9_958, 8_345, 10_000) == 8_310  # AADB's released lists hold 42 images fewer than 10,000
    assert paper_train_count(6, 237_623, 242_538) == 5  # a small folder: the paper's share, one test image kept

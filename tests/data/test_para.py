"""`cskd_hf.data.para`: PARA's GIAA and per-user files give the same distributions."""

import numpy as np
import pytest

from cskd_hf.data.labeled import bin_scores_of
from cskd_hf.data.para import PARA_BIN_SCORES, load_para
from tests.data.benchmark_files import PARA_GIAA, para_mean, write_para


@pytest.mark.parametrize("per_user", [False, True])
def test_para_giaa_and_per_user_files_agree(tmp_path, per_user):
    para = load_para(write_para(tmp_path / "PARA"), per_user=per_user)
    assert {split: len(d) for split, d in para.items()} == {"train": 3, "test": 2}
    for file_name, split in (("PARA-GiaaTrain.csv", "train"), ("PARA-GiaaTest.csv", "test")):
        rows = {row["image_id"]: row for row in para[split]}
        for name, session, votes in PARA_GIAA[file_name]:
            row = rows[f"{session}/{name}"]
            np.testing.assert_allclose(row["distribution"], np.array(votes) / sum(votes), rtol=1e-6)
            assert row["mean_score"] == pytest.approx(para_mean(votes), abs=1e-4)
            assert row["num_votes"] == sum(votes)
    assert bin_scores_of(para) == PARA_BIN_SCORES

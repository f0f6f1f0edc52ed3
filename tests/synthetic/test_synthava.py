"""`cskd_hf.synthetic.synthava`: SynthAVA is deterministic for a seed, its votes are AVA-like, its score is learnable
from pixels but not from content, its captions describe content and style, and `cskd data synth` writes it."""

import numpy as np
import pytest
from scipy import ndimage, stats

from cskd_hf.cli import main
from cskd_hf.data.prepare import load_labeled
from cskd_hf.synthetic.synthava import CONTENT_CLASSES, generate, vote_statistics

SPLITS = {"unlabeled": 300, "train": 1200, "test": 600}


@pytest.fixture(scope="module")
def world():
    return generate(SPLITS, seed=3, num_workers=1)


def test_deterministic_for_a_seed_whatever_the_worker_count():
    splits = {"unlabeled": 600, "train": 100}
    first, again = generate(splits, seed=3, num_workers=1), generate(splits, seed=3, num_workers=2)
    for split in splits:
        assert again[split]["caption"] == first[split]["caption"]
        assert again[split]["mean_score"] == first[split]["mean_score"]
        assert [np.asarray(x).tobytes() for x in again[split]["image"][:5]] == [
            np.asarray(x).tobytes() for x in first[split]["image"][:5]
        ]
    assert generate(splits, seed=4, num_workers=1)["train"]["mean_score"] != first["train"]["mean_score"]


def test_vote_statistics_are_ava_like(world):
    statistics = vote_statistics(world["train"])
    assert 5.25 < statistics["mos_mean"] < 5.55
    assert 0.6 < statistics["mos_std"] < 0.8
    assert 1.25 < statistics["vote_std"] < 1.55
    assert statistics["min_votes"] >= 100 and statistics["max_votes"] <= 250
    row = world["train"][0]
    assert len(row["distribution"]) == 10 and abs(sum(row["distribution"]) - 1) < 1e-5
    assert row["image"].size == (64, 64) and row["image"].mode == "RGB"


def pixel_statistics(images) -> np.ndarray:
    """Simple, hand-made image statistics: brightness, contrast, sharpness, noise, saturation."""
    rows = []
    for image in images:
        rgb = np.asarray(image, dtype=np.float64) / 255
        grey = rgb.mean(-1)
        smooth = ndimage.gaussian_filter(grey, 1.0)
        rows.append(
            [
                grey.mean(),
                grey.mean() ** 2,
                grey.std(),
                np.abs(ndimage.laplace(smooth)).mean(),
                np.abs(grey - smooth).mean(),
                (rgb.max(-1) - rgb.min(-1)).mean(),
                (grey > 0.97).mean(),
                (grey < 0.05).mean(),
            ]
        )
    return np.asarray(rows)


def ridge_srcc(train_x, train_y, test_x, test_y) -> float:
    mean, std = train_x.mean(0), train_x.std(0) + 1e-9
    design = np.c_[np.ones(len(train_x)), (train_x - mean) / std]
    weights = np.linalg.solve(design.T @ design + 1e-2 * np.eye(design.shape[1]), design.T @ train_y)
    predicted = np.c_[np.ones(len(test_x)), (test_x - mean) / std] @ weights
    return stats.spearmanr(predicted, test_y).statistic


def test_the_score_is_learnable_from_pixels_but_not_from_content(world):
    train, test = world["train"], world["test"]
    train_y, test_y = np.asarray(train["mean_score"]), np.asarray(test["mean_score"])
    from_pixels = ridge_srcc(pixel_statistics(train["image"]), train_y, pixel_statistics(test["image"]), test_y)
    assert from_pixels > 0.3  # a quick fit on crude pixel statistics beats chance clearly

    one_hot = np.eye(len(CONTENT_CLASSES))
    from_content = ridge_srcc(one_hot[train["content"]], train_y, one_hot[test["content"]], test_y)
    assert abs(from_content) < 0.12  # the content says (nearly) nothing about the score


def test_captions_describe_content_and_style(world):
    for row in world["train"].select(range(200)):
        caption = row["caption"]
        assert CONTENT_CLASSES[row["content"]] in caption
        assert ("blurry" in caption) == (row["blur"] > 1.2)
        assert ("dark" in caption) == (row["exposure"] < 0.7)
        assert ("grainy" in caption) == (row["noise"] > 0.07)


def test_cli_synth_writes_a_loadable_dataset(tmp_path, capsys):
    out = tmp_path / "synthava"
    args = ["data", "synth", "--out", str(out), "--unlabeled", "40", "--train", "30", "--validation", "10"]
    assert main([*args, "--test", "20", "--seed", "1"]) == 0
    assert "unlabeled 40" in capsys.readouterr().out
    loaded = load_labeled(str(out))
    assert {name: len(split) for name, split in loaded.items()} == {
        "unlabeled": 40,
        "train": 30,
        "validation": 10,
        "test": 20,
    }
    assert "synthetic" in (out / "README.md").read_text().lower()

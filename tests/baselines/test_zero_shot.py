"""The CLIP zero-shot baseline: prompt files, the score map, the scorer and `cskd zeroshot`."""

import csv
import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from cskd_hf.baselines.zero_shot import ScoreMap, ZeroShotScorer, evaluate_zero_shot, load_prompts, write_prompts
from cskd_hf.cli import main
from cskd_hf.synthetic.synthava import ZERO_SHOT_PROMPTS, generate, write_synthava
from cskd_hf.synthetic.tiny_clip import train_tiny_clip
from tests.helpers import write_awkward_images


def test_prompt_files_text_and_json(tmp_path):
    path = write_prompts(ZERO_SHOT_PROMPTS, tmp_path / "prompts.txt")
    assert load_prompts(path) == ZERO_SHOT_PROMPTS
    (tmp_path / "more.txt").write_text("# pairs\na good photo | a bad photo\n\n nice | not nice  # comment\n")
    assert load_prompts(tmp_path / "more.txt") == [("a good photo", "a bad photo"), ("nice", "not nice")]
    (tmp_path / "pairs.json").write_text(json.dumps([["good", "bad"]]))
    assert load_prompts(tmp_path / "pairs.json") == [("good", "bad")]
    (tmp_path / "bad.txt").write_text("a good photo\n")
    with pytest.raises(ValueError, match=r"bad\.txt:1"):
        load_prompts(tmp_path / "bad.txt")


HOSTILE_PROMPT_FILES = {
    "latin1.txt": ("good | bad\nsch\xf6n | h\xe4sslich\n".encode("latin-1"), r"latin1\.txt: not UTF-8 text"),
    "empty.txt": (b"# nothing but a comment\n\n", r"empty\.txt: needs at least one pair"),
    "three.txt": (b"good | bad | ugly\n", r"three\.txt:1: expected 'positive prompt \| negative prompt'"),
    "one-sided.txt": (b"good | bad\n  | bad\n", r"one-sided\.txt:2: expected"),
    "broken.json": (b'[["good", "bad"],\n ["nice"', r"broken\.json:2: not JSON"),
    "object.json": (
        b'{"good": "bad"}',
        r"object\.json: expected a JSON list of \[positive, negative\] pairs, got dict",
    ),
    "word.json": (b'["good", "bad"]', r"word\.json: entry 0 should be a pair of non-empty strings, got 'good'"),
    "numbers.json": (b'[["good", "bad"], [1, 2]]', r"numbers\.json: entry 1 should be a pair"),
    "blank.json": (b'[["good", " "]]', r"blank\.json: entry 0 should be a pair"),
}


@pytest.mark.parametrize("name", HOSTILE_PROMPT_FILES)
def test_hostile_prompt_files_get_an_error_naming_the_file_and_line(tmp_path, name):
    content, message = HOSTILE_PROMPT_FILES[name]
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_prompts(tmp_path / name)


def test_a_prompt_longer_than_clip_reads_is_refused_by_cskd_zeroshot(random_clip_dir, tmp_path, sample_dir, capsys):
    from cskd_hf.synthetic.tiny_clip import MAX_LENGTH

    positive, negative = ZERO_SHOT_PROMPTS[0]
    rambling = " ".join([positive] * MAX_LENGTH)  # words the tokenizer knows, far more tokens than CLIP reads
    prompts = write_prompts([(positive, negative), (rambling, negative)], tmp_path / "long.txt")
    output = tmp_path / "scores.csv"
    command = ["zeroshot", str(sample_dir), "--clip", str(random_clip_dir), "--prompts", str(prompts)]
    assert main([*command, "--output", str(output)]) == 2
    assert f"long.txt: prompts longer than the {MAX_LENGTH} tokens CLIP's text tower reads" in capsys.readouterr().err
    assert not output.exists()  # refused before any image was scored
    (tmp_path / "broken.json").write_text('[["good", "bad"]')
    assert main([*command[:-1], str(tmp_path / "broken.json"), "--output", str(output)]) == 2
    assert "broken.json:1: not JSON" in capsys.readouterr().err


def test_score_map_fits_the_scale_and_never_changes_the_ranking():
    rng = np.random.default_rng(0)
    zero_shot = rng.uniform(0.3, 0.7, 200)
    mean_scores = 5.4 + 3 * (zero_shot - 0.5) + rng.normal(0, 0.1, 200)
    fitted = ScoreMap.fit(zero_shot, mean_scores)
    assert fitted.slope == pytest.approx(3, rel=0.1) and fitted(0.5) == pytest.approx(5.4, abs=0.05)
    backwards = ScoreMap.fit(zero_shot, 10.8 - mean_scores)  # prompts that rank the split backwards
    assert backwards.slope > 0
    assert spearmanr(backwards(zero_shot), zero_shot).statistic == pytest.approx(1.0)
    assert np.mean(backwards(zero_shot)) == pytest.approx(np.mean(10.8 - mean_scores))


def test_scorer_gives_pair_probabilities_and_their_mean(random_clip_dir, sample_dir):
    from cskd_hf.data.images import open_image

    scorer = ZeroShotScorer(random_clip_dir, ZERO_SHOT_PROMPTS)
    images = [open_image(path) for path in sorted(sample_dir.iterdir())[:3]]
    pairs = scorer.pair_probabilities(images)
    assert pairs.shape == (3, len(ZERO_SHOT_PROMPTS)) and np.all((pairs > 0) & (pairs < 1))
    np.testing.assert_allclose(scorer(images), pairs.mean(axis=1), rtol=1e-6)
    # Swapping every pair turns each probability p into 1 - p.
    swapped = ZeroShotScorer(random_clip_dir, [(negative, positive) for positive, negative in ZERO_SHOT_PROMPTS])
    np.testing.assert_allclose(swapped.pair_probabilities(images), 1 - pairs, atol=1e-5)


def test_cli_scores_files_with_errors_and_calibrates_on_a_dataset(random_clip_dir, tmp_path, sample_dir):
    from cskd_hf.data.samples import sample_photo

    files = write_awkward_images(tmp_path / "photos", sample_photo("coffee"))
    write_synthava(tmp_path / "synthava", splits={"train": 40, "test": 20}, image_size=32, seed=0)
    prompts = str(tmp_path / "synthava" / "zero_shot_prompts.txt")
    output = tmp_path / "zero_shot.csv"
    command = ["zeroshot", str(tmp_path / "photos"), "--clip", str(random_clip_dir), "--prompts", prompts]
    assert main([*command, "--dataset", str(tmp_path / "synthava"), "--output", str(output)]) == 0
    rows = {row["path"]: row for row in csv.DictReader(open(output))}
    assert len(rows) == len(files)
    text_file = rows[str(files["text"])]
    assert text_file["zero_shot"] == "" and "not a recognised image" in text_file["error"]
    good = [row for row in rows.values() if not row["error"]]
    assert len(good) == len(files) - 3 and all(0 < float(row["zero_shot"]) < 1 for row in good)
    assert all(float(row["score"]) != float(row["zero_shot"]) for row in good)  # mapped onto the 1..10 scale

    metrics_file = tmp_path / "metrics.json"
    command = [
        "zeroshot",
        "--clip",
        str(random_clip_dir),
        "--prompts",
        prompts,
        "--dataset",
        str(tmp_path / "synthava"),
    ]
    assert main([*command, "--output", str(metrics_file)]) == 0
    metrics = json.loads(metrics_file.read_text())
    assert metrics["n"] == 20 and -1 <= metrics["srcc"] <= 1 and metrics["score_map"]["slope"] > 0


@pytest.mark.slow  # about 20 s alone: pretrains the tiny CLIP
def test_zero_shot_ranks_synthava_above_chance_with_the_tiny_clip(tmp_path):
    world = generate({"unlabeled": 2500, "train": 300, "test": 400}, seed=0)
    train_tiny_clip(world["unlabeled"], tmp_path / "clip", epochs=4, batch_size=64, progress=False)
    metrics = evaluate_zero_shot(tmp_path / "clip", world, prompts=ZERO_SHOT_PROMPTS, progress=False)
    # Chance is 0 (sd about 0.05 for 400 images); prompts about style find the style-driven score. Measured with
    # this recipe: 0.51 (seed 0), 0.45 and 0.37 (seeds 1 and 2).
    assert metrics["srcc"] > 0.3, metrics

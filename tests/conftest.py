"""Shared fixtures: everything offline, tiny random models, real photographs from scikit-image."""

import os

# Before transformers is imported anywhere: no test may reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from cskd_hf import CSKDForAestheticScoring, CSKDImageProcessor  # noqa: E402
from cskd_hf.data.samples import sample_photo, write_sample_images  # noqa: E402
from cskd_hf.synthetic.synthava import ZERO_SHOT_PROMPTS  # noqa: E402
from tests.helpers import tiny_config, write_awkward_images, write_tiny_clip  # noqa: E402
from tests.transformers_suites import PYTEST_CONFIG  # noqa: E402


def pytest_configure(config):
    PYTEST_CONFIG.append(config)  # for the markers of transformers' common suites, known once they are fetched


@pytest.fixture(autouse=True)
def _hf_modules_cache(tmp_path_factory, monkeypatch):
    """Remote code copied by `trust_remote_code` goes to a temporary folder, not the user's cache."""
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path_factory.getbasetemp() / "hf_modules"))


@pytest.fixture(autouse=True)
def _onnx_graph_cache(tmp_path_factory, monkeypatch):
    """Graphs that `cskd score` and the pipeline export on first use go to a folder of this session (shared by its
    tests, as the user's cache is by their runs), not the user's cache."""
    monkeypatch.setenv("CSKD_ONNX_CACHE", str(tmp_path_factory.getbasetemp() / "onnx_graphs"))


@pytest.fixture(autouse=True)
def _short_datasets_thread_shutdown(monkeypatch):
    """`datasets` sleeps 5 s after each pass over an interleaved stream with a Parquet source (a guard against an
    Arrow shutdown race, apache/arrow#45214); on tiny test streams a short pause is enough."""
    import datasets.config

    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0.1)


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory):
    """Real photographs (JPEG and PNG) that scikit-image ships."""
    out_dir = tmp_path_factory.mktemp("samples")
    write_sample_images(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_scorer_dir(tmp_path_factory):
    """A tiny random scoring model with its image processor, saved as a user would."""
    torch.manual_seed(0)
    config = tiny_config(head_hidden_sizes=[16], head_dropout=0.1, initializer_range=0.5)
    model = CSKDForAestheticScoring(config)
    out_dir = tmp_path_factory.mktemp("tiny-scorer")
    model.save_pretrained(out_dir)
    CSKDImageProcessor.from_model_config(config).save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def random_clip_dir(tmp_path_factory):
    """A tiny random CLIP (full `CLIPModel`, 32 px) with a word-level tokenizer that knows the SynthAVA prompt words
    and an image processor, saved as a Hub-style folder."""
    texts = [text for pair in ZERO_SHOT_PROMPTS for text in pair]
    return write_tiny_clip(tmp_path_factory.mktemp("clip"), texts=texts, projection_dim=64)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """`cskd quickstart --smoke --full`: every stage of `--full`, at the smoke plan's sizes (about 4 minutes on 2
    cores; for slow tests only), shared by the quickstart's tests and the tools that read a finished run."""
    from cskd_hf.cli import main

    out = tmp_path_factory.mktemp("quickstart")
    assert main(["quickstart", "--smoke", "--full", "--out", str(out), "--seed", "0"]) == 0
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory, sample_dir):
    """The sample photos, one of them as a large camera-sized JPEG, plus the unreadable kinds of file."""
    folder = tmp_path_factory.mktemp("photos")
    for path in sorted(sample_dir.iterdir()):
        shutil.copy(path, folder / path.name)
    Image.fromarray(sample_photo("astronaut")).resize((3000, 2000)).save(folder / "large.jpg", quality=90)
    write_awkward_images(folder / "awkward", sample_photo("coffee"))
    return folder

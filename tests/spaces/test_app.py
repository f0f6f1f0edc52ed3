"""The Gradio Space: its API through gradio_client on localhost, and the page in a real headless Chromium."""

import importlib.util
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

gradio_client = pytest.importorskip("gradio_client", reason="the Space needs the `demo` extra (make test installs it)")


def load_app():
    spec = importlib.util.spec_from_file_location("space_app", REPO / "spaces" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # gradio looks up the module of the app's component classes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def models(tiny_scorer_dir, tmp_path_factory):
    """Two tiny scorers; the second's card says it was trained on synthetic data."""
    second = tmp_path_factory.mktemp("second-scorer")
    model = AutoModelForImageClassification.from_pretrained(tiny_scorer_dir)
    model.save_pretrained(second)
    AutoImageProcessor.from_pretrained(tiny_scorer_dir).save_pretrained(second)
    (second / "README.md").write_text("Trained on SynthAVA, a synthetic dataset.")
    return [str(tiny_scorer_dir), str(second)]


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    app = load_app()
    # Two requests computed at once, so that the concurrency test has requests really running side by side.
    limits = app.Limits(max_files=4, max_pixels=2_000_000, max_upload_mb=1, concurrency=2)
    device_page = app.write_device_page(models[0], tmp_path_factory.mktemp("device-page"))
    demo = app.build_demo(models, reference=None, limits=limits, examples=app.EXAMPLES, device_page=device_page)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **limits.launch_options()
    )
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server, verbose=False)


def pipeline_scores(model_dir, paths):
    return [r["score"] for r in pipeline("image-aesthetics", model=model_dir)([str(p) for p in paths])]


def test_score_endpoint_matches_the_pipeline(client, models, sample_dir):
    photo = sample_dir / "astronaut.jpg"
    reading, bars, result = client.predict(gradio_client.handle_file(str(photo)), api_name="/score")
    expected = pipeline("image-aesthetics", model=models[0])(str(photo))
    assert result["score"] == pytest.approx(expected["score"], abs=1e-5)
    assert result["distribution"] == pytest.approx(expected["distribution"], abs=1e-5)
    assert f"{expected['score']:.2f} ± {expected['std']:.2f}" in reading


def test_score_endpoint_reads_the_upload_as_it_is(client, models, sample_dir):
    """A grey JPEG reaches the app undecoded: gradio would otherwise convert it to RGB and re-encode it first."""
    photo = sample_dir / "coins.jpg"
    _, _, result = client.predict(gradio_client.handle_file(str(photo)), api_name="/score")
    assert result["score"] == pytest.approx(pipeline_scores(models[0], [photo])[0], abs=1e-5)


def test_rank_orders_as_the_scores_do(client, models, sample_dir):
    photos = sorted(sample_dir.glob("*.jpg"))[:4]
    gallery, csv_path, ranking, skipped = client.predict(
        [gradio_client.handle_file(str(p)) for p in photos], api_name="/rank"
    )
    scores = dict(zip([p.name for p in photos], pipeline_scores(models[0], photos)))
    assert [row["file"] for row in ranking] == sorted(scores, key=scores.get, reverse=True)
    assert Path(csv_path).read_text().splitlines()[0] == "rank,file,score,std"
    assert len(gallery) == 4 and skipped == ""


def test_bad_inputs_get_a_clear_message(client, sample_dir, tmp_path):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("just text")
    with pytest.raises(Exception, match="notes.jpg is not an image"):
        client.predict(gradio_client.handle_file(str(not_an_image)), api_name="/score")
    too_many = [gradio_client.handle_file(str(p)) for p in sorted(sample_dir.iterdir())[:5]]
    with pytest.raises(Exception, match="limit is 4"):
        client.predict(too_many, api_name="/rank")
    huge = tmp_path / "huge.png"
    from PIL import Image

    Image.new("L", (2000, 1500)).save(huge)
    with pytest.raises(Exception, match="2000x1500 pixels"):
        client.predict(gradio_client.handle_file(str(huge)), api_name="/score")


def test_queue_and_concurrency_limits_are_the_spaces_own(models, monkeypatch):
    monkeypatch.setenv("CSKD_CONCURRENCY", "2")
    monkeypatch.setenv("CSKD_MAX_QUEUE", "5")
    app = load_app()  # the limits read the environment, as on a deployed Space
    demo = app.build_demo(models[:1])
    assert (demo._queue.default_concurrency_limit, demo._queue.max_size) == (2, 5)
    assert app.Limits().launch_options()["max_file_size"] == "20mb"
    # The three endpoints (score, compare, rank) share one limit: they all run the models.
    endpoints = [fn for fn in demo.fns.values() if fn.api_name in ("score", "compare", "rank")]
    assert len(endpoints) == 3 and {(fn.concurrency_id, fn.concurrency_limit) for fn in endpoints} == {("models", 2)}


def test_a_full_queue_refuses_at_once(models, sample_dir, monkeypatch):
    """One request computing (held), one waiting (the queue's one place), the next refused with gradio's message."""
    import threading

    app = load_app()
    entered, release = threading.Event(), threading.Event()
    score = app.Scorers.score

    def held_score(self, image, name=None):
        entered.set()
        assert release.wait(timeout=120)
        return score(self, image, name)

    monkeypatch.setattr(app.Scorers, "score", held_score)
    demo = app.build_demo(models[:1], limits=app.Limits(concurrency=1, max_queue=1))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        photo = gradio_client.handle_file(str(sorted(sample_dir.glob("*.jpg"))[0]))
        computing = client.submit(photo, api_name="/score")
        assert entered.wait(timeout=120)
        waiting = client.submit(photo, api_name="/score")
        deadline = time.monotonic() + 60
        while len(demo._queue) < 1 and time.monotonic() < deadline:  # the second request is in the queue
            time.sleep(0.05)
        with pytest.raises(Exception, match="Queue is full"):
            client.predict(photo, api_name="/score")
        release.set()
        assert computing.result(timeout=120)[2]["score"] == waiting.result(timeout=120)[2]["score"]
    finally:
        release.set()
        demo.close()


def test_limits_hold_under_concurrent_clients(server, models, sample_dir, tmp_path):
    """Eight clients at once, a quarter of them hostile: each photo gets its own score (no mix-up between requests),
    each hostile call the app's message. benchmarks/space_load.py measures 20 clients for a minute."""
    import threading

    from PIL import Image

    photos = sorted(sample_dir.glob("*.jpg"))[:6]
    expected = dict(zip(photos, pipeline_scores(models[0], photos)))
    oversized = tmp_path / "oversized.png"  # about 1.2 MB of noise, over the server's 1 MB
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (640, 640, 3), dtype=np.uint8)).save(oversized)
    huge = tmp_path / "huge.png"
    Image.new("L", (2000, 1500)).save(huge)
    hostile = {
        "oversized": (lambda c: c.predict(gradio_client.handle_file(str(oversized)), api_name="/score"), "maximum"),
        "pixels": (lambda c: c.predict(gradio_client.handle_file(str(huge)), api_name="/score"), "2000x1500 pixels"),
    }
    outcomes, barrier = {}, threading.Barrier(len(photos) + len(hostile), timeout=120)

    def call(key, request):
        client = gradio_client.Client(server, verbose=False)
        barrier.wait()  # all requests reach the queue together
        try:
            outcomes[key] = request(client)
        except Exception as error:
            outcomes[key] = error

    threads = [
        threading.Thread(
            target=call,
            args=(photo, lambda c, p=photo: c.predict(gradio_client.handle_file(str(p)), api_name="/score")),
        )
        for photo in photos
    ] + [threading.Thread(target=call, args=(kind, request)) for kind, (request, _) in hostile.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    for photo in photos:
        assert outcomes[photo][2]["score"] == pytest.approx(expected[photo], abs=1e-5)
    for kind, (_, message) in hostile.items():
        assert isinstance(outcomes[kind], Exception) and message in str(outcomes[kind]), outcomes[kind]


def test_compare_shows_every_model_with_its_latency(client):
    from gradio_client import handle_file

    photo = REPO / "tests" / "spaces" / "probe.png"
    from PIL import Image

    Image.new("RGB", (80, 60), (200, 120, 40)).save(photo)
    try:
        table = client.predict(handle_file(str(photo)), api_name="/compare")
    finally:
        photo.unlink()
    rows = table["data"] if isinstance(table, dict) else table
    assert len(rows) == 2 and all(row[3] > 0 for row in rows)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_page_in_a_real_browser(server, models, sample_dir):
    from playwright.sync_api import sync_playwright

    photo = sample_dir / "coffee.jpg"
    expected = pipeline("image-aesthetics", model=models[0])(str(photo))
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server)
        page.get_by_text("synthetic dataset").first.wait_for(timeout=60_000)  # the warning is on the page
        page.get_by_text("Examples").first.wait_for(timeout=30_000)  # the Space's own example photos
        page.locator("#photo input[type=file]").set_input_files(str(photo))
        page.locator("#photo img").first.wait_for(timeout=60_000)  # the upload shows in the one image box
        page.locator("#score-button").click()
        reading = page.locator("#score-reading")
        reading.get_by_text("±").wait_for(timeout=60_000)
        assert f"{expected['score']:.2f} ± {expected['std']:.2f}" in reading.inner_text()
        page.locator("#score-plot canvas, #score-plot svg").first.wait_for(timeout=30_000)
        page.wait_for_timeout(500)  # let the chart finish drawing for the screenshot
        page.screenshot(path=str(ARTIFACTS / "space-score.png"), full_page=True)
        page.get_by_role("tab", name="Rank").click()
        page.get_by_text("Best first").first.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "space-rank.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "space-score.png").stat().st_size > 20_000


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_a_visitor_can_score_on_their_device(server, models, sample_dir):
    """The Space links to the first model's static page, which the Space serves; the photo is scored in the page."""
    from playwright.sync_api import sync_playwright

    from cskd_hf.runtime.web import web_assets

    if not (web_assets() / "vendor" / "ort.wasm.min.js").is_file():
        pytest.skip("onnxruntime-web is not installed: run `make web-vendor`")
    photo = sample_dir / "coffee.jpg"
    expected = pipeline("image-aesthetics", model=models[0], draft=False)(str(photo))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(server)
        link = page.locator("#device-page a")
        link.wait_for(timeout=60_000)
        assert "Score on your device" in link.inner_text()
        page.goto(server.rstrip("/") + link.get_attribute("href"))
        page.wait_for_function("window.cskd && window.cskd.spec", timeout=60_000)
        page.locator("#files").set_input_files(str(photo))
        page.wait_for_function("window.cskd.results.length === 1", timeout=60_000)
        (result,) = page.evaluate("window.cskd.results")
        browser.close()
    assert set(result) == {"name", "score", "std", "distribution"}
    assert result["score"] == pytest.approx(expected["score"], abs=0.02)


def test_the_space_installs_what_it_imports():
    """A Space installs spaces/requirements.txt only: cskd-hf must come with the extra that brings torch and
    transformers (`pip install cskd-hf` alone is the torch-free runtime)."""
    requirements = (REPO / "spaces" / "requirements.txt").read_text().splitlines()
    assert "cskd-hf[torch]" in requirements
    app = (REPO / "spaces" / "app.py").read_text()
    assert "from transformers import pipeline" in app and "import gradio" in app
    assert any(line.startswith("gradio==") for line in requirements)


def test_examples_travel_with_the_space():
    app = load_app()
    assert [path.name for path in app.EXAMPLES] == ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"]
    assert all(path.parent == REPO / "spaces" / "examples" for path in app.EXAMPLES)


def put_in_hub_cache(model_dir, repo_id, cache_dir) -> None:
    """Lay a model folder out as huggingface_hub's cache holds a downloaded repository, so that an offline
    `from_pretrained(repo_id)` finds it as a Space finds a Hub model it has already fetched."""
    commit = "0" * 40
    repo = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(model_dir, repo / "snapshots" / commit)


def test_serves_hub_ids_from_cskd_models_on_gradios_port(tiny_scorer_dir, tmp_path):
    """As on a Space: no quickstart output, models named by Hub id in CSKD_MODELS, address from gradio's variables."""
    import subprocess
    import time
    import urllib.request

    put_in_hub_cache(tiny_scorer_dir, "cskd-test/tiny-scorer", tmp_path / "hub")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "CSKD_MODELS": "cskd-test/tiny-scorer",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
    }
    server = subprocess.Popen(
        [sys.executable, str(REPO / "spaces" / "app.py")], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    page = response.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        else:
            server.kill()
            pytest.fail(f"the Space did not serve on GRADIO_SERVER_PORT={port}:\n{server.communicate()[0][-3000:]}")
        assert "CSKD image aesthetics" in page
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        photo = REPO / "spaces" / "examples" / "coffee.jpg"
        _, _, result = client.predict(gradio_client.handle_file(str(photo)), api_name="/score")
        expected = pipeline("image-aesthetics", model=str(tiny_scorer_dir))(str(photo))
        assert result["score"] == pytest.approx(expected["score"], abs=1e-5)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serves_no_file_outside_its_own(server, models, sample_dir, tmp_path):
    """Gradio serves files by path (`/gradio_api/file=PATH`): an upload comes back, nothing else of the machine's."""
    import json
    import urllib.error
    import urllib.request

    def get(route: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"{server}{route}", timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    photo = sorted(Path(sample_dir).glob("*.jpg"))[0]
    boundary = "cskd-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{photo.name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    upload = urllib.request.Request(
        f"{server}gradio_api/upload", data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    with urllib.request.urlopen(upload, timeout=10) as response:
        uploaded = json.loads(response.read())[0]
    assert get(f"gradio_api/file={uploaded}") == (200, photo.read_bytes())  # the route serves what is allowed

    secret = tmp_path / "secret.txt"
    secret.write_text("not for the page")
    escapes = [secret, Path(models[0]) / "config.json", REPO / "README.md", REPO / "spaces" / "app.py"]
    escapes.append(f"{Path(uploaded).parent}/{os.path.relpath(secret, Path(uploaded).parent)}")  # ../../..
    for path in escapes:
        status, answer = get(f"gradio_api/file={path}")
        assert status == 403, f"{path} answered {status}"
        assert Path(path).read_bytes()[:64] not in answer

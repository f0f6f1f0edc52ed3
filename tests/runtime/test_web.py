"""`cskd export --web`: the static page scores photos in a real headless Chromium, offline, as `cskd score` does.

For a tiny random CNN and a converted CLIP model (224 px, LAION predictor), the site is
exported, served by a plain `http.server` on localhost and opened in Debian's Chromium with every request to another
host aborted; about forty photos of many sizes and formats go through the page's file input. Each browser score is
held to `cskd score --no-draft` on the same files (within 0.02, Spearman >= 0.999; and to its `--backend torch`
within 0.02, Spearman >= 0.999 on scores to a thousandth), and the page's
own preprocessing (`window.cskd.preprocess`) to `ScoringSpec.pixel_values(open_image(path))` pixel by pixel.
"""

import base64
import contextlib
import functools
import http.server
import io
import json
import re
import shutil
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from cskd_hf.cli import main as cskd
from cskd_hf.data.images import open_image
from cskd_hf.data.samples import sample_photo, write_sample_images
from cskd_hf.runtime.spec import ScoringSpec
from cskd_hf.runtime.web import web_assets
from tests.helpers import UNREADABLE, write_awkward_images, write_tiny_laion

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ORT_WASM = web_assets() / "vendor" / "ort-wasm-simd-threaded.wasm"

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)"),
    pytest.mark.skipif(
        not ORT_WASM.is_file(), reason=f"onnxruntime-web is not installed ({ORT_WASM} missing): run `make web-vendor`"
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the `dev` extra)")

SCORE_TOLERANCE = 0.02
MIN_SPEARMAN = 0.999
# The page's input against PIL's, in 8-bit levels (normalised units times std * 255): Chromium decodes every photo
# here to PIL's pixels but for 16-bit samples, whose low byte it drops where PIL rounds (a level), which a bicubic
# resize can turn into two; the resampler itself is bit-exact.
PIXEL_LEVELS = 2
# Photos whose preprocessing is compared pixel by pixel: every decoder path the page takes.
PIXEL_PHOTOS = (
    "astronaut.jpg", "camera.png", "alpha.png", "gray16.png", "cmyk.jpg", "palette.png", "exif_rotated.jpg",
    "exif-orientation-5.jpg", "icc-wide-gamut.jpg", "chelsea.webp", "rocket-alpha-lossless.webp", "gray16-noise.png",
    "noise-31x517.png", "large-3000x2000.jpg", "small-48x36.png", "rocket.gif",
)  # fmt: skip


# --------------------------------------------------------------------------------------------------------------------
# Photos


def icc_v2_rgb_profile(
    primaries=((0.60974, 0.31111, 0.01947), (0.20528, 0.62567, 0.06087), (0.14919, 0.06322, 0.74457)),
    gamma: float = 563 / 256,
    description: str = "Adobe RGB (1998)-like, cskd-hf tests",
) -> bytes:
    """An ICC v2 RGB display profile (matrix and gamma curves), by default with Adobe RGB (1998)'s primaries (D50
    adapted) and gamma: a real wide-gamut profile, built here because the system ships no .icc/.icm file."""

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(values) -> bytes:
        return b"XYZ " + bytes(4) + b"".join(s15(value) for value in values)

    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    text = description.encode("ascii") + b"\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + struct.pack(">IIHB", 0, 0, 0, 0) + bytes(67)
    tags = [
        (b"desc", desc),
        (b"cprt", b"text" + bytes(4) + b"No copyright, use freely\0"),
        (b"wtpt", xyz((0.9642, 1.0, 0.8249))),
        (b"rXYZ", xyz(primaries[0])),
        (b"gXYZ", xyz(primaries[1])),
        (b"bXYZ", xyz(primaries[2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = [struct.pack(">I", len(tags))], b""
    for signature, body in tags:
        table.append(struct.pack(">4sII", signature, offset + len(data), len(body)))
        data += body + bytes(-len(body) % 4)
    body = b"".join(table) + data
    header = bytearray(128)
    struct.pack_into(">I4sI4s4s4s6H4s4s", header, 0, 128 + len(body), b"lcms", 0x02100000, b"mntr", b"RGB ",
                     b"XYZ ", 2024, 1, 1, 0, 0, 0, b"acsp", b"APPL")  # fmt: skip
    header[68:80] = s15(0.9642) + s15(1.0) + s15(0.8249)  # the PCS illuminant, D50
    return bytes(header) + body


def write_web_photos(folder: Path) -> tuple[list[Path], list[Path]]:
    """About forty photos of varied sizes and formats (names unique: the browser sees only names), and the three
    unreadable files; returns (readable, unreadable)."""
    paths = list(write_sample_images(folder / "samples"))  # scikit-image's photographs: JPEG, PNG, grey ones
    awkward = write_awkward_images(folder / "awkward", sample_photo("coffee"))  # alpha, 16 bit, CMYK, EXIF, ...
    paths += [path for kind, path in awkward.items() if kind not in UNREADABLE]
    unreadable = [awkward[kind] for kind in UNREADABLE]
    extra = folder / "extra"
    extra.mkdir()

    def save(image: Image.Image, name: str, **options) -> None:
        image.save(extra / name, **options)
        paths.append(extra / name)

    rng = np.random.default_rng(0)
    for width, height in [(31, 517), (640, 97), (1000, 1000), (6, 9)]:
        noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        save(Image.fromarray(noise), f"noise-{width}x{height}.png")
    for (width, height), suffix in [((1000, 1000), "png"), ((31, 517), "jpg"), ((640, 97), "bmp")]:
        y, x = np.mgrid[0:height, 0:width] / np.array([max(height - 1, 1), max(width - 1, 1)])[:, None, None]
        gradient = np.stack([255 * x, 255 * y, 127.5 * (1 + np.sin(6 * x + 4 * y))], axis=-1).round().astype(np.uint8)
        options = {"quality": 92} if suffix == "jpg" else {}
        save(Image.fromarray(gradient), f"gradient-{width}x{height}.{suffix}", **options)
    astronaut = Image.fromarray(sample_photo("astronaut"))
    chelsea = Image.fromarray(sample_photo("chelsea"))
    coffee = Image.fromarray(sample_photo("coffee"))
    rocket = Image.fromarray(sample_photo("rocket"))
    save(astronaut.resize((3000, 2000), Image.Resampling.BICUBIC), "large-3000x2000.jpg", quality=90)  # downscaled
    save(astronaut.resize((48, 36), Image.Resampling.BICUBIC), "small-48x36.png")  # upscaled
    save(chelsea.crop((100, 0, 300, 300)).resize((20, 60), Image.Resampling.BICUBIC), "tiny-20x60.jpg", quality=90)
    save(coffee.convert("L"), "gray-coffee.jpg", quality=90)
    save(coffee, "icc-wide-gamut.jpg", quality=90, icc_profile=icc_v2_rgb_profile())
    save(chelsea, "chelsea.webp", quality=80)
    translucent = rocket.convert("RGBA")
    translucent.putalpha(Image.linear_gradient("L").resize(rocket.size))
    save(translucent, "rocket-alpha-lossless.webp", lossless=True)
    save(rocket.convert("P", palette=Image.Palette.ADAPTIVE), "rocket.gif")
    scene = chelsea.crop((0, 0, 300, 200))
    for orientation in (2, 3, 5, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        save(scene, f"exif-orientation-{orientation}.jpg", quality=90, exif=exif)
    deep = rng.integers(0, 65536, (120, 90), dtype=np.uint16)  # 16-bit levels that are not multiples of 257
    save(Image.fromarray(deep), "gray16-noise.png")
    return paths, unreadable


@pytest.fixture(scope="module")
def web_photos(tmp_path_factory):
    return write_web_photos(tmp_path_factory.mktemp("web-photos"))


# --------------------------------------------------------------------------------------------------------------------
# The site, its server and the browser


def export_site(model_dir: Path, work: Path) -> Path:
    """`cskd export --web` on a copy of the model folder; returns the site's folder."""
    model = work / "model"
    shutil.copytree(model_dir, model)
    site = work / "site"
    assert cskd(["export", "--model", str(model), "--web", str(site)]) == 0
    return site


class StaticFiles(http.server.SimpleHTTPRequestHandler):
    """`python -m http.server`'s handler, quiet; with `isolated`, the headers that give the page multi-threaded WASM
    (cross-origin isolation: SharedArrayBuffer)."""

    isolated = False

    def end_headers(self):
        if self.isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder: Path, isolated: bool = False):
    """A static file server of `folder` on a free localhost port, in a thread; yields its URL."""
    handler = type("Handler", (StaticFiles,), {"isolated": isolated})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def launch_chromium():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser():
    with launch_chromium() as browser:
        yield browser


@contextlib.contextmanager
def open_page(browser, url: str):
    """The page at `url` with every request to anywhere else aborted (and recorded), once its model is loaded.

    Yields (page, outside requests, page errors).
    """
    context = browser.new_context()
    page = context.new_page()
    outside, errors = [], []

    def only_this_server(route):
        if route.request.url.startswith(url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_server)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(url + "index.html")
        page.evaluate("() => window.cskd.ready")
        yield page, outside, errors
    finally:
        context.close()


def score_in_page(page, paths: list[Path], timeout_s: float = 300) -> list[dict]:
    """The photos chosen through the page's file input, as a user does; the page's results once all are in."""
    before = page.evaluate("() => window.cskd.results.length")
    page.set_input_files("#files", [str(path) for path in paths])
    page.wait_for_function(
        "n => window.cskd.results.length >= n", arg=before + len(paths), timeout=timeout_s * 1000, polling=100
    )
    return page.evaluate("n => window.cskd.results.slice(n)", before)


PER_FILE = """async (what) => {
  const base64 = (bytes) => {
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
  };
  const out = [];
  for (const file of document.getElementById("probe").files) {
    try {
      const result = await window.cskd[what](file);
      const bytes = what === "preprocess" ? new Uint8Array(result.data.buffer) : result.rgb;
      out.push({name: file.name, width: result.width, height: result.height, data: base64(bytes)});
    } catch (error) {
      out.push({name: file.name, error: error.message});
    }
  }
  return out;
}"""


def per_file_in_page(page, what: str, paths: list[Path]) -> list[dict]:
    """`window.cskd.preprocess` (float32 pixel values) or `window.cskd.decode` (8-bit RGB) of each file, in order:
    {name, width, height, data (bytes)} or {name, error}."""
    page.evaluate(
        "() => { const input = document.createElement('input'); input.type = 'file'; input.multiple = true;"
        " input.id = 'probe'; input.hidden = true; document.body.appendChild(input); }"
    )
    page.set_input_files("#probe", [str(path) for path in paths])
    items = page.evaluate(PER_FILE, what)
    page.evaluate("() => document.getElementById('probe').remove()")
    for item in items:
        if "data" in item:
            item["data"] = base64.b64decode(item["data"])
    return items


def reference_results(model_dir: Path, paths: list[Path], work: Path, backend: str = "auto") -> list[dict]:
    """`cskd score --no-draft --backend BACKEND` on the files, in their order."""
    output = work / f"reference-{backend}.jsonl"
    argv = ["score", *map(str, paths), "--model", str(model_dir), "--backend", backend, "--no-draft",
            "--num-workers", "0", "--no-progress", "--output", str(output)]  # fmt: skip
    assert cskd(argv) == 0
    return [json.loads(line) for line in output.read_text().splitlines()]


# --------------------------------------------------------------------------------------------------------------------
# The tests


@pytest.fixture(scope="module")
def clip_model(tmp_path_factory):
    return write_tiny_laion(tmp_path_factory.mktemp("laion"))["converted"]


def check_the_page_against_cskd_score(model_dir, web_photos, browser, work: Path) -> dict:
    from scipy.stats import spearmanr

    readable, unreadable = web_photos
    site = export_site(Path(model_dir), work)
    spec = ScoringSpec.load(site / "spec.json")
    # The unreadable files among the others: their errors must not stop the rest.
    files = readable[:5] + unreadable + readable[5:]
    pixel_photos = [path for path in readable if path.name in PIXEL_PHOTOS]
    with serve(site) as url, open_page(browser, url) as (page, outside, errors):
        results = score_in_page(page, files)
        pixels = {item["name"]: item for item in per_file_in_page(page, "preprocess", pixel_photos)}
        status = page.inner_text("#status")
        cards = page.locator("#photos .card").count()
        error_cards = page.locator("#photos .card .error").count()
        card_scores = page.locator("#photos .card .score").all_inner_texts()
        ranking = page.locator("#ranking li").all_inner_texts()
        page_outside = list(outside)
        # The guard itself works: a request to another host is aborted and recorded.
        assert (
            page.evaluate("() => fetch('https://example.com/x').then(() => 'fetched', () => 'blocked')") == "blocked"
        )
        assert outside == [*page_outside, "https://example.com/x"]
    assert page_outside == [], f"the page fetched from outside its folder: {page_outside}"
    assert errors == []

    assert [result["name"] for result in results] == [path.name for path in files]
    by_name = {result["name"]: result for result in results}
    for path in unreadable:
        assert set(by_name[path.name]) == {"name", "error"} and by_name[path.name]["error"], path.name
    browser_results = [by_name[path.name] for path in readable]
    for result in browser_results:
        assert set(result) == {"name", "score", "std", "distribution"}, result
        assert len(result["distribution"]) == len(spec.bin_scores)
        assert sum(result["distribution"]) == pytest.approx(1.0, abs=1e-4), result["name"]

    # The reference: `cskd score --no-draft` (its default, the torch-free runtime, whose spec the page follows).
    expected = reference_results(site.parent / "model", readable, work)
    assert [Path(row["path"]).name for row in expected] == [path.name for path in readable]
    assert all(row["error"] is None for row in expected)
    browser_scores = np.array([result["score"] for result in browser_results])
    reference_scores = np.array([row["score"] for row in expected])
    differences = np.abs(browser_scores - reference_scores)
    worst = readable[int(differences.argmax())].name
    assert differences.max() <= SCORE_TOLERANCE, f"{worst}: {differences.max():.4f}"
    assert np.ptp(reference_scores) > 5 * SCORE_TOLERANCE  # the photos' scores differ: the ranking means something
    rho = spearmanr(browser_scores, reference_scores).statistic
    assert rho >= MIN_SPEARMAN, f"Spearman {rho:.5f}"
    # And the PyTorch model itself (torchvision's resize): within the tolerance too. Re-encodings of one photo (the
    # awkward files are all the coffee photo) score within 1e-4 of each other there, where torchvision and PIL round
    # a level differently, so that ranking is compared to a thousandth, a tenth of what the page shows.
    torch_rows = reference_results(site.parent / "model", readable, work, "torch")
    torch_scores = np.array([row["score"] for row in torch_rows])
    torch_differences = np.abs(browser_scores - torch_scores)
    assert torch_differences.max() <= SCORE_TOLERANCE, f"{torch_differences.max():.4f}"
    assert spearmanr(browser_scores.round(3), torch_scores.round(3)).statistic >= MIN_SPEARMAN

    # Pixel-level parity of the page's preprocessing with ScoringSpec.pixel_values on open_image.
    assert sorted(pixels) == sorted(PIXEL_PHOTOS)
    pixel_errors = {}  # in 8-bit levels: |difference| * std * 255, channel by channel (at most 2 / 255 / min(std))
    size = spec.image_size
    for path in pixel_photos:
        image = open_image(path)
        assert (pixels[path.name]["width"], pixels[path.name]["height"]) == image.size, path.name
        values = np.frombuffer(pixels[path.name]["data"], dtype=np.float32).reshape(3, size, size)
        error = np.abs(values - spec.pixel_values(image))
        pixel_errors[path.name] = float((error * np.asarray(spec.image_std)[:, None, None] * 255).max())
    assert max(pixel_errors.values()) <= PIXEL_LEVELS + 1e-3, pixel_errors

    # What the user sees: a card per file (an error on the unreadable ones), scores with two decimals, the ranking.
    assert cards == len(files) and error_cards == len(unreadable)
    assert all(re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d", text) for text in card_scores)
    assert len(ranking) == len(readable)
    ranked = [float(text.split(" ")[0]) for text in ranking]
    assert ranked == sorted(ranked, reverse=True)
    assert re.search(rf"{len(readable)} photos in [\d.]+ s, [\d.]+ img/s; {len(unreadable)} could not be read", status)
    print(f"{Path(model_dir).name}: max |score difference| {differences.max():.5f} ({worst}), Spearman {rho:.5f}; "
          f"against torch {torch_differences.max():.5f}, pixel errors (levels) {pixel_errors}")  # fmt: skip
    return {"max_difference": float(differences.max()), "spearman": float(rho), "pixel_errors": pixel_errors}


def test_the_page_scores_photos_offline_as_cskd_score_does(tiny_scorer_dir, web_photos, browser, tmp_path):
    """A tiny CNN (square bilinear resize of 8-bit pixels): the browser's scores are `cskd score`'s."""
    readable, _ = web_photos
    assert len(readable) >= 30
    check_the_page_against_cskd_score(tiny_scorer_dir, web_photos, browser, tmp_path)


def test_the_page_scores_a_converted_clip_model_as_cskd_score_does(clip_model, web_photos, browser, tmp_path):
    """A converted LAION predictor over a CLIP tower (shortest-edge bicubic resize, PIL's, and a centre crop)."""
    check_the_page_against_cskd_score(clip_model, web_photos, browser, tmp_path)


def test_the_wide_gamut_profile_is_a_real_one():
    """The ICC profile the page must ignore (as PIL does) would change the colours if it were applied."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_v2_rgb_profile()))
    photo = Image.fromarray(sample_photo("coffee"))
    converted = ImageCms.profileToProfile(photo, profile, ImageCms.createProfile("sRGB"))
    assert np.abs(np.asarray(converted, dtype=int) - np.asarray(photo, dtype=int)).mean() > 3


def test_the_page_decodes_photos_as_open_image_does(tiny_scorer_dir, web_photos, browser, tmp_path):
    """Chromium's decoding, as the page asks for it, against `open_image`: upright (EXIF), ICC profile ignored,
    transparency on white, CMYK and palettes converted; 16-bit samples lose their low byte (PIL rounds them), the
    only difference."""
    readable, unreadable = web_photos
    site = export_site(Path(tiny_scorer_dir), tmp_path)
    with serve(site) as url, open_page(browser, url) as (page, outside, errors):
        decoded = per_file_in_page(page, "decode", readable + unreadable)
    assert outside == [] and errors == []
    levels = {}
    for path, item in zip(readable + unreadable, decoded):
        assert item["name"] == path.name
        if path in unreadable:
            assert "error" in item, path.name
            continue
        expected = np.asarray(open_image(path), dtype=np.int16)
        assert (item["height"], item["width"], 3) == expected.shape, path.name
        rgb = np.frombuffer(item["data"], dtype=np.uint8).reshape(expected.shape)
        levels[path.name] = int(np.abs(rgb.astype(np.int16) - expected).max())
    assert max(levels.values()) <= 1, levels
    assert [name for name, level in levels.items() if level] in ([], ["gray16-noise.png"]), levels

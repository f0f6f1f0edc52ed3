/* Aesthetic scores in the browser: the page that `cskd export --web` writes (cskd-hf).
 *
 * It reads the scoring spec (spec.json) and runs the graph (model.onnx) with onnxruntime-web's WASM build, all from
 * this folder: nothing is fetched from anywhere else and no photo leaves the device.
 *
 * Preprocessing reproduces `cskd_hf.runtime.spec.ScoringSpec.pixel_values` on `cskd_hf.data.images.open_image`:
 *   - decode with createImageBitmap (EXIF orientation applied, as PIL's exif_transpose; ICC profiles ignored, as
 *     PIL ignores them), drawn at its natural size on opaque white (transparency composited on white);
 *   - resize with a port of PIL's convolution resampler (libImaging/Resample.c), horizontal pass first, 8-bit
 *     fixed-point passes for resize_input "uint8"/"pil", float ones for "float" (never the canvas's scaling, whose
 *     kernel differs between browsers);
 *   - centre crop (Python's round, halves to even), (x - mean) / std in float32, channels first.
 *
 * window.cskd = {ready, scoreFiles(files), preprocess(file), decode(file), results, threads, spec} for scripts and
 * tests; preprocess returns the decoded photo's width and height with `data`, the float32 (3, S, S) input.
 */
(function () {
  "use strict";

  const BATCH_SIZE = 8;
  const PRECISION_BITS = 32 - 8 - 2; // PIL's 8-bit resampler: 22-bit fixed-point coefficients

  // ---------------------------------------------------------------------------------------------------------------
  // PIL's resampling (libImaging/Resample.c and, for NEAREST, Geometry.c's ImagingScaleAffine)

  const FILTERS = {
    bilinear: {
      support: 1.0,
      weight(x) {
        if (x < 0.0) x = -x;
        return x < 1.0 ? 1.0 - x : 0.0;
      },
    },
    bicubic: {
      support: 2.0,
      weight(x) {
        const a = -0.5;
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
      },
    },
  };

  /** precompute_coeffs: for each output pixel, the first input pixel, the tap count and the normalised weights. */
  function precomputeCoeffs(inSize, outSize, filter) {
    const scale = inSize / outSize;
    const filterscale = scale < 1.0 ? 1.0 : scale;
    const support = filter.support * filterscale;
    const ksize = Math.ceil(support) * 2 + 1;
    const bounds = new Int32Array(outSize * 2);
    const kk = new Float64Array(outSize * ksize);
    const ss = 1.0 / filterscale;
    for (let xx = 0; xx < outSize; xx++) {
      const center = (xx + 0.5) * scale;
      let xmin = Math.trunc(center - support + 0.5); // C's (int) cast
      if (xmin < 0) xmin = 0;
      let xmax = Math.trunc(center + support + 0.5);
      if (xmax > inSize) xmax = inSize;
      xmax -= xmin;
      let ww = 0.0;
      const base = xx * ksize;
      for (let x = 0; x < xmax; x++) {
        const w = filter.weight((x + xmin - center + 0.5) * ss);
        kk[base + x] = w;
        ww += w;
      }
      if (ww !== 0.0) for (let x = 0; x < xmax; x++) kk[base + x] /= ww;
      bounds[xx * 2] = xmin;
      bounds[xx * 2 + 1] = xmax;
    }
    return { bounds, kk, ksize };
  }

  /** normalize_coeffs_8bpc: the weights as 22-bit fixed-point integers, rounded half away from zero. */
  function fixedPointCoeffs(kk) {
    const fixed = new Float64Array(kk.length);
    const one = 2 ** PRECISION_BITS;
    for (let i = 0; i < kk.length; i++) fixed[i] = kk[i] < 0 ? Math.trunc(-0.5 + kk[i] * one) : Math.trunc(0.5 + kk[i] * one);
    return fixed;
  }

  const CLIP_TOP = 2 ** (PRECISION_BITS + 8);
  const SHIFT = 2 ** PRECISION_BITS;
  function clip8(ss) {
    if (ss >= CLIP_TOP) return 255;
    if (ss <= 0) return 0;
    return Math.floor(ss / SHIFT);
  }

  /** One output pixel of a pass: floats as they are, 8-bit sums rounded and clipped as PIL's 8-bit path does. */
  function store(out, offset, r, g, b, float) {
    out[offset] = float ? r : clip8(r);
    out[offset + 1] = float ? g : clip8(g);
    out[offset + 2] = float ? b : clip8(b);
  }

  /**
   * Resample an interleaved 3-channel image (Uint8Array for 8-bit passes, Float32Array for float ones) from
   * inW x inH to outW x outH, and return only the window [left, left + cropW) x [top, top + cropH) of the result:
   * each output pixel depends only on its own taps, so this is PIL's resize followed by the crop.
   */
  function resample(src, inW, inH, outW, outH, interpolation, float, left, top, cropW, cropH) {
    if (interpolation === "nearest") return nearest(src, inW, inH, outW, outH, float, left, top, cropW, cropH);
    const filter = FILTERS[interpolation];
    if (!filter) throw new Error(`unknown interpolation ${interpolation}`);
    let image = src;
    let width = inW;
    let rowOffset = 0; // the first input row `image` holds
    const horizontal = outW !== inW;
    const vertical = outH !== inH;
    const vert = vertical ? precomputeCoeffs(inH, outH, filter) : null;
    // Rows of the input that the vertical pass reads for the crop's rows.
    let rowFirst = top;
    let rowLast = top + cropH;
    if (vertical) {
      rowFirst = vert.bounds[top * 2];
      const last = top + cropH - 1;
      rowLast = vert.bounds[last * 2] + vert.bounds[last * 2 + 1];
    }
    if (horizontal) {
      const horiz = precomputeCoeffs(inW, outW, filter);
      const k = float ? horiz.kk : fixedPointCoeffs(horiz.kk);
      const rows = rowLast - rowFirst;
      const out = float ? new Float32Array(cropW * rows * 3) : new Uint8Array(cropW * rows * 3);
      for (let y = 0; y < rows; y++) {
        const inRow = (y + rowFirst) * inW * 3;
        const outRow = y * cropW * 3;
        for (let xx = 0; xx < cropW; xx++) {
          const ox = xx + left;
          const xmin = horiz.bounds[ox * 2];
          const xmax = horiz.bounds[ox * 2 + 1];
          const kbase = ox * horiz.ksize;
          let r = float ? 0.0 : SHIFT / 2;
          let g = r;
          let b = r;
          for (let x = 0; x < xmax; x++) {
            const w = k[kbase + x];
            const p = inRow + (x + xmin) * 3;
            r += src[p] * w;
            g += src[p + 1] * w;
            b += src[p + 2] * w;
          }
          store(out, outRow + xx * 3, r, g, b, float);
        }
      }
      image = out;
      width = cropW;
      rowOffset = rowFirst;
    } else {
      // No horizontal pass (PIL skips it when the width is unchanged): take the crop's columns as they are.
      const rows = rowLast - rowFirst;
      const out = float ? new Float32Array(cropW * rows * 3) : new Uint8Array(cropW * rows * 3);
      for (let y = 0; y < rows; y++) {
        const from = ((y + rowFirst) * inW + left) * 3;
        out.set(src.subarray(from, from + cropW * 3), y * cropW * 3);
      }
      image = out;
      width = cropW;
      rowOffset = rowFirst;
    }
    if (!vertical) return image; // rowFirst..rowLast is exactly the crop's rows
    const k = float ? vert.kk : fixedPointCoeffs(vert.kk);
    const out = float ? new Float32Array(cropW * cropH * 3) : new Uint8Array(cropW * cropH * 3);
    for (let yy = 0; yy < cropH; yy++) {
      const oy = yy + top;
      const ymin = vert.bounds[oy * 2] - rowOffset;
      const ymax = vert.bounds[oy * 2 + 1];
      const kbase = oy * vert.ksize;
      for (let xx = 0; xx < cropW; xx++) {
        let r = float ? 0.0 : SHIFT / 2;
        let g = r;
        let b = r;
        for (let y = 0; y < ymax; y++) {
          const w = k[kbase + y];
          const p = ((y + ymin) * width + xx) * 3;
          r += image[p] * w;
          g += image[p + 1] * w;
          b += image[p + 2] * w;
        }
        store(out, (yy * cropW + xx) * 3, r, g, b, float);
      }
    }
    return out;
  }

  /** PIL's NEAREST resize: ImagingScaleAffine's source positions, stepped as it steps them. */
  function nearest(src, inW, inH, outW, outH, float, left, top, cropW, cropH) {
    const coord = (v) => (v < 0.0 ? -1 : Math.trunc(v));
    const positions = (inSize, outSize) => {
      const step = inSize / outSize;
      const table = new Int32Array(outSize);
      let o = step * 0.5;
      for (let i = 0; i < outSize; i++) {
        table[i] = Math.min(Math.max(coord(o), 0), inSize - 1);
        o += step;
      }
      return table;
    };
    const xs = positions(inW, outW);
    const ys = positions(inH, outH);
    const out = float ? new Float32Array(cropW * cropH * 3) : new Uint8Array(cropW * cropH * 3);
    for (let y = 0; y < cropH; y++) {
      const row = ys[y + top] * inW;
      for (let x = 0; x < cropW; x++) {
        const p = (row + xs[x + left]) * 3;
        const o = (y * cropW + x) * 3;
        out[o] = src[p];
        out[o + 1] = src[p + 1];
        out[o + 2] = src[p + 2];
      }
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // The scoring spec (ScoringSpec.resized_size, crop_box, pixel_values)

  /** Python's round(): to the nearest integer, halves to even. */
  function pyRound(x) {
    const floor = Math.floor(x);
    const diff = x - floor;
    if (diff > 0.5) return floor + 1;
    if (diff < 0.5) return floor;
    return floor % 2 === 0 ? floor : floor + 1;
  }

  function resizedSize(spec, width, height) {
    const size = spec.resize_size;
    if (spec.resize_mode === "square") return [size, size];
    if (width <= height) return [size, Math.trunc((size * height) / width)];
    return [Math.trunc((size * width) / height), size];
  }

  function cropBox(spec, width, height) {
    return [Math.trunc(pyRound((width - spec.image_size) / 2.0)), Math.trunc(pyRound((height - spec.image_size) / 2.0))];
  }

  /** ScoringSpec.pixel_values of 8-bit interleaved RGB pixels: float32 (3, S, S), channels first. */
  function pixelValues(spec, rgb, width, height) {
    const S = spec.image_size;
    const [outW, outH] = resizedSize(spec, width, height);
    const [left, top] = cropBox(spec, outW, outH);
    const float = spec.resize_input === "float";
    let source = rgb;
    if (float) {
      source = new Float32Array(rgb.length);
      for (let i = 0; i < rgb.length; i++) source[i] = rgb[i] / 255.0; // float32(v) / 255, as numpy computes it
    }
    const crop = resample(source, width, height, outW, outH, spec.interpolation, float, left, top, S, S);
    const data = new Float32Array(3 * S * S);
    const fround = Math.fround;
    for (let c = 0; c < 3; c++) {
      const mean = fround(spec.image_mean[c]);
      const std = fround(spec.image_std[c]);
      const plane = c * S * S;
      for (let i = 0; i < S * S; i++) {
        const value = float ? crop[i * 3 + c] : fround(crop[i * 3 + c] / 255.0);
        // float32 arithmetic; the runtime's one multiply-add per pixel differs from it by float rounding only
        data[plane + i] = fround(value - mean) / std;
      }
    }
    return data;
  }

  const core = { precomputeCoeffs, resample, pixelValues, resizedSize, cropBox, pyRound };
  if (typeof module === "object" && module.exports) {
    module.exports = core; // node, for checking the resampler against PIL
    return;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Decoding: createImageBitmap, drawn on white

  const BITMAP_OPTIONS = { imageOrientation: "from-image", colorSpaceConversion: "none", premultiplyAlpha: "none" };

  async function bitmapOf(file) {
    try {
      return await createImageBitmap(file, BITMAP_OPTIONS);
    } catch (error) {
      if (error instanceof TypeError) {
        // A browser that does not know one of the options' values: its defaults (EXIF orientation applied).
        return await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
      }
      throw error;
    }
  }

  function canvasOf(width, height) {
    if (typeof OffscreenCanvas !== "undefined") return new OffscreenCanvas(width, height);
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    return canvas;
  }

  /** An image file as upright 8-bit RGB: {width, height, rgb: Uint8Array (interleaved)}. */
  async function decode(file) {
    if (!file || file.size === 0) throw new Error("empty file (0 bytes)");
    let bitmap;
    try {
      bitmap = await bitmapOf(file);
    } catch (error) {
      throw new Error(`cannot decode image (${error && error.message ? error.message : error})`);
    }
    try {
      const { width, height } = bitmap;
      if (!width || !height) throw new Error("cannot decode image (no pixels)");
      const canvas = canvasOf(width, height);
      const context = canvas.getContext("2d", { willReadFrequently: true });
      context.fillStyle = "#ffffff";
      context.fillRect(0, 0, width, height);
      context.drawImage(bitmap, 0, 0);
      const rgba = context.getImageData(0, 0, width, height).data;
      const rgb = new Uint8Array(width * height * 3);
      for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
        rgb[j] = rgba[i];
        rgb[j + 1] = rgba[i + 1];
        rgb[j + 2] = rgba[i + 2];
      }
      return { width, height, rgb };
    } finally {
      bitmap.close();
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // The model

  const state = { spec: null, session: null, threads: 1, results: [] };
  const here = new URL("./", location.href).href;

  async function load() {
    const response = await fetch("spec.json");
    if (!response.ok) throw new Error(`spec.json: HTTP ${response.status}`);
    const spec = await response.json();
    if (spec.format !== "cskd-scoring-spec") throw new Error("spec.json is not a CSKD scoring spec");
    state.spec = spec;
    state.threads = self.crossOriginIsolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
    ort.env.wasm.wasmPaths = here;
    ort.env.wasm.numThreads = state.threads;
    state.session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });
    api.threads = state.threads;
    api.spec = spec;
  }

  async function preprocessDecoded(decoded) {
    return pixelValues(state.spec, decoded.rgb, decoded.width, decoded.height);
  }

  async function preprocess(file) {
    await api.ready;
    const decoded = await decode(file);
    const data = await preprocessDecoded(decoded);
    return { width: decoded.width, height: decoded.height, size: state.spec.image_size, data };
  }

  async function run(inputs) {
    const spec = state.spec;
    const S = spec.image_size;
    const batch = new Float32Array(inputs.length * 3 * S * S);
    inputs.forEach((data, i) => batch.set(data, i * 3 * S * S));
    const feeds = { [spec.input_name]: new ort.Tensor("float32", batch, [inputs.length, 3, S, S]) };
    const outputs = await state.session.run(feeds);
    const [probabilitiesName, meanName, stdName] = spec.output_names;
    const probabilities = outputs[probabilitiesName].data;
    const bins = probabilities.length / inputs.length;
    return inputs.map((_, i) => ({
      score: outputs[meanName].data[i],
      std: outputs[stdName].data[i],
      distribution: Array.from(probabilities.subarray(i * bins, (i + 1) * bins)),
    }));
  }

  function message(error) {
    return error && error.message ? error.message : String(error);
  }

  const nextTick = () => new Promise((resolve) => setTimeout(resolve, 0));

  /** Score image files in batches; a file that cannot be decoded gets {name, error} and the others go on. Calls
   * wait for the previous ones to finish: one session runs one batch at a time. */
  let queue = Promise.resolve();
  function scoreFiles(fileList) {
    const files = Array.from(fileList); // a FileList empties when its input is cleared
    const job = queue.then(() => scoreNow(files));
    queue = job.catch(() => undefined);
    return job;
  }

  async function scoreNow(files) {
    await api.ready;
    const results = new Array(files.length);
    const start = performance.now();
    const decodeBatch = (first) =>
      files.slice(first, first + BATCH_SIZE).map((file) => decode(file).catch((error) => ({ error: message(error) })));
    let pending = files.length ? decodeBatch(0) : null;
    for (let first = 0; first < files.length; first += BATCH_SIZE) {
      setStatus(`Scoring ${Math.min(first + BATCH_SIZE, files.length)} of ${files.length}…`);
      await nextTick();
      const decoded = await Promise.all(pending);
      pending = first + BATCH_SIZE < files.length ? decodeBatch(first + BATCH_SIZE) : null; // decoded meanwhile
      const inputs = [];
      const slots = [];
      for (let i = 0; i < decoded.length; i++) {
        const name = files[first + i].name;
        if (decoded[i].error) {
          results[first + i] = { name, error: decoded[i].error };
          continue;
        }
        try {
          inputs.push(await preprocessDecoded(decoded[i]));
          slots.push(first + i);
        } catch (error) {
          results[first + i] = { name, error: message(error) };
        }
        decoded[i] = null;
      }
      if (inputs.length) {
        try {
          const scored = await run(inputs);
          scored.forEach((result, j) => {
            results[slots[j]] = { name: files[slots[j]].name, ...result };
          });
        } catch (error) {
          // A batch the graph refuses costs its own photos, not the others'.
          slots.forEach((slot) => (results[slot] = { name: files[slot].name, error: message(error) }));
        }
      }
      for (let i = first; i < Math.min(first + BATCH_SIZE, files.length); i++) show(results[i], files[i]);
    }
    const seconds = (performance.now() - start) / 1000;
    const failed = results.filter((result) => result.error).length;
    const scored = results.length - failed;
    state.results.push(...results);
    renderRanking();
    setStatus(
      `${scored} photo${scored === 1 ? "" : "s"} in ${seconds.toFixed(2)} s, ${(scored / Math.max(seconds, 1e-9)).toFixed(1)} img/s` +
        (failed ? `; ${failed} could not be read` : "") +
        ` (${state.threads} WASM thread${state.threads === 1 ? "" : "s"})`,
    );
    return results;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // The page

  const thumbnails = new WeakMap(); // result -> object URL of its file

  function setStatus(text, isError = false) {
    const status = document.getElementById("status");
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("error", isError);
  }

  function formatBin(value) {
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  }

  const SVG = "http://www.w3.org/2000/svg";
  function histogram(distribution, binScores) {
    const svg = document.createElementNS(SVG, "svg");
    const n = distribution.length;
    const width = 200;
    const height = 64;
    const barWidth = width / n;
    const top = Math.max(...distribution, 1e-9);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("class", "hist");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "vote distribution");
    distribution.forEach((p, i) => {
      const h = (p / top) * (height - 14);
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", (i * barWidth + 1).toFixed(2));
      rect.setAttribute("y", (height - 12 - h).toFixed(2));
      rect.setAttribute("width", Math.max(barWidth - 2, 1).toFixed(2));
      rect.setAttribute("height", h.toFixed(2));
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${formatBin(binScores[i])}: ${(100 * p).toFixed(1)}%`;
      rect.appendChild(title);
      svg.appendChild(rect);
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", ((i + 0.5) * barWidth).toFixed(2));
      label.setAttribute("y", String(height - 2));
      label.textContent = formatBin(binScores[i]);
      svg.appendChild(label);
    });
    return svg;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function show(result, file) {
    const photos = document.getElementById("photos");
    if (!photos) return;
    const card = element("div", "card");
    card.dataset.name = result.name;
    if (!result.error) {
      const url = URL.createObjectURL(file);
      thumbnails.set(result, url);
      const img = element("img");
      img.decoding = "async";
      img.loading = "lazy";
      img.src = url;
      img.alt = result.name;
      card.appendChild(img);
    }
    card.appendChild(element("div", "name", result.name));
    if (result.error) {
      card.appendChild(element("div", "error", `Could not be read: ${result.error}`));
    } else {
      card.appendChild(element("div", "score", `${result.score.toFixed(2)} ± ${result.std.toFixed(2)}`));
      card.appendChild(histogram(result.distribution, state.spec.bin_scores));
    }
    photos.appendChild(card);
  }

  function renderRanking() {
    const list = document.querySelector("#ranking ol");
    if (!list) return;
    list.replaceChildren();
    const scored = state.results.filter((result) => !result.error).sort((a, b) => b.score - a.score);
    for (const result of scored) {
      const item = element("li");
      const url = thumbnails.get(result);
      if (url) {
        const img = element("img");
        img.src = url;
        img.alt = "";
        item.appendChild(img);
      }
      item.appendChild(document.createTextNode(`${result.score.toFixed(2)} — ${result.name}`));
      list.appendChild(item);
    }
  }

  async function readTitle() {
    // `cskd export --web --title` writes the title into the Space's README.md front matter.
    try {
      const response = await fetch("README.md");
      if (!response.ok) return;
      const match = /^title:\s*(.+)$/m.exec(await response.text());
      if (match) {
        const raw = match[1].trim();
        let title = raw.replace(/^'|'$/g, "");
        try {
          if (raw.startsWith('"')) title = JSON.parse(raw); // written with json.dumps
        } catch (error) {
          title = raw.replace(/^"|"$/g, "");
        }
        document.title = title;
        document.getElementById("title").textContent = title;
      }
    } catch (error) {
      void error;
    }
  }

  function wire() {
    const input = document.getElementById("files");
    const drop = document.getElementById("drop");
    const start = (files) => {
      if (files && files.length) scoreFiles(files).catch((error) => setStatus(`Error: ${message(error)}`, true));
    };
    input.addEventListener("change", () => {
      start(input.files);
      // cleared after scoring starts, so that choosing the same files again scores them again
      setTimeout(() => (input.value = ""), 0);
    });
    drop.addEventListener("click", (event) => {
      if (event.target !== input) input.click();
    });
    drop.addEventListener("dragover", (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      const files = Array.from(event.dataTransfer.files).filter((file) => !file.type || file.type.startsWith("image/"));
      start(files);
    });
  }

  const api = {
    ready: null,
    scoreFiles,
    preprocess,
    decode, // the upright 8-bit RGB pixels that preprocessing starts from: {width, height, rgb}
    results: state.results,
    threads: 1,
    spec: null,
    core,
  };
  window.cskd = api;
  api.ready = load();
  api.ready.then(
    () => setStatus(`Ready: drop photos or choose them (${state.threads} WASM thread${state.threads === 1 ? "" : "s"}).`),
    (error) => setStatus(`Could not load the model: ${message(error)}`, true),
  );
  readTitle();
  wire();
})();

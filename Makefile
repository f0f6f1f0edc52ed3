# Every target creates .venv on first use and installs the project into it, so that on a fresh
# machine `make quickstart` or `make test` is the only command needed.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# onnxruntime-web for `cskd export --web`, from the npm registry at install time (never at run time): its WASM build
# runs the graphs' opset 18 (MIT licence: onnxruntime-web-package.json). The wheel carries them as package data.
ORT_WEB_VERSION := 1.22.0
# The registry's SHA-512 of that tarball (`npm view onnxruntime-web@1.22.0 dist.integrity`, in hex), checked after packing.
ORT_WEB_SHA512 := 51dffe101a3a9a1b9a416b7f3a368e93488d5a35ea26879e305afac50104459748647d8e5a91b3bae8f3ee57ee3818d46ba4c413fb1ce276fb0dae5d34bdf87e
WEB_VENDOR := src/cskd_hf/web/vendor
WEB_VENDOR_STAMP := $(WEB_VENDOR)/onnxruntime-web-$(ORT_WEB_VERSION).installed
ORT_WEB_FILES := package/dist/ort.wasm.min.js package/dist/ort-wasm-simd-threaded.mjs \
	package/dist/ort-wasm-simd-threaded.wasm

.PHONY: install web-vendor quickstart quickstart-smoke reproduce space test test-slow bench docs style quality clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	# The registry's torch build (CUDA, runs on CPU) is the one torchvision is built against.
	$(PYTHON) -m pip install --quiet torch torchvision
	$(PYTHON) -m pip install --quiet -e ".[dev,demo]"
	# Debian's Chromium for the Space's browser test (Playwright's own browser download does not work offline).
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium could not be installed: the browser test will be skipped"
	touch $(STAMP)

install: $(STAMP) $(WEB_VENDOR_STAMP)

# Debian's npm packs onnxruntime-web; without it `cskd export --web` says what is missing and its tests are skipped.
web-vendor: $(WEB_VENDOR_STAMP)

$(WEB_VENDOR_STAMP):
	command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq npm) \
		|| echo "npm could not be installed: cskd export --web and its browser tests are unavailable"
	rm -rf $(WEB_VENDOR) && mkdir -p $(WEB_VENDOR)
	cd $(WEB_VENDOR) && npm pack --silent onnxruntime-web@$(ORT_WEB_VERSION) >/dev/null \
		&& echo "$(ORT_WEB_SHA512)  onnxruntime-web-$(ORT_WEB_VERSION).tgz" | sha512sum --check --quiet - \
		&& tar xzf onnxruntime-web-$(ORT_WEB_VERSION).tgz --strip-components=2 $(ORT_WEB_FILES) \
		&& tar xzOf onnxruntime-web-$(ORT_WEB_VERSION).tgz package/package.json > onnxruntime-web-package.json \
		&& rm onnxruntime-web-$(ORT_WEB_VERSION).tgz \
		&& touch $(notdir $(WEB_VENDOR_STAMP)) || (rm -rf $(CURDIR)/$(WEB_VENDOR); echo "npm pack onnxruntime-web failed")

# The main job on the embedded default: the whole method on SynthAVA with tiny models (22 min 29 s on 2 idle cores).
quickstart: $(STAMP)
	$(VENV)/bin/cskd quickstart --out outputs/quickstart

quickstart-smoke: $(STAMP)
	$(VENV)/bin/cskd quickstart --smoke --out outputs/quickstart-smoke

# The default rows and the rest: the remaining baselines, the recipe's variants and the paper's Fig. 3.
reproduce: $(STAMP)
	$(VENV)/bin/cskd quickstart --full --out outputs/quickstart-full

# The Gradio Space on the quickstart's models (run `make quickstart` first), at http://127.0.0.1:7860
space: $(STAMP) $(WEB_VENDOR_STAMP)
	$(PYTHON) spaces/app.py

test: $(STAMP) $(WEB_VENDOR_STAMP)
	$(PYTHON) -m pytest

test-slow: $(STAMP) $(WEB_VENDOR_STAMP)
	$(PYTHON) -m pytest -m slow

# CPU throughput tables (docs/speed.md) and the recipe's cost from them; pyiqa, the comparison, is installed here only.
bench: $(STAMP)
	$(PYTHON) -m pip install --quiet -e ".[bench]"
	$(PYTHON) benchmarks/score_throughput.py
	mkdir -p outputs
	$(PYTHON) benchmarks/loader_throughput.py --json outputs/loader_throughput.json
	$(PYTHON) benchmarks/recipe_cost.py --loader outputs/loader_throughput.json
	$(PYTHON) benchmarks/train_throughput.py

# The documentation site (docs/, mkdocs.yml) into build/site; the test suite builds it with --strict too.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

style: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

quality: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf build outputs .pytest_cache .ruff_cache
